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
from compressors.effects import pruned_effect
from compressors.measure import sparsity
from compressors.scopes import scoped_linears

for pct in (20, 50):
    register_preset(Preset(f"local-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "linear", "granularity": "layer"}))
    register_preset(Preset(f"attn-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "attention", "granularity": "global"}))
    register_preset(Preset(f"ffn-{pct}", "magnitude", default=False,
                           params={"amount": pct / 100, "scope": "ffn", "granularity": "global"}))
register_preset(Preset("fdense-50", "magnitude", default=False,
                       params={"amount": 0.5, "scope": "final-dense", "granularity": "global"}))



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


@handler("magnitude", kind="pruning", version="magnitude-1", effect=("modules_pruned",))
def apply_magnitude(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    try:
        modules = scoped_linears(model, preset.params["scope"])
    except ValueError as exc:
        raise CompressionError(f"{preset.id}: {exc}") from None
    before = sparsity(modules)[0]
    magnitude_prune(modules, preset.params["amount"], preset.params["granularity"])
    return pruned_effect(model, modules, before, preset.params["amount"], preset)
