# Sourced by the scripts: point KCB_LAMA_DIR at LAMA data. Uses $KCB_LAMA_DIR if set, else the
# read-only copy beside the checkout (../shared/data/lama, as on CI), else downloads and verifies
# the official release into the cache (users with network).
if [ -z "${KCB_LAMA_DIR:-}" ]; then
  if [ -f "../shared/data/lama/relations.jsonl" ]; then
    KCB_LAMA_DIR="$(cd ../shared/data/lama && pwd)"
  else
    KCB_LAMA_DIR="$(python -m probes.lama_data download | tail -1)"
  fi
fi
export KCB_LAMA_DIR
