"""GPTQ at 8, 4 and 3 bits through gptqmodel (the maintained successor of auto-gptq), calibrated on
the WikiText-2 slice, with quantized checkpoints cached on disk.

    compress(model, "gptq-w4", family, tokenizer=tok, model_info=info)

The dense model is saved (safetensors) to a temporary folder, quantized by gptqmodel with group
size 128 (the GPTQ paper's and gptqmodel's usual setting), and saved to
``$KCB_CACHE/gptq/<model>-<key>`` where the key hashes the model's revision (its checksum), the
bits, the group size, the calibration slice and the gptqmodel version: a rerun loads the cached
checkpoint instead of requantizing. For probing, the GPTQ codes are dequantized into the fp32
model (gptqmodel's CPU kernels need fp16/bf16 activations; its fused one also compiles a C++
extension on first use, minutes on a 2-core machine). gptqmodel must be installed with --no-deps (it declares torch>=2.14.1, which
would pull a CUDA torch): see scripts/setup.sh. Causal models only (gptqmodel's model zoo).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from compressors import BackendUnavailable, CompressionError, Preset, ckpt_cache, handler, register_preset
from compressors.calibration import calibration_batches
from compressors.measure import weight_bytes

INSTALL = ("pip install --no-deps gptqmodel==7.7.0 defuser==0.0.28 device-smi==0.5.7 "
           "logbar==0.4.15 pypcre==0.6.4 threadpoolctl==3.8.0 tokenicer==0.0.14 datasets==5.2.0 "
           "dill==0.4.1 pillow")
GROUP_SIZE = 128
for bits in (8, 4, 3):
    register_preset(Preset(f"gptq-w{bits}", "gptq", bits=bits, default=False,
                           backend=("gptqmodel", INSTALL),
                           params={"bits": bits, "group_size": GROUP_SIZE, "desc_act": False,
                                   "calibration": "wikitext-2 test slice"}))


def _cache_root() -> Path:
    return ckpt_cache.cache_root() / "gptq"


@handler("gptq", context=True)
def apply_gptq(model, preset: Preset, family: str, ctx: dict) -> dict:
    # gptqmodel's CPU thread pools need at least 2 workers: with GPTQMODEL_CPU_WORKERS=1 it fails
    # with "Virtual pool 'model_loader:cpu' requests 2 workers but parent 'cpu' only has 1".
    # 2 is also the right number on a 2-core machine (docs/backends).
    try:
        workers = int(os.environ.get("GPTQMODEL_CPU_WORKERS", "2"))
    except ValueError:
        workers = 2
    os.environ["GPTQMODEL_CPU_WORKERS"] = str(max(2, workers))
    from importlib.metadata import version

    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
    if family != "causal":   # not applicable (like a probe for another family): a skip
        raise BackendUnavailable(f"{preset.id}: gptqmodel quantizes decoder (causal) models only")
    info, tok = ctx["model_info"], ctx["tokenizer"]
    revision = ckpt_cache.revision(model, info)   # checksum, or the weights' own hash
    batches, calib = calibration_batches(tok)
    p = preset.params
    key = hashlib.sha256(json.dumps([revision, p["bits"], p["group_size"], p["desc_act"],
                                     calib["slice_sha256"], calib["tokens_used"],
                                     version("gptqmodel")]).encode()).hexdigest()[:16]
    folder = _cache_root() / f"{info.get('id', 'model')}-w{p['bits']}g{p['group_size']}-{key}"
    before = weight_bytes(model)
    cached = (folder / "done.json").is_file()
    if not cached:
        with tempfile.TemporaryDirectory() as dense_dir:
            model.save_pretrained(dense_dir, safe_serialization=True)
            tok.save_pretrained(dense_dir)
            qm = GPTQModel.load(dense_dir, QuantizeConfig(bits=p["bits"], group_size=p["group_size"],
                                                          desc_act=p["desc_act"]), device="cpu")
            rows = [{"input_ids": r.tolist(), "attention_mask": [1] * len(r)} for r in batches]
            qm.quantize(rows, calibration_data_min_length=1)
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            qm.save(str(tmp))
            (tmp / "done.json").write_text(json.dumps({"revision": revision, **p, "key": key}))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            del qm
    # gptqmodel's CPU kernels take fp16/bf16 activations only; the suite probes in fp32. So the
    # GPTQ checkpoint is loaded (bf16 compute dtype) and each layer's integer codes are
    # dequantized into the fp32 model's Linear: the weights are exactly GPTQ's grid values, the
    # arithmetic stays fp32 as for every other preset. weight_bytes is the quantized model's.
    loaded = GPTQModel.load(str(folder), device="cpu", backend=BACKEND.GPTQ_TORCH,
                            dtype=torch.bfloat16).model.eval()
    qmods = {n: m for n, m in loaded.named_modules() if hasattr(m, "qweight")}
    if not qmods:
        raise CompressionError(f"{preset.id}: the GPTQ checkpoint in {folder} has no quantized layers")
    dense = dict(model.named_modules())
    worst = 0.0
    with torch.no_grad():
        for name, qm in qmods.items():
            target = dense.get(name)
            if not isinstance(target, torch.nn.Linear):
                raise CompressionError(f"{preset.id}: GPTQ layer {name} has no nn.Linear twin")
            w = qm.dequantize_weight().float()       # gptqmodel's layout: [in, out]
            if w.shape != (target.in_features, target.out_features):
                raise CompressionError(f"{preset.id}: GPTQ layer {name} dequantizes to "
                                       f"{tuple(w.shape)}, expected [in, out]")
            w = w.t()
            rel = float((w - target.weight).norm() / target.weight.norm())
            worst = max(worst, rel)
            if rel > 0.5:   # a layout or packing error, not quantization noise
                raise CompressionError(f"{preset.id}: GPTQ layer {name} is {rel:.2f} away from "
                                       "the dense weight (relative): the checkpoint does not match")
            target.weight.copy_(w)
    q_bytes = weight_bytes(loaded)
    del loaded
    ckpt = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {"changed": True, "backend": f"gptqmodel {version('gptqmodel')}",
            "inference": "GPTQ codes dequantized into fp32 nn.Linear (fp32 arithmetic)",
            "bits": p["bits"], "group_size": p["group_size"], "max_relative_weight_error":
            round(worst, 6), "quantized_modules": len(qmods), "sparsity": None, "weight_bytes": q_bytes,
            "weight_bytes_before": before, "checkpoint_bytes": ckpt, "cache": str(folder),
            "cache_key_revision": revision,
            "cache_hit": cached, "calibration": calib}
