"""The optional compression backends: the module each needs and how to install it (versions
from pyproject.toml, probes/pins.py). A preset whose backend is missing is skipped with this line.

    Preset("bnb-int8", "bnb", backend=BNB)     # (module to import, install command)
"""
from __future__ import annotations

import os

from probes.pins import extra, install_hint

BNB = ("bitsandbytes", install_hint("bitsandbytes", no_deps=True))
TORCHAO = ("torchao", install_hint("torchao", no_deps=True))
QUANTO = ("optimum.quanto", install_hint("optimum-quanto", "ninja", no_deps=True))
# gptqmodel declares a CUDA torch: it goes in --no-deps with its runtime deps (scripts/setup.sh)
GPTQ = ("gptqmodel", install_hint(*extra("gptq"), no_deps=True) + "  (or bash scripts/setup.sh)")
COMPRESSED_TENSORS = ("compressed_tensors", install_hint("compressed-tensors")
                      + "  (torch and transformers pinned as constraints; bash scripts/setup.sh)")


def gptq_cpu_workers() -> None:
    """gptqmodel's CPU thread pools need at least 2 workers: with GPTQMODEL_CPU_WORKERS=1 it fails
    with "Virtual pool 'model_loader:cpu' requests 2 workers but parent 'cpu' only has 1".
    2 is also the right number on a 2-core machine (docs/backends). Call before importing it."""
    try:
        workers = int(os.environ.get("GPTQMODEL_CPU_WORKERS", "2"))
    except ValueError:
        workers = 2
    os.environ["GPTQMODEL_CPU_WORKERS"] = str(max(2, workers))
