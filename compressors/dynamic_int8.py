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
from compressors.layers import conv1d_to_linear, set_module
from compressors.scopes import scoped_linears

register_preset(Preset("int8-dyn", "dynamic-int8", params={"dtype": "qint8", "scope": "linear"},
                       bits=8, per_call=True))
# Scoped to one of the paper's groups (compressors/scopes.py): the paper found attention-only
# and feed-forward-only quantization cost different amounts of knowledge.
register_preset(Preset("dyn8-attn", "dynamic-int8", params={"dtype": "qint8", "scope": "attention"},
                       bits=8, default=False, per_call=True))
register_preset(Preset("dyn8-ffn", "dynamic-int8", params={"dtype": "qint8", "scope": "ffn"},
                       bits=8, default=False, per_call=True))


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
            set_module(model, name, conv1d_to_linear(module))
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
