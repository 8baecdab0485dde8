"""A ``--checkpoint [NAME=]PATH`` entry made into this run's preset ``ckpt-<name>``, paired with
its base model (compressors/checkpoint.py loads and measures it).

    preset = register(resolve("./base-gptq-w4", bases=[spec]))
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmarks.ids import IdError, check_part, sanitise
from benchmarks.user_models import config_of, family_of, fingerprint, weight_files
from compressors import PRESETS, Preset, register_preset
from compressors.checkpoint import CheckpointError, declared
from compressors.checkpoint_load import BACKENDS

# Config fields that say two models have the same shape (encoder-decoder names included).
SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "d_model", "num_hidden_layers",
              "num_layers", "num_attention_heads", "intermediate_size", "d_ff")


def _shape(config) -> dict:
    d = config.to_dict()
    return {k: d[k] for k in SHAPE_KEYS if d.get(k) is not None}


def resolve(token: str, bases: list, trust_remote_code: bool = False) -> Preset:
    """A --checkpoint entry (PATH or NAME=PATH) -> its preset (not registered: ``register``)."""
    from transformers import AutoConfig

    name, ref = token.split("=", 1) if re.match(r"^[a-z0-9][a-z0-9.-]*=", token) else (None, token)
    folder = Path(ref).expanduser()
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"--checkpoint {token}: {folder} is not a model folder with config.json")
    folder = folder.resolve()
    weight_files(folder)
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        pid = "ckpt-" + (check_part(name, "checkpoint name") if name else sanitise(folder.name))
    except (OSError, ValueError, IdError) as exc:
        raise CheckpointError(f"--checkpoint {token}: {exc}") from None
    fmt, qc, bits = declared(config)
    family, shape = family_of(config), _shape(config)
    matches = [b for b in bases if b.family == family and _shape(config_of(b)) == shape]
    if len(matches) != 1:
        have = ", ".join(f"{b.id} ({b.family}, {_shape(config_of(b))})" for b in bases) or "none"
        raise CheckpointError(
            f"--checkpoint {token} ({family}, {shape}) matches {len(matches)} of the run's models "
            f"given by path or hub id: {have}. Give its base model with --models (one base per "
            "checkpoint; run checkpoints of different bases separately)")
    preset = Preset(pid, "checkpoint", bits=bits, default=True, backend=BACKENDS[fmt],
                    params={"path": str(folder), "fingerprint": fingerprint(str(folder)),
                            "format": fmt, "declared": qc, "base": matches[0].id})
    if pid in PRESETS and PRESETS[pid].params != preset.params:
        raise CheckpointError(f"--checkpoint {token}: preset id {pid!r} is taken; name it "
                              f"yourself: --checkpoint NAME={ref}")
    return preset


def register(preset: Preset) -> Preset:
    """Register a resolved checkpoint preset for this run (once; the same again is a no-op)."""
    return PRESETS[preset.id] if preset.id in PRESETS else register_preset(preset)
