#!/usr/bin/env bash
# The knowledge gate, as CI runs it (.github/workflows/gate.yml): every case with a committed
# baseline in benchmarks/baselines/ (pytest mark `regression`), at --limit 10 on CPU. A case fails
# when it breaks its retention floor (benchmarks/matrix.py) or loses facts beyond noise against
# its committed baseline (benchmarks/regression.py). Records go to $KCB_RESULTS_DIR (results/gate).
#   bash scripts/gate.sh                       # check
#   bash scripts/gate.sh --update-baselines    # rewrite the committed baselines from this run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
. scripts/lama_dir.sh || exit 4
RESULTS=${KCB_RESULTS_DIR:-results/gate}
set +e
python -m pytest benchmarks -m regression --models all --limit 10 --results-dir "$RESULTS" -q \
  --benchmark-disable "$@"
rc=$?
set -e
# pytest exits 5 when nothing was collected: no committed baselines is an error here, not a pass.
if [ $rc -eq 5 ]; then echo "error: no case has a committed baseline in benchmarks/baselines/" >&2; exit 1; fi
exit $rc
