"""Which linear layers are "attention", "feed-forward" or the "final dense" layer, per architecture.

    scoped_linears(model, "attention")   # {name: module} of the attention projections

The paper groups a transformer's linear layers into attention and feed-forward; this is the one
mapping of module names that every scoped preset (pruning, scoped dynamic int8) uses. Names are
matched by their last one or two dotted parts, so the mapping works for encoder-only, decoder-only
and encoder-decoder stacks alike. ``final-dense`` is the last linear layer of every feed-forward
block (the one that writes back into the residual stream): the paper's final-dense-layer
experiment prunes only these. Layers in no group (poolers, MLM transforms) are only in ``linear``.
The output head is never in any scope (measure.linear_modules excludes it).
"""
from __future__ import annotations

import torch

from compressors.measure import linear_modules, sparsity

# arch -> (attention name endings, feed-forward name endings, final-dense endings).
# An ending matches the module name's last parts: "attention.output.dense" must be checked before
# the feed-forward "output.dense", so attention is tested first.
MAPPING: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "bert": (("attention.self.query", "attention.self.key", "attention.self.value",
              "attention.output.dense"),
             ("intermediate.dense", "output.dense"), ("output.dense",)),
    "distilbert": (("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"),
                   ("ffn.lin1", "ffn.lin2"), ("ffn.lin2",)),
    "albert": (("attention.query", "attention.key", "attention.value", "attention.dense"),
               ("ffn", "ffn_output"), ("ffn_output",)),
    "t5": (("SelfAttention.q", "SelfAttention.k", "SelfAttention.v", "SelfAttention.o",
            "EncDecAttention.q", "EncDecAttention.k", "EncDecAttention.v", "EncDecAttention.o"),
           ("DenseReluDense.wi", "DenseReluDense.wi_0", "DenseReluDense.wi_1", "DenseReluDense.wo"),
           ("DenseReluDense.wo",)),
    "gpt2": (("attn.c_attn", "attn.c_proj", "crossattention.c_attn", "crossattention.c_proj",
              "crossattention.q_attn"),
             ("mlp.c_fc", "mlp.c_proj"), ("mlp.c_proj",)),
    "llama": (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
              ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"), ("mlp.down_proj",)),
}
MAPPING["roberta"] = MAPPING["bert"]           # same module names as BERT
MAPPING["gemma3"] = MAPPING["llama"]           # Gemma3's decoder layers use Llama's names
# config.model_type -> architecture key above
MODEL_TYPES = {"bert": "bert", "roberta": "roberta", "distilbert": "distilbert", "albert": "albert",
               "t5": "t5", "mt5": "t5", "gpt2": "gpt2", "llama": "llama", "mistral": "llama",
               "qwen2": "llama", "gemma3": "gemma3", "gemma3_text": "gemma3"}
SCOPES = ("linear", "attention", "ffn", "final-dense")


def architecture(model: torch.nn.Module) -> str:
    mtype = getattr(getattr(model, "config", None), "model_type", None)
    if mtype not in MODEL_TYPES:
        raise ValueError(f"no attention/feed-forward mapping for model type {mtype!r}; known: "
                         f"{', '.join(sorted(MODEL_TYPES))} (add it to compressors/scopes.py)")
    return MODEL_TYPES[mtype]


def _ends(name: str, endings: tuple[str, ...]) -> bool:
    return any(name == e or name.endswith("." + e) for e in endings)


def group_of(name: str, arch: str) -> str | None:
    """'attention', 'ffn' or None for a linear layer's full module name."""
    attn, ffn, _ = MAPPING[arch]
    if _ends(name, attn):
        return "attention"
    if _ends(name, ffn):
        return "ffn"
    return None


def scoped_linears(model: torch.nn.Module, scope: str) -> dict[str, torch.nn.Module]:
    """The linear layers of ``scope`` (one of SCOPES); raises ValueError when none match."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    everything = linear_modules(model)
    if scope == "linear":
        return everything
    arch = architecture(model)
    if scope == "final-dense":
        final = MAPPING[arch][2]
        chosen = {n: m for n, m in everything.items()
                  if _ends(n, final) and group_of(n, arch) == "ffn"}
    else:
        chosen = {n: m for n, m in everything.items() if group_of(n, arch) == scope}
    if not chosen:
        raise ValueError(f"scope {scope!r} matched no linear layer of this {arch} model")
    return chosen


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
