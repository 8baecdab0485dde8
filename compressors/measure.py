"""What a compressor actually did, measured on the model (never taken from its config).

    scope = linear_modules(model)          # {name: module} of the prunable/quantizable linears
    weight_bytes(model)                    # true serialized size of the weights
"""
from __future__ import annotations

import io

import torch

# Module classes that hold a matmul weight: nn.Linear, and GPT-2's Conv1D (weights are [in, out]),
# which several backends silently skip. Resolved lazily so transformers stays optional here.
def _linear_types() -> tuple[type, ...]:
    types: list[type] = [torch.nn.Linear]
    try:
        from transformers.pytorch_utils import Conv1D
        types.append(Conv1D)
    except Exception:  # pragma: no cover - transformers is a hard dependency in practice
        pass
    return tuple(types)


def output_head_names(model: torch.nn.Module) -> set[str]:
    """Names of modules that are the output head (or share its weight with the embeddings)."""
    names = set()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, module in model.named_modules():
        if head is not None and module is head:
            names.add(name)
    return names


def linear_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Linear layers in scope for compression: every Linear/Conv1D except the output head.

    The head is excluded because it is usually tied to the input embeddings (pruning it would
    prune the embeddings too) and because the paper's groups are attention and feed-forward.
    """
    heads = output_head_names(model)
    types = _linear_types()
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, types) and name not in heads and not any(
                name.startswith(h + ".") for h in heads):
            out[name] = module
    return out


def sparsity(modules: dict[str, torch.nn.Module]) -> tuple[float, int, int]:
    """(fraction of exact zeros, zero count, total count) over the modules' weights."""
    zeros = total = 0
    for module in modules.values():
        w = module.weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
    return (zeros / total if total else 0.0), zeros, total


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the serialized state_dict: the true storage cost, including quantized packs.

    ``get_memory_footprint()`` is wrong for dynamic quantization (it sees no parameters), so we
    serialize. Tied tensors are stored once by torch.save, as on disk.
    """
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
