"""Layer-level helpers shared by the methods: GPT-2's Conv1D as nn.Linear, replacing a module,
weights as [out, in], N:M masks.

    scope, n_weights = linear_scope_as_linear(model)   # Conv1D layers become nn.Linear in place
"""
from __future__ import annotations

import torch

from compressors import CompressionError


def conv1d_to_linear(conv) -> torch.nn.Linear:
    lin = torch.nn.Linear(conv.weight.shape[0], conv.weight.shape[1], bias=conv.bias is not None)
    lin.weight.data = conv.weight.data.t().contiguous()   # Conv1D stores [in, out]
    if conv.bias is not None:
        lin.bias.data = conv.bias.data.clone()
    return lin

def set_module(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)

def linear_scope_as_linear(model) -> tuple[dict, int]:
    """The model's linear layers, GPT-2 ``Conv1D`` ones replaced in place by equivalent
    ``nn.Linear`` (backends that only know ``nn.Linear`` would skip them silently); returns
    ({name: original module}, number of weights in scope)."""
    from compressors.measure import linear_modules
    scope = linear_modules(model)
    n_weights = sum(m.weight.numel() for m in scope.values())
    for name, mod in scope.items():
        if not isinstance(mod, torch.nn.Linear):
            set_module(model, name, conv1d_to_linear(mod))
    return scope, n_weights


def out_in(module) -> torch.Tensor:
    """The weight as [out, in] (a view): GPT-2's Conv1D stores [in, out]."""
    return module.weight.data if isinstance(module, torch.nn.Linear) else module.weight.data.t()


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask [out, in] keeping the ``n`` highest scores in every group of ``m`` along input."""
    rows, cols = score.shape
    if cols % m:
        raise CompressionError(f"{n}:{m} sparsity needs an input width divisible by {m}, got {cols}")
    groups = score.reshape(rows, cols // m, m)
    drop = groups.topk(m - n, dim=-1, largest=False).indices
    keep = torch.ones_like(groups, dtype=torch.bool).scatter_(-1, drop, False)
    return keep.reshape(rows, cols)


def nm_holds(module, n: int, m: int) -> bool:
    """True when at most ``n`` of every ``m`` consecutive input weights are non-zero."""
    w = out_in(module)
    return bool(((w.reshape(w.shape[0], -1, m) != 0).sum(-1) <= n).all())
