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
if [ -z "$KCB_LAMA_DIR" ] || [ ! -f "$KCB_LAMA_DIR/relations.jsonl" ]; then
  # say it once, here, rather than as a crashed pytest-xdist worker later
  echo "error: no LAMA data (KCB_LAMA_DIR=${KCB_LAMA_DIR:-<unset>}): set KCB_LAMA_DIR to a LAMA folder (one holding relations.jsonl), or run with network so it can be downloaded and verified" >&2
  return 4 2>/dev/null || exit 4
fi
