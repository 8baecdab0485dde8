"""Structured pruning (whole rows, whole attention heads) and 2:4 semi-structured magnitude pruning.

    compress(model, "rows-20", family)    # each linear layer loses its 20% lowest-L1 output rows
    compress(model, "heads-25", family)   # each attention layer loses its 25% lowest-L1 heads
    compress(model, "mag-2-4", family)    # 2 of every 4 consecutive input weights zeroed

2:4 along the input dimension is the pattern sparse tensor cores accelerate (NVIDIA Ampere+);
on CPU the mask still gives the accuracy numbers. A head is removed by zeroing its query rows and
its columns of the output projection, so its contribution to the residual stream is exactly zero.
"""
from __future__ import annotations

import torch
from torch.nn.utils import prune

from compressors import CompressionError, Preset, handler, register_preset
from compressors.effects import nm_effect
from compressors.layers import nm_mask, out_in
from compressors.measure import linear_modules, sparsity, weight_bytes
from compressors.scopes import architecture, sparsity_by_scope

register_preset(Preset("rows-20", "structured-rows", default=False,
                       params={"amount": 0.2, "scope": "linear", "norm": "L1", "unit": "output row"}))
register_preset(Preset("heads-25", "structured-heads", default=False,
                       params={"amount": 0.25, "scope": "attention", "norm": "L1", "unit": "head"}))
register_preset(Preset("mag-2-4", "semi-structured", default=False,
                       params={"n": 2, "m": 4, "scope": "linear", "score": "|w|"}))

# arch -> (query projection ending, output projection ending); GPT-2 fuses q, k, v in c_attn.
HEAD_PROJ = {"llama": ("self_attn.q_proj", "self_attn.o_proj"),
             "gemma3": ("self_attn.q_proj", "self_attn.o_proj"),
             "bert": ("attention.self.query", "attention.output.dense"),
             "roberta": ("attention.self.query", "attention.output.dense"),
             "distilbert": ("attention.q_lin", "attention.out_lin"),
             "albert": ("attention.query", "attention.dense"),
             "t5": ("SelfAttention.q", "SelfAttention.o"),
             "gpt2": ("attn.c_attn", "attn.c_proj")}


def _config_heads(model):
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "num_heads", None) \
        or getattr(cfg, "n_head", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None) or cfg.n_embd
    head_dim = getattr(cfg, "head_dim", None) or getattr(cfg, "d_kv", None) or hidden // heads
    return heads, head_dim


@handler("structured-rows", kind="pruning", version="structured-rows-1")
def apply_rows(model, preset: Preset, family: str) -> dict:
    modules = linear_modules(model)
    if not modules:
        raise CompressionError(f"{preset.id}: the model has no linear layers to prune")
    before = sparsity(modules)[0]
    for m in modules.values():
        dim = 0 if isinstance(m, torch.nn.Linear) else 1       # output rows; Conv1D is [in, out]
        prune.ln_structured(m, "weight", amount=preset.params["amount"], n=1, dim=dim)
        prune.remove(m, "weight")
    rows = sum(int((out_in(m) == 0).all(dim=1).sum()) for m in modules.values())
    total_rows = sum(out_in(m).shape[0] for m in modules.values())
    after, zeros, total = sparsity(modules)
    if abs(rows / total_rows - preset.params["amount"]) > 0.02:
        raise CompressionError(f"{preset.id}: {rows}/{total_rows} rows removed, target "
                               f"{preset.params['amount']}")
    return {"changed": after > before, "backend": f"torch.nn.utils.prune.ln_structured "
            f"(torch {torch.__version__})", "sparsity": round(after, 6),
            "sparsity_by_scope": sparsity_by_scope(model), "rows_removed": rows,
            "rows_total": total_rows, "zeros": zeros, "params_in_scope": total,
            "modules_pruned": len(modules), "bits": None, "quantized_modules": 0,
            "weight_bytes": weight_bytes(model)}


@handler("structured-heads", kind="pruning", version="structured-heads-1")
def apply_heads(model, preset: Preset, family: str) -> dict:
    try:
        arch = architecture(model)
    except ValueError as exc:
        raise CompressionError(f"{preset.id}: {exc}") from None
    q_end, o_end = HEAD_PROJ[arch]
    heads, head_dim = _config_heads(model)
    mods = linear_modules(model)
    pairs = [(mods[n], mods[n[:-len(q_end)] + o_end]) for n in mods
             if n.endswith(q_end) and n[:-len(q_end)] + o_end in mods]
    if not pairs:
        raise CompressionError(f"{preset.id}: found no attention layers ({q_end}) in this {arch} model")
    # At least one head per layer: on models with fewer than 4 heads the measured fraction is
    # above the target, and the effect records it (head_fraction).
    k = max(1, round(preset.params["amount"] * heads))
    if k >= heads:
        raise CompressionError(f"{preset.id}: removing {k} of {heads} heads would empty the layer")
    removed = 0
    with torch.no_grad():
        for q_mod, o_mod in pairs:
            q = out_in(q_mod)[: heads * head_dim]          # GPT-2: the q third of c_attn
            o = out_in(o_mod)
            score = (q.abs().reshape(heads, head_dim, -1).sum((1, 2))
                     + o.abs().reshape(o.shape[0], heads, head_dim).sum((0, 2)))
            for h in score.topk(k, largest=False).indices.tolist():
                q[h * head_dim:(h + 1) * head_dim] = 0
                o[:, h * head_dim:(h + 1) * head_dim] = 0
                if getattr(q_mod, "bias", None) is not None:
                    q_mod.bias.data[h * head_dim:(h + 1) * head_dim] = 0
                removed += 1
    return {"changed": removed > 0, "backend": f"plain PyTorch (torch {torch.__version__})",
            "heads_removed": removed, "heads_total": heads * len(pairs),
            "head_fraction": round(removed / (heads * len(pairs)), 6),
            "sparsity": round(sparsity(mods)[0], 6), "sparsity_by_scope": sparsity_by_scope(model),
            "modules_pruned": 2 * len(pairs), "bits": None, "quantized_modules": 0,
            "weight_bytes": weight_bytes(model)}


@handler("semi-structured", kind="pruning", version="semi-structured-1")
def apply_nm(model, preset: Preset, family: str) -> dict:
    n, m = preset.params["n"], preset.params["m"]
    modules = linear_modules(model)
    before = sparsity(modules)[0]
    with torch.no_grad():
        for mod in modules.values():
            w = out_in(mod)
            w.mul_(nm_mask(w.abs(), n, m))
    return nm_effect(model, modules, before, preset, backend=f"plain PyTorch (torch {torch.__version__})")


