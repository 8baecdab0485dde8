#!/usr/bin/env bash
# Create .venv and install everything the suite needs, at the pins of pyproject.toml (their one
# home; scripts/pins.py reads them). Idempotent: when every pin is already installed it checks and
# returns in about a second.
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if python scripts/pins.py check --quiet >/dev/null 2>&1; then
  echo "environment ready (every pin of pyproject.toml already installed)"
  exit 0
fi
echo "installing the pins of pyproject.toml into .venv (minutes on a fresh machine)"
python -m pip install --quiet --upgrade pip
# 1. torch first, pinned, so the CPU wheel is used (a bare `torch` would pull a CUDA build), and
#    what gptqmodel's sdist build needs (it builds against the installed torch).
python scripts/pins.py build > .venv/build-requirements.txt
python -m pip install --quiet -r .venv/build-requirements.txt
# 2. The three narrowed packages (pyproject.toml, [tool.knowledge-cost-setup.narrowed]): local wheels of
#    the pinned releases without the requirements we do not meet or need, built or fetched once
#    per machine into the cache.
WHEELS="${KCB_CACHE:-$HOME/.cache/knowledge-cost}/wheels"
python scripts/pins.py narrow "$WHEELS" >/dev/null
# 3. Everything else in one resolver call: core pins, the models, compression backends, GPTQ and
#    ability extras, with the narrowed wheels in place of the published ones.
python scripts/pins.py requirements "$WHEELS" > .venv/requirements.txt
python -m pip install --quiet -r .venv/requirements.txt
# Nothing left for the resolver to complain about, and every pin in place.
python -m pip check
python scripts/pins.py check
echo "environment ready: $(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
