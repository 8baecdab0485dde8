#!/usr/bin/env bash
# The tests: set up, unit tests on tiny models built in code, then a small real-model smoke
# selection, and a leaderboard build from its records. Used by CI (.ci/run).
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
. scripts/lama_dir.sh || exit 4
# The site's browser tests drive Debian's Chromium through chromedriver; CI runs as root on Debian.
if ! { [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null; } && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
SMOKE=$(mktemp -d)
# A fresh model cache, as on a new machine: the GGUF assembly and conversion run every time.
export KCB_CACHE="$SMOKE/cache"
trap 'rm -rf "$SMOKE"' EXIT
run() {   # pytest exits 5 when nothing was collected: that is a failure here, not a pass
  set +e; python -m pytest "$@"; rc=$?; set -e
  if [ $rc -eq 5 ]; then echo "error: no tests ran for: pytest $*" >&2; exit 1; fi
  [ $rc -eq 0 ] || exit $rc
}
# The workflows and the action (action.yml, checked through the workflow that uses it), statically:
# pinned actions, minimal permissions, no template injection. Offline: no GitHub API calls.
actionlint .github/workflows/*.yml
zizmor --offline .github/workflows/ action.yml
run tests -q -n 2   # pytest-xdist: two workers, as the machine has two cores
# (bitsandbytes 4-bit refuses layers narrower than its 64-weight block, and the tiny models are
# 32 wide: nf4 is tested at width 64 in tests/test_compressors_quant.py and on SmolLM2 below.)
run benchmarks --tiny --limit 1 --presets default -m "not ability and not perplexity" -k "not nf4" \
  --results-dir "$SMOKE" -q --benchmark-disable
# One preset of each new compression family through the whole path, on the tiny causal model.
run benchmarks --tiny --limit 1 -k "tiny-causal and trex" --results-dir "$SMOKE" -q \
  --presets none,heads-25,mag-2-4,wanda-2-4,bnb-int8,ao-w8a8,quanto-w4,p20-dyn8 --benchmark-disable
# Ability and perplexity probes through the runner: on tiny models one task per lm-eval output
# type (multiple choice, loglikelihood, generation) and WikiText-2; on SmolLM2 PIQA and WikiText-2.
run benchmarks --tiny -k "(none or sparse-50 or int8-dyn) and (piqa or lambada or triviaqa or wikitext-2)" \
  --limit 2 --results-dir "$SMOKE" -q --benchmark-disable
run benchmarks -k "smollm2 and (none or sparse-10) and (piqa or wikitext-2)" --limit 2 \
  --results-dir "$SMOKE" -q --benchmark-columns=mean,rounds
# Real weights, both default models, one pruning and one int8 preset. Chosen among presets these
# models survive (docs/notebook.md): the smoke checks the path, tests/test_gate.py the gate.
run benchmarks -k "smollm2 and (none or sparse-10 or nf4-single) and trex" --limit 2 \
  --results-dir "$SMOKE" -q --benchmark-columns=mean,rounds
run benchmarks -k "gemma and (none or int8-dyn) and trex" --limit 1 --results-dir "$SMOKE" -q \
  --benchmark-columns=mean,rounds
# Scores do not depend on the batch size (issue 18): SmolLM2 at torch's per-tensor dynamic int8,
# whose activation scale spans the whole call, at batch 1 and at the default batch, per fact.
# (--floor 0.01: its retention is a finding, shown on the board; here only the identity is checked.)
for b in 1 default; do
  [ $b = 1 ] && B=(--batch-size 1) || B=()
  run benchmarks -k "smollm2 and int8-dyn and trex" --limit 1 "${B[@]}" --floor int8-dyn=0.01 \
    --results-dir "$SMOKE/batch-$b" -q --benchmark-disable
done
python scripts/same_ranks.py "$SMOKE/batch-1" "$SMOKE/batch-default"
# The testbed: three families trained here (seconds) that know their facts by construction.
run benchmarks -k "testbed and (none or sparse-50 or sparse-90 or int8-dyn)" --results-dir "$SMOKE" \
  -q --benchmark-columns=mean,rounds
# The suite's own speed benchmarks (perf/) run, on the tiny causal model (seconds; the issue's
# targets are asserted on the default models, by `pytest perf --perf-model smollm2-135m`).
run perf --perf-model tiny-causal --perf-limit 1 -q --benchmark-columns=mean,rounds
python site/build.py "$SMOKE" -o "$SMOKE/site"
