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
from compressors.dynamic_int8 import _conv1d_to_linear, _set_module
from compressors.measure import linear_modules, weight_bytes

INSTALL = "pip install bitsandbytes==0.50.2"
BACKEND = ("bitsandbytes", INSTALL)

register_preset(Preset("bnb-int8", "bnb", bits=8, default=True, backend=BACKEND,
                       params={"kind": "int8", "threshold": 6.0}))
for qt in ("nf4", "fp4"):
    for dq, word in ((False, "single"), (True, "double")):
        register_preset(Preset(f"{qt}-{word}", "bnb", bits=4, backend=BACKEND,
                               default=(qt, word) == ("nf4", "single"),
                               params={"kind": qt, "double_quant": dq, "blocksize": 64,
                                       "compute_dtype": "float32"}))


def module_bits(modules: dict[str, torch.nn.Module], n_weights: int) -> float:
    """Measured bits per weight: bytes of the modules' stored weights and their quantization
    statistics (biases excluded), times 8, over the number of weights."""
    from compressors.measure import _tensor_bytes
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


@handler("bnb")
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
        lin = mod if isinstance(mod, torch.nn.Linear) else _conv1d_to_linear(mod)
        _set_module(model, name, _build(lin, preset.params, device))
    qtypes = (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)
    converted = {n: m for n, m in model.named_modules() if isinstance(m, qtypes)}
    missing = set(scope) - set(converted)
    if missing:
        raise CompressionError(f"{preset.id}: {len(missing)} linear layers stayed in float, e.g. "
                               f"{sorted(missing)[:3]}")
    return {"changed": bool(converted), "backend": f"bitsandbytes {bnb.__version__}",
            "bits": preset.bits, "bits_per_weight": round(module_bits(converted, n_weights), 4),
            "quantized_modules": len(converted), "kept_float": kept, "sparsity": None,
            "weight_bytes": weight_bytes(model), "weight_bytes_before": before}
