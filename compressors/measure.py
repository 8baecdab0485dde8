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


def _tensor_bytes(obj, seen: set) -> int:
    if isinstance(obj, torch.Tensor) and hasattr(obj, "__tensor_flatten__") and \
            type(obj) not in (torch.Tensor, torch.nn.Parameter):
        # a tensor subclass (torchao's Int8Tensor, ...): count the inner tensors it stores
        inner, _ = obj.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(obj, name), seen) for name in inner)
    if isinstance(obj, torch.Tensor):
        if obj.is_quantized:
            key = (id(obj),)
            size = obj.numel() * obj.element_size()
        else:
            key = (obj.untyped_storage().data_ptr(), obj.storage_offset(), obj.numel())
            size = obj.numel() * obj.element_size()
        if key in seen:
            return 0            # tied weights are stored once
        seen.add(key)
        return size
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(x, seen) for x in obj)
    if isinstance(obj, torch.ScriptObject) and hasattr(obj, "__getstate__"):
        return _tensor_bytes(obj.__getstate__(), seen)   # packed quantized linear params
    return 0


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the tensors in the state_dict, as stored: int8 weights count one byte each,
    tied tensors once. ``get_memory_footprint()`` is wrong for dynamic quantization (it sees no
    parameters); tests check this against the size of a real ``torch.save``."""
    seen: set = set()
    return sum(_tensor_bytes(v, seen) for v in model.state_dict().values())


def serialized_bytes(model: torch.nn.Module) -> int:
    """Size of ``torch.save(state_dict)``: slow for big models; the cross-check for the above."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def module_bits(modules: dict[str, torch.nn.Module], n_weights: int) -> float:
    """Measured bits per weight: bytes of the modules' stored weights and their quantization
    statistics (biases excluded), times 8, over the number of weights."""
    seen: set = set()
    total = 0
    # Hold every state dict at once: state_dict() builds some tensors afresh (bitsandbytes' quant
    # maps), and a freed one's address may be reused by the next module's, which the dedup of tied
    # tensors by address would then skip (bits came out 4.6 or 5.05 for the same model by test order).
    state_dicts = [mod.state_dict() for mod in modules.values()]
    for sd in state_dicts:
        for key, value in sd.items():
            if key != "bias":
                total += _tensor_bytes(value, seen)
    return 8 * total / n_weights
