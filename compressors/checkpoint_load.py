"""Loading a compressed checkpoint someone else produced, per format, and reading its weights.

    model, how = load(folder, fmt, family, device)     # the model the probes run on
    w = dense_weight(module)                            # a layer's weight as fp32 [out, in]
    sizes = stored_bytes(folder)                        # tensor name -> bytes as stored

Formats are the ones transformers loads itself, named by ``quantization_config.quant_method``:
``bitsandbytes`` (serialized 8- and 4-bit: bitsandbytes modules, its CPU kernels), ``torchao``
(tensor subclasses, its CPU kernels), ``compressed-tensors`` (llm-compressor's format:
decompressed to fp32 at load, transformers' ``dequantize=True``), ``gptq`` (through gptqmodel;
its CPU kernels take fp16/bf16 activations only, so the integer codes are dequantized into fp32
``nn.Linear`` layers, as compressors/gptq.py does) and ``dense`` (no quantization config: a
pruned or otherwise edited model saved in float). Safetensors only; no remote code.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from compressors import CompressionError
from compressors.backends import BNB, COMPRESSED_TENSORS, GPTQ, TORCHAO, gptq_cpu_workers

FAMILY_CLASSES = {"masked": "AutoModelForMaskedLM", "seq2seq": "AutoModelForSeq2SeqLM",
                  "causal": "AutoModelForCausalLM"}
# quant_method -> (module to import, how to install it); transformers itself needs nothing more.
BACKENDS = {"gptq": GPTQ, "bitsandbytes": BNB, "torchao": TORCHAO,
            "compressed-tensors": COMPRESSED_TENSORS, "dense": None}
_SCALE_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}


def _header(path: Path) -> dict:
    """A safetensors file's header: name -> {dtype, shape, data_offsets} (no tensor is read)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        head = json.loads(f.read(n))
    head.pop("__metadata__", None)
    return head


def stored_bytes(folder: Path) -> dict[str, tuple[str, int]]:
    """Every tensor in the folder's safetensors: name -> (dtype, bytes as stored on disk)."""
    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        for name, t in _header(path).items():
            start, end = t["data_offsets"]
            out[name] = (t["dtype"], end - start)
    return out


def _auto_class(family: str):
    import transformers
    return getattr(transformers, FAMILY_CLASSES[family])


def _placement(device: str) -> dict:
    return {"device_map": {"": device if device != "auto" else "cpu"}}


def load(folder: Path, fmt: str, family: str, device: str = "cpu"):
    """(model in eval mode, how it computes) for a checkpoint folder of format ``fmt``."""
    cls = _auto_class(family)
    common = dict(dtype=torch.float32, use_safetensors=True, trust_remote_code=False)
    if fmt == "gptq":
        return _load_gptq(folder, family, device), (
            "GPTQ codes dequantized into fp32 nn.Linear (fp32 arithmetic; gptqmodel's CPU kernels "
            "take fp16/bf16 activations only)")
    if fmt == "compressed-tensors":
        from transformers import CompressedTensorsConfig
        model = cls.from_pretrained(folder, quantization_config=CompressedTensorsConfig(dequantize=True),
                                    **common, **_placement(device))
        return model.eval(), "compressed-tensors weights decompressed to fp32 nn.Linear at load"
    model = cls.from_pretrained(folder, **common, **_placement(device)).eval()
    how = {"bitsandbytes": "bitsandbytes modules as loaded (its kernels)",
           "torchao": "torchao quantized tensors as loaded (its kernels)",
           "dense": "fp32 nn.Linear (the checkpoint's float weights)"}.get(fmt)
    if how is None:
        raise CompressionError(f"{folder}: checkpoint format {fmt!r} is not supported; supported: "
                               f"{', '.join(BACKENDS)}")
    return model, how


def _load_gptq(folder: Path, family: str, device: str):
    """An fp32 model holding the GPTQ layers dequantized and every other tensor as stored."""
    from gptqmodel import BACKEND, GPTQModel
    from safetensors.torch import load_file
    from transformers import AutoConfig

    gptq_cpu_workers()
    heads = stored_bytes(folder)
    scale_dtype = {d for n, (d, _) in heads.items() if n.endswith(".scales")}
    if len(scale_dtype) != 1 or next(iter(scale_dtype)) not in _SCALE_DTYPES:
        raise CompressionError(f"{folder}: GPTQ scales stored as {sorted(scale_dtype)}; expected "
                               "one float type (F16, BF16 or F32)")
    # Loaded in the scales' own dtype, so dequantizing reproduces the stored grid exactly (a bf16
    # load of fp16 scales moves weights by up to 0.5 % of a layer's range, measured here).
    qmodel = GPTQModel.load(str(folder), device="cpu", backend=BACKEND.GPTQ_TORCH,
                            dtype=_SCALE_DTYPES[scale_dtype.pop()]).model
    qmods = {n: m for n, m in qmodel.named_modules() if hasattr(m, "qweight")}
    if not qmods:
        raise CompressionError(f"{folder}: the GPTQ checkpoint has no quantized layers")
    state = {}
    for path in sorted(folder.glob("*.safetensors")):
        for name, t in load_file(str(path)).items():
            if not any(name.startswith(q + ".") for q in qmods):
                state[name] = t.float()
    for name, qm in qmods.items():
        state[f"{name}.weight"] = qm.dequantize_weight().float().t().contiguous()   # [in,out] -> [out,in]
        if getattr(qm, "bias", None) is not None:
            state[f"{name}.bias"] = qm.bias.float()
    del qmodel
    config = AutoConfig.from_pretrained(folder)
    del config.quantization_config
    model = _auto_class(family).from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight") and getattr(config, "tie_word_embeddings", False)}
    if set(missing) - tied or unexpected:
        raise CompressionError(f"{folder}: GPTQ checkpoint does not fit its config: missing "
                               f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}")
    if tied:
        model.tie_weights()
    return model.to(device if device != "auto" else "cpu").eval()


def dense_weight(module) -> torch.Tensor:
    """A linear layer's weight as fp32 [out, in], whatever holds it (float, bitsandbytes 8/4-bit,
    torchao tensor subclass): for sparsity and the change against the base."""
    w = module.weight
    cls = type(module).__name__   # bitsandbytes first: its parameters are Tensor subclasses too
    if cls == "Linear8bitLt":
        return w.data.float() * w.SCB.float().unsqueeze(1) / 127   # LLM.int8 row-wise absmax
    if cls == "Linear4bit":
        import bitsandbytes.functional as F
        return F.dequantize_4bit(w.data, w.quant_state).float()
    if type(w) not in (torch.Tensor, torch.nn.Parameter) and hasattr(w, "__tensor_flatten__"):
        return w.dequantize().float()                   # torchao tensor subclasses
    return w.detach().float()
