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
. scripts/lama_dir.sh
RESULTS=${KCB_RESULTS_DIR:-results/records}
if [ -n "${KCB_LIMIT:-}" ]; then
  LIMITS=(); [ "$KCB_LIMIT" != "0" ] && LIMITS=(--limit "$KCB_LIMIT")
else
  LIMITS=(--limits main)
fi
start=$(date +%s)
# 1. A first leaderboard in about a minute: SmolLM2, four presets (pruning and 4-bit; the int8
#    presets score one call per candidate, minutes on a CPU, so they wait for the main run), T-REx
#    at --limit 3 (123 facts), in its own folder so it never mixes with the main run's records.
#    KCB_QUICK=0 skips it.
if [ "${KCB_QUICK:-1}" != "0" ]; then
  python -m pytest benchmarks --models smollm2-135m --presets none,sparse-10,sparse-50,nf4-single \
    --probes trex --limit 3 --results-dir results/quick/records -q || true
  python site/build.py results/quick/records -o results/site \
    && echo "first leaderboard ($(( $(date +%s) - start )) s after set-up): $(pwd)/results/site/index.html; the main run follows and replaces it"
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
