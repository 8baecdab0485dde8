# Sourced by the scripts: point KCB_LAMA_DIR at LAMA data and KCB_WIKITEXT at WikiText-2's test
# file. Each: the variable if set, else the read-only copy beside the checkout (../shared/data, as
# on CI), else the official release downloaded and verified into the cache (users with network).
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
# WikiText-2 (the calibrated presets' slice, e.g. wanda-50 in the default menu; the perplexity probe)
if [ -z "${KCB_WIKITEXT:-}" ] && [ ! -f "../shared/data/wikitext-2/wiki.test.raw" ]; then
  wikitext="${KCB_CACHE:-$HOME/.cache/knowledge-cost}/wikitext-2"
  if [ ! -f "$wikitext/wiki.test.raw" ] && ! python -m probes.perplexity download "$wikitext" >/dev/null 2>&1; then
    echo "error: no WikiText-2 test file (KCB_WIKITEXT unset, none in ../shared/data/wikitext-2 or $wikitext): set KCB_WIKITEXT to wiki.test.raw (or its folder), or run with network so it can be downloaded and verified" >&2
    return 4 2>/dev/null || exit 4
  fi
  export KCB_WIKITEXT="$wikitext"
fi
