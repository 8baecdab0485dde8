"""bitsandbytes LLM.int8 and 4-bit NF4 / FP4 (with or without double quantization), on CPU or CUDA.

    compress(model, "nf4-double", family)

The in-memory model's linear layers (output head excluded, GPT-2's Conv1D converted first) are
swapped for bitsandbytes modules holding quantized weights; nothing is reloaded. bitsandbytes
>= 0.50 has CPU kernels. NF4/FP4 quantize blocks of 64 weights with one absmax each (the
bitsandbytes default); double quantization also quantizes those absmax values to 8 bits
(Dettmers et al. 2023, QLoRA). LLM.int8 keeps input features with outliers above 6.0 in float
(Dettmers et al. 2022, the threshold `load_in_8bit` uses).
"""
from __future__ import annotations

import torch

from compressors import CompressionError, Preset, handler, register_preset
from compressors.backends import BNB
from compressors.effects import quantized_effect
from compressors.layers import conv1d_to_linear, set_module
from compressors.measure import linear_modules, weight_bytes


register_preset(Preset("bnb-int8", "bnb", bits=8, default=True, backend=BNB, per_call=True,
                       params={"kind": "int8", "threshold": 6.0}))
for qt in ("nf4", "fp4"):
    for dq, word in ((False, "single"), (True, "double")):
        register_preset(Preset(f"{qt}-{word}", "bnb", bits=4, backend=BNB,
                               default=(qt, word) == ("nf4", "single"),
                               params={"kind": qt, "double_quant": dq, "blocksize": 64,
                                       "compute_dtype": "float32"}))


def _build(lin: torch.nn.Linear, params: dict, device):
    import bitsandbytes as bnb
    w, b = lin.weight.data, lin.bias
    if params["kind"] == "int8":
        new = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=b is not None,
                                  has_fp16_weights=False, threshold=params["threshold"])
        new.weight = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
    else:
        new = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=b is not None,
                                compute_dtype=torch.float32, quant_type=params["kind"],
                                compress_statistics=params["double_quant"])
        new.weight = bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type=params["kind"],
                                       compress_statistics=params["double_quant"],
                                       blocksize=params["blocksize"])
    if b is not None:
        new.bias = torch.nn.Parameter(b.data.clone(), requires_grad=False)
    return new.to(device)     # moving the module is what quantizes the weight


@handler("bnb", kind="quantization", version="bnb-1", effect=("bits_per_weight",))
def apply_bnb(model: torch.nn.Module, preset: Preset, family: str) -> dict:
    import bitsandbytes as bnb
    device = next(model.parameters()).device
    before = weight_bytes(model)
    scope = linear_modules(model)
    kept = []
    if preset.params["kind"] != "int8":
        # T5's feed-forward casts its input to `wo.weight.dtype` unless that is int8: a 4-bit
        # weight (stored as uint8) would turn activations into bytes. transformers keeps these
        # layers in float for 4-bit loading (`_keep_in_fp32_modules`); so do we, and record it.
        keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
        kept = sorted(n for n in scope if n.rpartition(".")[2] in keep)
        scope = {n: m for n, m in scope.items() if n not in kept}
    n_weights = sum(m.weight.numel() for m in scope.values())
    if preset.params["kind"] != "int8":
        # bitsandbytes' CPU 4-bit matmul repacks the absmax as [out, in / blocksize]: a layer
        # narrower than one block (or not a whole number of blocks) crashes at the first forward.
        bs = preset.params["blocksize"]
        odd = [n for n, m in scope.items() if m.weight.shape[-1 if isinstance(m, torch.nn.Linear)
                                                          else 0] % bs]
        if odd:
            raise CompressionError(f"{preset.id}: bitsandbytes 4-bit needs input widths that are a "
                                   f"multiple of its block size {bs}; {len(odd)} layers are not, "
                                   f"e.g. {odd[:3]} (use a model at least {bs} wide)")
    for name, mod in scope.items():
        lin = mod if isinstance(mod, torch.nn.Linear) else conv1d_to_linear(mod)
        set_module(model, name, _build(lin, preset.params, device))
    qtypes = (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)
    converted = {n: m for n, m in model.named_modules() if isinstance(m, qtypes)}
    return quantized_effect(model, preset, scope, converted, n_weights, before,
                            f"bitsandbytes {bnb.__version__}", kept_float=kept)
