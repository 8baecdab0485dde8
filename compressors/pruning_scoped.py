"""L1-magnitude pruning by scope and granularity: layer-wise vs global, attention / feed-forward /
all linear layers / the final dense layer of each feed-forward block.

    compress(model, "local-50", family)    # every linear layer loses its own smallest 50%
    compress(model, "attn-50", family)     # one threshold over the attention projections only

``global`` ranks all weights of the scope together (torch.nn.utils.prune.global_unstructured),
``layer`` prunes each layer to the target on its own (prune.l1_unstructured). Masks are baked in.
Scopes come from compressors/scopes.py (one documented mapping of module names per architecture).
"""
from __future__ import annotations

import torch
from torch.nn.utils import prune

from compressors import CompressionError, Preset, handler, register_preset
from compressors.measure import linear_modules, sparsity, weight_bytes
from compressors.scopes import architecture, group_of, scoped_linears

TOLERANCE = 0.01   # measured vs target sparsity: ties at the threshold and rounding only

for pct in (20, 50):
    register_preset(Preset(f"local-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "linear", "granularity": "layer"}))
    register_preset(Preset(f"attn-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "attention", "granularity": "global"}))
    register_preset(Preset(f"ffn-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "ffn", "granularity": "global"}))
register_preset(Preset("fdense-50", "magnitude", default=False,
                       params={"amount": 0.5, "scope": "final-dense", "granularity": "global"}))


def sparsity_by_scope(model: torch.nn.Module) -> dict[str, float]:
    """Measured fraction of zero weights in each scope: linear, attention, ffn (and other)."""
    mods = linear_modules(model)
    out = {"linear": round(sparsity(mods)[0], 6)}
    try:
        arch = architecture(model)
    except ValueError:
        return out
    for group in ("attention", "ffn"):
        chosen = {n: m for n, m in mods.items() if group_of(n, arch) == group}
        if chosen:
            out[group] = round(sparsity(chosen)[0], 6)
    rest = {n: m for n, m in mods.items() if group_of(n, arch) is None}
    if rest:
        out["other"] = round(sparsity(rest)[0], 6)
    return out



def magnitude_prune(modules: dict[str, torch.nn.Module], amount: float, granularity: str) -> None:
    """Zero the smallest-|w| fraction ``amount`` of the modules' weights, permanently."""
    if granularity == "global":
        params = [(m, "weight") for m in modules.values()]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    elif granularity == "layer":
        params = []
        for m in modules.values():
            prune.l1_unstructured(m, "weight", amount=amount)
            params.append((m, "weight"))
    else:
        raise ValueError(f"granularity must be 'global' or 'layer', not {granularity!r}")
    for module, name in params:
        prune.remove(module, name)


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


@handler("magnitude", kind="pruning", version="magnitude-1", effect=("modules_pruned",))
def apply_magnitude(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    try:
        modules = scoped_linears(model, preset.params["scope"])
    except ValueError as exc:
        raise CompressionError(f"{preset.id}: {exc}") from None
    before = sparsity(modules)[0]
    magnitude_prune(modules, preset.params["amount"], preset.params["granularity"])
    return pruned_effect(model, modules, before, preset.params["amount"], preset)
