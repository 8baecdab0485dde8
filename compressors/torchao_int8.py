"""torchao int8 weight-only and int8 dynamic (int8 activations x int8 weights), and torchao's
int4 weight-only path, which needs CUDA.

    compress(model, "ao-w8a8", family)

Weights are quantized per output channel (symmetric, torchao's default for these configs).
Output head excluded, GPT-2's Conv1D converted to nn.Linear first (torchao skips Conv1D silently).
"""
from __future__ import annotations

import torch

from compressors import Preset, handler, register_preset
from compressors.backends import TORCHAO
from compressors.effects import quantized_effect
from compressors.layers import linear_scope_as_linear
from compressors.measure import weight_bytes


register_preset(Preset("ao-w8only", "torchao", bits=8, default=False, backend=TORCHAO,
                       params={"config": "Int8WeightOnlyConfig"}))
register_preset(Preset("ao-w8a8", "torchao", bits=8, default=True, backend=TORCHAO, per_call=True,
                       params={"config": "Int8DynamicActivationInt8WeightConfig"}))
# torchao's int4 weight-only kernels exist for CUDA only (docs/backends: no CPU kernel here).
register_preset(Preset("ao-w4", "torchao", bits=4, default=False, backend=TORCHAO, cuda=True,
                       params={"config": "Int4WeightOnlyConfig", "group_size": 128}))


@handler("torchao", kind="quantization", version="torchao-1", effect=("bits_per_weight",))
def apply_torchao(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    import torchao
    from torchao import quantization as q
    before = weight_bytes(model)
    scope, n_weights = linear_scope_as_linear(model)
    names = set(scope)
    cls = getattr(q, preset.params["config"])
    config = cls(group_size=preset.params["group_size"]) if "group_size" in preset.params else cls()
    q.quantize_(model, config, filter_fn=lambda m, fqn: fqn in names)
    converted = {n: m for n, m in model.named_modules()
                 if n in names and type(m.weight) is not torch.nn.Parameter
                 and type(m.weight) is not torch.Tensor}
    return quantized_effect(model, preset, names, converted, n_weights, before,
                            f"torchao {torchao.__version__}")
