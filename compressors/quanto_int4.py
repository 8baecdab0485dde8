"""optimum-quanto weight-only int4 (and int8): a 4-bit path that runs on CPU.

    compress(model, "quanto-w4", family)

qint4 weights in groups along the input (quanto's default 128, or the largest divisor it picks
for widths such as 576: recorded as group_sizes), a float scale and shift per group; activations
stay float. Output head excluded, GPT-2's Conv1D converted first
(quanto, like transformers' integration, only sees nn.Linear).
"""
from __future__ import annotations

import types

import torch

from compressors import CompressionError, Preset, handler, register_preset
from compressors.bnb import module_bits
from compressors.dynamic_int8 import linear_scope_as_linear
from compressors.measure import weight_bytes

INSTALL = "pip install --no-deps optimum-quanto==0.2.7 ninja"
BACKEND = ("optimum.quanto", INSTALL)

register_preset(Preset("quanto-w4", "quanto", bits=4, default=False, backend=BACKEND,
                       params={"weights": "qint4", "group_size": 128}))
register_preset(Preset("quanto-w8", "quanto", bits=8, default=False, backend=BACKEND,
                       params={"weights": "qint8"}))


def _dequantized_forward(self, input):
    # quanto's QuantizedLinearFunction is an autograd Function that fails under
    # torch.inference_mode ("Cannot set version_counter for inference tensor"), which the probes
    # use. On CPU its qint4 path dequantizes and multiplies anyway: do that here, same values.
    return torch.nn.functional.linear(input, self.weight.dequantize(), self.bias)


@handler("quanto")
def apply_quanto(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    import optimum.quanto as oq
    from importlib.metadata import version
    before = weight_bytes(model)
    scope, n_weights = linear_scope_as_linear(model)
    names = sorted(scope)
    oq.quantize(model, weights=getattr(oq, preset.params["weights"]), include=names)
    oq.freeze(model)
    converted = {n: m for n, m in model.named_modules() if isinstance(m, oq.QLinear)}
    for mod in converted.values():
        mod.forward = types.MethodType(_dequantized_forward, mod)
    # "None": one scale per output row (quanto does not group rows narrower than a group)
    groups = sorted({str(m.weight.__tensor_flatten__()[1].get("group_size"))
                     for m in converted.values() if hasattr(m.weight, "__tensor_flatten__")})
    missing = set(names) - set(converted)
    if missing:
        raise CompressionError(f"{preset.id}: quanto left {len(missing)} linear layers in float, "
                               f"e.g. {missing and sorted(missing)[:3]}")
    return {"changed": bool(converted), "backend": f"optimum-quanto {version('optimum-quanto')}",
            "bits": preset.bits, "bits_per_weight": round(module_bits(converted, n_weights), 4),
            "quantized_modules": len(converted), "group_sizes": groups, "sparsity": None,
            "inference": "quanto weights dequantized to fp32 in each forward",
            "weight_bytes": weight_bytes(model), "weight_bytes_before": before}
