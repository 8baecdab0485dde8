#!/usr/bin/env bash
# The main job: set up, run the default benchmark selection on the offline default models, and
# build the leaderboard. Extra arguments go to pytest (e.g. -k "smollm2 and trex").
#   bash scripts/bench.sh                 # default: --limit 10 facts per relation
#   KCB_LIMIT=0 bash scripts/bench.sh     # full LAMA (hours on a laptop CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
. scripts/lama_dir.sh
RESULTS=${KCB_RESULTS_DIR:-results/records}
LIMIT=${KCB_LIMIT:-10}
LIMIT_ARG=(); [ "$LIMIT" != "0" ] && LIMIT_ARG=(--limit "$LIMIT")
start=$(date +%s)
# 1. A first leaderboard in minutes: SmolLM2, five presets, T-REx at --limit 3 (123 facts), in its
#    own folder so it never mixes with the main run's records. KCB_QUICK=0 skips it.
if [ "${KCB_QUICK:-1}" != "0" ]; then
  python -m pytest benchmarks --models smollm2-135m --presets none,sparse-10,sparse-50,int8-dyn,nf4-single \
    --probes trex --limit 3 --results-dir results/quick/records -q || true
  python site/build.py results/quick/records -o results/site \
    && echo "first leaderboard (quick look, $(( $(date +%s) - start )) s): $(pwd)/results/site/index.html; the default selection follows and replaces it"
fi
# 2. The main run.
# --presets default / --probes default: the curated subset (baseline, global sparsity 10-90 in
# steps of 20, int8-dyn, bnb-int8, nf4-single, wanda-50; LAMA's four subsets, BoolQ, PIQA,
# Winogrande, WikiText-2, the testbed's facts). The full menu is `--presets all --probes all`, the
# default of a plain `pytest benchmarks`.
python -m pytest benchmarks "${LIMIT_ARG[@]}" --presets default --probes default --results-dir "$RESULTS" \
  --benchmark-columns=mean,rounds --benchmark-sort=name -q "$@"
status=$?
echo "benchmark wall time: $(( $(date +%s) - start )) s (pytest exit $status)"
python site/build.py "$RESULTS" -o results/site || exit 1
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
