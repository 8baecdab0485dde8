"""On-disk cache of compressed weights that are expensive to make (Wanda, SparseGPT; GPTQ keeps
its own gptqmodel checkpoint folders but shares the revision key).

    hit, path = reuse_or_make("sparsegpt", model, preset, ctx, calib, modules, make)

The key hashes the model's revision (its published checksum, or the weights themselves for models
built in code), the preset's id and parameters, the calibration slice, the method's code version
and torch's version. The entry is a folder holding one safetensors file (never a pickle), made
through probes/storage.py: built once even by concurrent runs, published whole, verified on every
read; a damaged entry is reported by path and recomputed. An intact file that does not match the
model (missing layer, wrong shape) is an error naming the file, never silently recomputed over.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from compressors import CompressionError
from probes import storage


def revision(model, info: dict) -> str:
    """The model's published checksum, or for models built in code a hash of its weights."""
    rev = info.get("revision")
    if rev and rev not in ("unknown", "built-in"):
        return rev
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return "weights-sha256:" + h.hexdigest()


def reuse_or_make(kind: str, model, preset, ctx: dict, calib: dict, modules: dict, make,
                  code_version: str) -> tuple[bool, Path]:
    """Load the cached weights of ``modules`` (name -> nn.Module with .weight) into the model, or
    run ``make()`` (which compresses them in place) and store the result. Returns (hit, path)."""
    from safetensors.torch import load_file, save_file
    info = ctx.get("model_info") or {}
    rev = revision(model, info)
    key = hashlib.sha256(json.dumps([rev, preset.id, preset.params, calib.get("slice_sha256"),
                                     calib.get("tokens_used"), code_version, torch.__version__],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = storage.cache_root() / kind / f"{info.get('id', 'model')}-{preset.id}-{key}"
    path = folder / "weights.safetensors"
    made = []

    def build(tmp: Path) -> None:
        make()
        made.append(True)
        save_file({name: mod.weight.detach().cpu().contiguous() for name, mod in modules.items()},
                  str(tmp / path.name), metadata={"revision": rev, "preset": preset.id, "key": key})
    storage.entry(folder, build)
    if made:              # computed here: the model already holds these weights
        return False, path
    try:
        saved = load_file(str(path))
    except Exception as exc:   # intact bytes (the manifest matched) that this safetensors rejects
        raise CompressionError(f"{preset.id}: cached weights {path} cannot be read ({exc}); "
                               f"delete {folder} to recompute them") from None
    if set(saved) != set(modules):
        raise CompressionError(f"{preset.id}: cached weights {path} do not match the model's "
                               f"layers; delete {folder} to recompute them")
    with torch.no_grad():
        for name, mod in modules.items():
            if saved[name].shape != mod.weight.shape:
                raise CompressionError(f"{preset.id}: cached weights {path} hold {name} as "
                                       f"{tuple(saved[name].shape)}, the model has "
                                       f"{tuple(mod.weight.shape)}; delete {folder} to recompute them")
            mod.weight.copy_(saved[name].to(mod.weight.device, mod.weight.dtype))
    return True, path
