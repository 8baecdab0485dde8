"""Wanda (Sun et al. 2024, "A Simple and Effective Pruning Approach for LLMs"): prune by
|weight| x L2 norm of its input feature, compared within each output row, at 50% or 2:4.

    compress(model, "wanda-50", family, tokenizer=tok)

Implemented here in plain PyTorch. Input norms come from one pass of the dense model over the
WikiText-2 calibration slice (compressors/calibration.py); the paper feeds each block the output
of the already-pruned blocks before it, this one-pass variant does not (recorded in the params).
Pruned weights are cached on disk (compressors/ckpt_cache.py), so a rerun skips calibration.
"""
from __future__ import annotations

import torch

from compressors import CompressionError, Preset, handler, register_preset
from compressors.calibration import calibration_batches, input_stats
from compressors.ckpt_cache import reuse_or_make
from compressors.measure import linear_modules, sparsity
from compressors.pruning_scoped import pruned_effect
from compressors.pruning_structured import nm_effect, nm_mask, out_in

_COMMON = {"scope": "linear", "score": "|w| * ||x||_2", "group": "output row",
           "activations": "dense model, one pass", "calibration": "wikitext-2 test slice"}
CODE_VERSION = "wanda-1"   # bump when the method changes: cached weights are keyed on it
register_preset(Preset("wanda-50", "wanda", default=True, params={"amount": 0.5, **_COMMON}))
register_preset(Preset("wanda-2-4", "wanda", default=False, params={"n": 2, "m": 4, **_COMMON}))


def row_mask(score: torch.Tensor, amount: float) -> torch.Tensor:
    """Keep-mask dropping the ``amount`` lowest scores of every row."""
    k = int(score.shape[1] * amount)
    drop = score.topk(k, dim=1, largest=False).indices
    return torch.ones_like(score, dtype=torch.bool).scatter_(1, drop, False)


@handler("wanda", context=True)
def apply_wanda(model, preset: Preset, family: str, ctx: dict) -> dict:
    modules = linear_modules(model)
    if not modules:
        raise CompressionError(f"{preset.id}: the model has no linear layers to prune")
    batches, calib = calibration_batches(ctx["tokenizer"])
    before = sparsity(modules)[0]

    def make():
        stats = input_stats(model, modules, batches, family, gram=False)
        with torch.no_grad():
            for name, mod in modules.items():
                w = out_in(mod)
                score = w.abs() * stats[name]["sq"].sqrt().to(w.device)[None, :]
                if "n" in preset.params:
                    w.mul_(nm_mask(score, preset.params["n"], preset.params["m"]))
                else:
                    w.mul_(row_mask(score, preset.params["amount"]))
    hit, path = reuse_or_make("wanda", model, preset, ctx, calib, modules, make, CODE_VERSION)
    cache = {"cache": str(path), "cache_hit": hit}
    backend = f"plain PyTorch Wanda (torch {torch.__version__})"
    if "n" in preset.params:
        return nm_effect(model, modules, before, preset, backend=backend, calibration=calib) | cache
    return pruned_effect(model, modules, before, preset.params["amount"], preset,
                         calibration=calib) | {"backend": backend} | cache
