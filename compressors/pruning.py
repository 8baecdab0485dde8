"""Global unstructured L1-magnitude pruning of the linear layers (the paper's main method).

    compress(model, "sparse-50", family)   # 50% of linear weights zeroed, smallest |w| first

One threshold over all linear layers together, output head and embeddings excluded; the zeros
are real (no masks or hooks are left behind). The result is bit for bit what
torch.nn.utils.prune.global_unstructured(L1Unstructured) followed by prune.remove gives
(tests/test_compressors_pruning.py checks it, ties at the threshold included), without its cost:
on SmolLM2 (106M weights) that path took 26 s on one thread, 14 s of it sorting the 53M
smallest magnitudes (topk sorted=True) and 7 s in boolean gathers over an all-ones default mask.
The same ``topk`` call unsorted selects the same set (ATen sorts only after its selection).
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
    if any(hasattr(m, "weight_orig") for m in modules.values()):
        raise CompressionError(f"{preset.id}: the model carries torch.nn.utils.prune masks "
                               "already; prune a fresh copy")
    weights = [m.weight for m in modules.values()]
    with torch.no_grad():
        # as prune.L1Unstructured.compute_mask: the k smallest |w| of the flattened weights, in
        # module order, k = round(amount * n); prune.remove bakes weight * float mask (-w*0 = -0.0)
        scores = torch.cat([w.detach().reshape(-1) for w in weights]).abs_()
        prune._validate_pruning_amount(preset.params["amount"], scores.numel())
        k = prune._compute_nparams_toprune(preset.params["amount"], scores.numel())
        mask = torch.ones_like(scores)
        if k:
            mask[torch.topk(scores, k=k, largest=False, sorted=False).indices] = 0
        del scores
        offset = 0
        for w in weights:
            w.mul_(mask[offset:offset + w.numel()].view_as(w))
            offset += w.numel()
    after, zeros, total = sparsity(modules)
    target = preset.params["amount"]
    if abs(after - target) > TOLERANCE:
        raise CompressionError(
            f"{preset.id}: measured sparsity {after:.4f} is not the target {target:.2f}")
    return {"changed": after > before, "backend": f"global L1 magnitude as torch.nn.utils.prune "
            f"(torch {torch.__version__})",
            "sparsity": round(after, 6), "sparsity_before": round(before, 6),
            "zeros": zeros, "params_in_scope": total, "modules_pruned": len(modules),
            "bits": None, "quantized_modules": 0, "weight_bytes": weight_bytes(model)}
