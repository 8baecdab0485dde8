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

from compressors import Preset, handler, register_preset
from compressors.backends import QUANTO
from compressors.effects import quantized_effect
from compressors.layers import linear_scope_as_linear
from compressors.measure import weight_bytes


register_preset(Preset("quanto-w4", "quanto", bits=4, default=False, backend=QUANTO,
                       params={"weights": "qint4", "group_size": 128}))
register_preset(Preset("quanto-w8", "quanto", bits=8, default=False, backend=QUANTO,
                       params={"weights": "qint8"}))


def _dequantized_forward(self, input):
    # quanto's QuantizedLinearFunction is an autograd Function that fails under
    # torch.inference_mode ("Cannot set version_counter for inference tensor"), which the probes
    # use. On CPU its qint4 path dequantizes and multiplies anyway: do that here, same values.
    return torch.nn.functional.linear(input, self.weight.dequantize(), self.bias)


@handler("quanto", kind="quantization", version="quanto-1", effect=("bits_per_weight",))
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
    return quantized_effect(model, preset, names, converted, n_weights, before,
                            f"optimum-quanto {version('optimum-quanto')}", group_sizes=groups,
                            inference="quanto weights dequantized to fp32 in each forward")
