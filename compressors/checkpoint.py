"""A compressed checkpoint produced elsewhere, as a preset: ``--checkpoint PATH`` -> ``ckpt-<name>``.

    model, effect = compress(dense, "ckpt-base-gptq-w4", family, tokenizer=tok)   # loads it from disk

The preset is made from the command line by benchmarks/user_checkpoints.py (``--checkpoint``).

The checkpoint is compared with its base model, the one of the run's ``--models`` whose config
has the same family and shape (model type, vocabulary, widths, layer count). Its effect is read
from the weights, never taken from its config: bits per weight and bytes as stored (the
safetensors headers: every tensor a layer stores, scales and zero points included, over the
base's number of weights in that layer), sparsity and the relative change of the linear layers
against the base (from the weights as loaded, dequantized). The quantization config it declares
is recorded beside them. Loading per format: compressors/checkpoint_load.py.
"""
from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from compressors import CompressionError, Preset, handler
from compressors.checkpoint_load import BACKENDS, dense_weight, load, stored_bytes
from compressors.measure import linear_modules, weight_bytes

_PACKAGES = {"gptq": "gptqmodel", "bitsandbytes": "bitsandbytes", "torchao": "torchao",
             "compressed-tensors": "compressed-tensors", "dense": "transformers"}


class CheckpointError(ValueError):
    """A --checkpoint entry that cannot be used; the message names it and the fix."""


def declared(config) -> tuple[str, dict | None, int | None]:
    """(format, the quantization config as declared, its weight bit width if it states one)."""
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return "dense", None, None
    qc = qc if isinstance(qc, dict) else qc.to_dict()
    qc = json.loads(json.dumps(qc, default=str))   # JSON-safe for the record
    fmt = str(qc.get("quant_method", "unknown")).lower().replace("_", "-")
    if fmt == "gptq":
        bits = qc.get("bits")
    elif fmt == "bitsandbytes":
        bits = 8 if qc.get("load_in_8bit") else 4 if qc.get("load_in_4bit") else None
    elif fmt == "torchao":
        found = set(re.findall(r"Int(\d+)", json.dumps(qc.get("quant_type"))))
        bits = int(found.pop()) if len(found) == 1 else None
    elif fmt == "compressed-tensors":
        found = {g.get("weights", {}).get("num_bits") for g in (qc.get("config_groups") or {}).values()
                 if isinstance(g, dict) and g.get("weights")}
        bits = found.pop() if len(found) == 1 else None
    else:
        raise CheckpointError(f"checkpoint format {fmt!r} is not supported; supported: "
                              f"{', '.join(BACKENDS)} (what transformers loads on this machine)")
    return fmt, qc, bits


def _check_tokenizer(folder: Path, base_tok, pid: str) -> str:
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return "the base model's (the checkpoint has none)"
    from transformers import AutoTokenizer
    if AutoTokenizer.from_pretrained(folder).get_vocab() != base_tok.get_vocab():
        raise CompressionError(f"{pid}: the checkpoint's tokenizer differs from its base model's; "
                               "compare it against the model it was made from")
    return "the checkpoint's (same vocabulary as the base)"


def _version(fmt: str) -> str:
    try:
        return f"{_PACKAGES[fmt]} {version(_PACKAGES[fmt])}"
    except PackageNotFoundError:
        return _PACKAGES[fmt]


@handler("checkpoint", kind="checkpoint", version="checkpoint-1", context=True)
def apply_checkpoint(model, preset: Preset, family: str, ctx: dict) -> dict:
    """Load the checkpoint (the dense ``model`` is read, never changed) and measure it."""
    p = preset.params
    folder = Path(p["path"])
    device = next(model.parameters()).device.type
    loaded, how = load(folder, p["format"], family, device)
    tokenizer = _check_tokenizer(folder, ctx["tokenizer"], preset.id)
    sizes = stored_bytes(folder)
    mods = dict(loaded.named_modules())
    n_weights = scope_bytes = zeros = quantized = 0
    diff2 = base2 = worst = 0.0
    with torch.no_grad():
        for name, base_mod in linear_modules(model).items():
            w0 = base_mod.weight.detach().float()
            if name not in mods:
                raise CompressionError(f"{preset.id}: the checkpoint has no layer {name}: not a "
                                       f"checkpoint of {p['base']}")
            w = dense_weight(mods[name]).to(w0.device)
            if w.shape != w0.shape and w.t().shape == w0.shape:   # GPT-2 Conv1D stores [in, out]
                w = w.t()
            if w.shape != w0.shape:
                raise CompressionError(f"{preset.id}: layer {name} is {tuple(w.shape)} in the "
                                       f"checkpoint, {tuple(w0.shape)} in {p['base']}")
            stored = {k: v for k, v in sizes.items() if k.startswith(name + ".") and not k.endswith(".bias")}
            if not stored:
                raise CompressionError(f"{preset.id}: the checkpoint stores no tensor for layer {name}")
            scope_bytes += sum(b for _, b in stored.values())
            quantized += set(stored) != {f"{name}.weight"} or stored[f"{name}.weight"][0] not in (
                "F32", "F16", "BF16", "F64")
            n_weights += w0.numel()
            zeros += int((w == 0).sum())
            d2, b2 = float(((w - w0) ** 2).sum()), float((w0 ** 2).sum())
            diff2, base2 = diff2 + d2, base2 + b2
            worst = max(worst, (d2 / b2) ** 0.5 if b2 else 0.0)
    change = (diff2 / base2) ** 0.5 if base2 else 0.0
    return {"changed": change > 0, "backend": _version(p["format"]), "format": p["format"],
            "inference": how, "tokenizer": tokenizer, "declared": p["declared"], "bits": preset.bits,
            "bits_per_weight": round(8 * scope_bytes / n_weights, 4), "quantized_modules": quantized,
            "layers": len(linear_modules(model)), "sparsity": round(zeros / n_weights, 6),
            "relative_weight_change": round(change, 6), "max_layer_relative_change": round(worst, 6),
            "weight_bytes": sum(b for _, b in sizes.values()),
            "checkpoint_bytes": sum(f.stat().st_size for f in folder.glob("*.safetensors")),
            "weight_bytes_before": weight_bytes(model), "weight_bytes_in_memory": weight_bytes(loaded),
            "path": str(folder), "fingerprint": p["fingerprint"], "base": p["base"],
            "replaced_model": loaded}
