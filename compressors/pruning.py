"""Global unstructured L1-magnitude pruning of the linear layers (the paper's main method).

    compress(model, "sparse-50", family)   # 50% of linear weights zeroed, smallest |w| first

One threshold over all linear layers together (torch.nn.utils.prune.global_unstructured),
output head and embeddings excluded; masks are made permanent so the zeros are real.
"""
from __future__ import annotations

import torch
from torch.nn.utils import prune

from compressors import CompressionError, Preset, handler, register_preset
from compressors.measure import linear_modules, sparsity, weight_bytes

for pct in range(10, 100, 10):
    register_preset(Preset(f"sparse-{pct}", "global-magnitude", default=pct % 20 == 10,
                           params={"amount": pct / 100, "scope": "linear", "norm": "L1"}))

# Measured sparsity may differ from the target only by ties at the threshold and rounding.
TOLERANCE = 0.01


@handler("global-magnitude", kind="pruning", version="global-magnitude-1", effect=("modules_pruned",))
def apply_global_magnitude(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    modules = linear_modules(model)
    if not modules:
        raise CompressionError(f"{preset.id}: the model has no linear layers to prune")
    before, _, _ = sparsity(modules)
    params = [(m, "weight") for m in modules.values()]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured,
                              amount=preset.params["amount"])
    for module, name in params:
        prune.remove(module, name)   # bake the mask into the weight: zeros become real
    after, zeros, total = sparsity(modules)
    target = preset.params["amount"]
    if abs(after - target) > TOLERANCE:
        raise CompressionError(
            f"{preset.id}: measured sparsity {after:.4f} is not the target {target:.2f}")
    return {"changed": after > before, "backend": f"torch.nn.utils.prune (torch {torch.__version__})",
            "sparsity": round(after, 6), "sparsity_before": round(before, 6),
            "zeros": zeros, "params_in_scope": total, "modules_pruned": len(modules),
            "bits": None, "quantized_modules": 0, "weight_bytes": weight_bytes(model)}
