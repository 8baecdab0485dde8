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
# --presets default / --probes default: the curated subset (baseline, global sparsity 10-90 in
# steps of 20, int8-dyn, bnb-int8, nf4-single, wanda-50; LAMA's four subsets, BoolQ, PIQA,
# Winogrande, WikiText-2, the testbed's facts). The full menu is `--presets all --probes all`, the
# default of a plain `pytest benchmarks`.
python -m pytest benchmarks "${LIMIT_ARG[@]}" --presets default --probes default --results-dir "$RESULTS" \
  --benchmark-columns=mean,rounds --benchmark-sort=name -q "$@"
status=$?
echo "benchmark wall time: $(( $(date +%s) - start )) s (pytest exit $status)"
python site/build.py "$RESULTS" -o results/site || exit 1
# exit 1 = some case failed its knowledge gate (see the summary above); the leaderboard shows it.
exit $status
