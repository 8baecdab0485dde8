"""Dynamic int8 quantization of the linear layers (`int8-dyn`, the paper's quantization).

    compress(model, "int8-dyn", family)

torch's quantize_dynamic: int8 weights (per-tensor affine), activations quantized on the fly.
Output head excluded, as for pruning. Runs on CPU only (torch has no CUDA kernel for it).
GPT-2's Conv1D is not an nn.Linear; it is converted to an equivalent nn.Linear first so it is
quantized instead of being silently left in fp32.
"""
from __future__ import annotations

import warnings

import torch

from compressors import CompressionError, Preset, handler, register_preset
from compressors.measure import weight_bytes
from compressors.scopes import scoped_linears

register_preset(Preset("int8-dyn", "dynamic-int8", params={"dtype": "qint8", "scope": "linear"},
                       bits=8))
# Scoped to one of the paper's groups (compressors/scopes.py): the paper found attention-only
# and feed-forward-only quantization cost different amounts of knowledge.
register_preset(Preset("dyn8-attn", "dynamic-int8", params={"dtype": "qint8", "scope": "attention"},
                       bits=8, default=False))
register_preset(Preset("dyn8-ffn", "dynamic-int8", params={"dtype": "qint8", "scope": "ffn"},
                       bits=8, default=False))


def _conv1d_to_linear(conv) -> torch.nn.Linear:
    lin = torch.nn.Linear(conv.weight.shape[0], conv.weight.shape[1], bias=conv.bias is not None)
    lin.weight.data = conv.weight.data.t().contiguous()   # Conv1D stores [in, out]
    if conv.bias is not None:
        lin.bias.data = conv.bias.data.clone()
    return lin


def linear_scope_as_linear(model) -> tuple[dict, int]:
    """The model's linear layers, GPT-2 ``Conv1D`` ones replaced in place by equivalent
    ``nn.Linear`` (backends that only know ``nn.Linear`` would skip them silently); returns
    ({name: original module}, number of weights in scope)."""
    from compressors.measure import linear_modules
    scope = linear_modules(model)
    n_weights = sum(m.weight.numel() for m in scope.values())
    for name, mod in scope.items():
        if not isinstance(mod, torch.nn.Linear):
            _set_module(model, name, _conv1d_to_linear(mod))
    return scope, n_weights


def _set_module(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@handler("dynamic-int8", kind="quantization", version="dynamic-int8-1")
def apply_dynamic_int8(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    if next(model.parameters()).device.type != "cpu":
        raise CompressionError(f"{preset.id} runs on CPU only (torch has no CUDA dynamic-int8 kernel)")
    before_bytes = weight_bytes(model)
    try:
        scope = scoped_linears(model, preset.params.get("scope", "linear"))
    except ValueError as exc:
        raise CompressionError(f"{preset.id}: {exc}") from None
    for name, module in scope.items():
        if not isinstance(module, torch.nn.Linear):
            _set_module(model, name, _conv1d_to_linear(module))
    names = set(scope)
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.quantization import quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.ao.quantization is deprecated, still the paper's path
        quantize_dynamic(model, qconfig_spec=names, dtype=torch.qint8, inplace=True)
    converted = [n for n, m in model.named_modules() if isinstance(m, QLinear) and n in names]
    missing = names - set(converted)
    if missing:
        raise CompressionError(f"{preset.id} left {len(missing)} linear layers in float, e.g. "
                               f"{sorted(missing)[:3]}")
    return {"changed": bool(converted), "backend": f"torch.ao quantize_dynamic (torch {torch.__version__})",
            "bits": 8, "quantized_modules": len(converted), "sparsity": None,
            "weight_bytes": weight_bytes(model), "weight_bytes_before": before_bytes}
