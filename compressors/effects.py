"""The measured effect of a preset, shared by the methods of one kind: pruning (magnitude, Wanda,
SparseGPT, N:M: measured sparsity checked against the target, zeros, bytes) and weight
quantization (bitsandbytes, quanto, torchao: every layer in scope converted, bits per weight).

    effect = pruned_effect(model, modules, before, target=0.5, preset=preset)
    effect = quantized_effect(model, preset, scope, converted, n_weights, before, "torchao 0.18")
"""
from __future__ import annotations

import torch

from compressors import CompressionError, Preset
from compressors.layers import nm_holds
from compressors.measure import module_bits, sparsity, weight_bytes
from compressors.scopes import sparsity_by_scope

TOLERANCE = 0.01   # measured vs target sparsity: ties at the threshold and rounding only


def pruned_effect(model, modules, before: float, target: float, preset: Preset, **extra) -> dict:
    """The measured effect of a mask-based preset; raises if the scope is off target."""
    after, zeros, total = sparsity(modules)
    if abs(after - target) > TOLERANCE:
        raise CompressionError(f"{preset.id}: measured sparsity {after:.4f} in scope "
                               f"{preset.params.get('scope')} is not the target {target:.2f}")
    return {"changed": after > before, "backend": f"torch.nn.utils.prune (torch {torch.__version__})",
            "sparsity": round(after, 6), "sparsity_before": round(before, 6),
            "sparsity_by_scope": sparsity_by_scope(model), "zeros": zeros,
            "params_in_scope": total, "modules_pruned": len(modules), "bits": None,
            "quantized_modules": 0, "weight_bytes": weight_bytes(model), **extra}


def nm_effect(model, modules, before, preset, **extra) -> dict:
    n, m = preset.params["n"], preset.params["m"]
    bad = [name for name, mod in modules.items() if not nm_holds(mod, n, m)]
    if bad:
        raise CompressionError(f"{preset.id}: the {n}:{m} pattern does not hold in {bad[:3]}")
    after, zeros, total = sparsity(modules)
    return {"changed": after > before, "sparsity": round(after, 6),
            "sparsity_by_scope": sparsity_by_scope(model), "pattern": f"{n}:{m} along input",
            "zeros": zeros, "params_in_scope": total, "modules_pruned": len(modules),
            "bits": None, "quantized_modules": 0, "weight_bytes": weight_bytes(model), **extra}


def quantized_effect(model, preset: Preset, scope, converted: dict, n_weights: int, before: int,
                     backend: str, **extra) -> dict:
    """The measured effect of a weight quantizer; raises naming the layers it left in float."""
    missing = set(scope) - set(converted)
    if missing:
        raise CompressionError(f"{preset.id}: {backend} left {len(missing)} linear layers in float, "
                               f"e.g. {sorted(missing)[:3]}")
    return {"changed": bool(converted), "backend": backend, "bits": preset.bits,
            "bits_per_weight": round(module_bits(converted, n_weights), 4),
            "quantized_modules": len(converted), **extra, "sparsity": None,
            "weight_bytes": weight_bytes(model), "weight_bytes_before": before}
