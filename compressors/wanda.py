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

from compressors import Preset, handler, register_preset
from compressors.calibration import calibrated_pruning
from compressors.layers import nm_mask, out_in

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


@handler("wanda", kind="pruning", version=CODE_VERSION, context=True)
def apply_wanda(model, preset: Preset, family: str, ctx: dict) -> dict:
    def prune(stats, modules):
        for name, mod in modules.items():
            w = out_in(mod)
            score = w.abs() * stats[name]["sq"].sqrt().to(w.device)[None, :]
            if "n" in preset.params:
                w.mul_(nm_mask(score, preset.params["n"], preset.params["m"]))
            else:
                w.mul_(row_mask(score, preset.params["amount"]))
    return calibrated_pruning("wanda", model, preset, family, ctx, prune, gram=False,
                              code_version=CODE_VERSION,
                              backend=f"plain PyTorch Wanda (torch {torch.__version__})")
