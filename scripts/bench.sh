#!/usr/bin/env bash
# The main job: set up, a first leaderboard, the default selection on the offline default models,
# and the leaderboard. Extra arguments go to pytest (e.g. -k "smollm2 and trex").
#   bash scripts/bench.sh                 # the main job: --limits main (benchmarks/matrix.py)
#   KCB_LIMIT=10 bash scripts/bench.sh    # one --limit for every probe instead (0: all the data)
#   KCB_WORKERS=1 bash scripts/bench.sh   # one pytest process using every core (default: 2)
set -uo pipefail
cd "$(dirname "$0")/.."
t_setup=$(date +%s)
bash scripts/setup.sh
. .venv/bin/activate
. scripts/lama_dir.sh || exit 4
RESULTS=${KCB_RESULTS_DIR:-results/records}
if [ -n "${KCB_LIMIT:-}" ]; then
  LIMITS=(); [ "$KCB_LIMIT" != "0" ] && LIMITS=(--limit "$KCB_LIMIT")
else
  LIMITS=(--limits main)
fi
start=$(date +%s)
# 1. A first leaderboard while the main run goes: once a compressed case has a record (SmolLM2's
#    sparse-10 T-REx, about a minute in), the board is built from the records so far, then rebuilt
#    every 8 minutes as more land (a build bootstraps every interval: 10-20 s of one core, taken
#    from the workers, so not more often); nothing is measured twice. KCB_QUICK=0: the final only.
live_board() {
  local shown=0 last=-1 n nap=""
  # Stopped with TERM: its naps die with it (a nap left running would hold a pipe such as
  # `bench.sh | tee log` open for minutes); a build in progress finishes first (its output goes
  # to a folder of its own, and to /dev/null).
  trap '[ -n "$nap" ] && kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do
    sleep 15 >/dev/null 2>&1 & nap=$!; wait "$nap"
    n=$(find "$RESULTS" -maxdepth 1 -name '*.json' ! -name '*.error.json' 2>/dev/null | wc -l)
    [ "$n" = "$last" ] && continue
    find "$RESULTS" -maxdepth 1 -name '*.json' ! -name '*__none__*' ! -name '*.error.json' 2>/dev/null \
      | grep -q . || continue
    # built aside and moved into place: a build still running when the watcher is stopped
    # never writes into the folder the final build writes
    python site/build.py "$RESULTS" -o results/.site-live >/dev/null 2>&1 || continue   # retried next round
    rm -rf results/site && mv results/.site-live results/site || continue
    last=$n
    if [ "$shown" = 0 ]; then
      shown=1
      echo "first leaderboard ($(( $(date +%s) - start )) s after set-up, $n records): $(pwd)/results/site/index.html (rebuilt every 8 min as the run goes)"
    fi
    sleep 465 >/dev/null 2>&1 & nap=$!; wait "$nap"
  done
}
mkdir -p "$RESULTS"
watcher=""
if [ "${KCB_QUICK:-1}" != "0" ]; then
  live_board & watcher=$!
  trap '[ -n "$watcher" ] && kill "$watcher" 2>/dev/null' EXIT
fi
# 2. The main run: --presets default (the baseline, global sparsity 10-90 in steps of 20, int8-dyn,
#    bnb-int8, nf4-single, wanda-50, ao-w8a8) x --probes default at the main job's per-probe limits. Two
#    pytest-xdist workers of one thread each, a model per worker (--dist loadgroup): on a 2-core
#    CPU that beats one process on both cores, whose torch threads idle through the Python parts.
WORKERS=${KCB_WORKERS:-2}
XDIST=(); [ "$WORKERS" -gt 1 ] && XDIST=(-n "$WORKERS" --dist loadgroup)
THREADS=$(( $(nproc) / WORKERS )); [ "$THREADS" -lt 1 ] && THREADS=1
OMP_NUM_THREADS=$THREADS python -m pytest benchmarks "${XDIST[@]}" "${LIMITS[@]}" --presets default \
  --probes default --results-dir "$RESULTS" --benchmark-disable -q "$@"
status=$?
[ -n "$watcher" ] && kill "$watcher" 2>/dev/null; watcher=""
rm -rf results/.site-live
python site/build.py "$RESULTS" -o results/site || exit 1
echo "main job: $(( $(date +%s) - start )) s from the first case to the leaderboard (set-up before it: $(( start - t_setup )) s); pytest exit $status"
echo "leaderboard: $(pwd)/results/site/index.html"
# pytest's exit status (conftest.py): 1 a case failed its knowledge gate (a finding: the
# leaderboard shows it); 4 a usage error (one line above says which option); 5 no case selected;
# 6 a case could not run (its error record, <case>.error.json, says why).
case $status in
  0) ;;
  1) echo "some cases failed their knowledge gate: that is the finding, shown on the leaderboard" ;;
  4) echo "usage error: see the line starting with ERROR above" >&2 ;;
  5) echo "no cases were selected: check -k, --models, --presets and --probes" >&2 ;;
  6) echo "some cases could not run: see $RESULTS/*.error.json" >&2 ;;
esac
exit $status
