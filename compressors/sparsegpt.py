"""SparseGPT (Frantar & Alistarh 2023): prune each layer to 50% or 2:4 while updating the weights
that remain to compensate, using the inverse Hessian of the layer's reconstruction error.

    compress(model, "sparsegpt-50", family, tokenizer=tok)

Implemented here in plain PyTorch from the paper's algorithm: H = 2 X^T X / n + 1% mean-diagonal
damping; columns are processed in blocks of 128; the mask within a block keeps the weights with
the largest w^2 / [H^-1]_jj^2 (adaptive mask selection); each pruned weight's error is spread
over the later columns through the upper Cholesky factor of H^-1. Inputs come from one pass of
the dense model over the WikiText-2 calibration slice (the paper runs block by block on the
outputs of already-pruned blocks; recorded in the params). Pruned weights are cached on disk
(compressors/ckpt_cache.py): a rerun loads them instead of recomputing (150 s on SmolLM2).
"""
from __future__ import annotations

import torch

from compressors import Preset, handler, register_preset
from compressors.calibration import calibrated_pruning
from compressors.layers import out_in

BLOCK = 128          # columns per lazy-update block (the paper's B)
DAMP = 0.01          # fraction of the mean Hessian diagonal added for stability (the paper's λ)
_COMMON = {"scope": "linear", "block": BLOCK, "damp": DAMP,
           "activations": "dense model, one pass", "calibration": "wikitext-2 test slice"}
CODE_VERSION = "sparsegpt-1"   # bump when the method changes: cached weights are keyed on it
register_preset(Preset("sparsegpt-50", "sparsegpt", default=False, params={"amount": 0.5, **_COMMON}))
register_preset(Preset("sparsegpt-2-4", "sparsegpt", default=False,
                       params={"n": 2, "m": 4, **_COMMON}))


def inverse_hessian_factor(gram: torch.Tensor, rows: int, w: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor of (2 X^T X / n + damping)^-1; dead inputs get H_ii = 1 and w = 0."""
    h = 2 * gram / rows
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += DAMP * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(hinv, upper=True)


def prune_layer(w: torch.Tensor, u: torch.Tensor, amount: float | None, n: int | None,
                m: int | None) -> torch.Tensor:
    """SparseGPT on one weight [out, in] (float64 work copy) given the factor ``u``; returns it."""
    cols = w.shape[1]
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        d = torch.diag(u1)
        if amount is not None:
            score = w1.pow(2) / d.pow(2)[None, :]
            k = int(score.numel() * amount)
            prune_mask = torch.zeros_like(w1, dtype=torch.bool)
            prune_mask.view(-1)[score.view(-1).topk(k, largest=False).indices] = True
        else:
            prune_mask = torch.zeros_like(w1, dtype=torch.bool)
        for j in range(i2 - i1):
            col = w1[:, j]
            if n is not None and j % m == 0:
                score = w1[:, j:j + m].pow(2) / d[j:j + m].pow(2)[None, :]
                drop = score.topk(m - n, dim=1, largest=False).indices
                prune_mask[:, j:j + m].scatter_(1, drop, True)
            q = col.clone()
            q[prune_mask[:, j]] = 0
            e = (col - q) / d[j]
            w1[:, j:] -= e[:, None] * u1[j, j:][None, :]
            w1[:, j] = q
            err1[:, j] = e
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return w


@handler("sparsegpt", kind="pruning", version=CODE_VERSION, context=True)
def apply_sparsegpt(model, preset: Preset, family: str, ctx: dict) -> dict:
    p = preset.params

    def prune(stats, modules):
        for name, mod in modules.items():
            view = out_in(mod)
            w = view.to(torch.float64).cpu()
            u = inverse_hessian_factor(stats[name]["gram"].to(torch.float64).cpu(),
                                       stats[name]["rows"], w)
            w = prune_layer(w, u, p.get("amount"), p.get("n"), p.get("m"))
            view.copy_(w.to(view.dtype))
            stats[name]["gram"] = None          # free the Gram matrix as we go
    return calibrated_pruning("sparsegpt", model, preset, family, ctx, prune, gram=True,
                              code_version=CODE_VERSION,
                              backend=f"plain PyTorch SparseGPT (torch {torch.__version__})")
