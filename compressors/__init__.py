"""Compression presets: a registry of named recipes and the one verb, ``compress``.

    from compressors import compress
    model, effect = compress(model, "sparse-50", family="causal")

A preset is a frozen value (id, method, params, marks). Each method registers a handler
that changes the model in place and returns the *measured* effect (sparsity, bits,
quantized module count, true weight bytes). ``compress`` refuses a result that changed
nothing: reporting the dense model as compressed is the worst thing this tool could do.
"""
from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Preset:
    id: str                      # case-id part: [a-z0-9.-]
    method: str                  # key of the handler in HANDLERS
    params: dict = field(default_factory=dict, hash=False, compare=False)
    bits: int | None = None      # weight bit width after compression (None: unchanged float)


class CompressionError(RuntimeError):
    """A preset could not be applied, or applying it changed nothing."""


PRESETS: dict[str, Preset] = {}
HANDLERS: dict[str, Callable[[torch.nn.Module, Preset, str], dict]] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.id in PRESETS:
        raise ValueError(f"duplicate compression preset id {preset.id!r}")
    PRESETS[preset.id] = preset
    return preset


def handler(method: str):
    """Decorator: register the function that applies every preset of ``method``."""
    def wrap(fn):
        if method in HANDLERS:
            raise ValueError(f"duplicate compression method {method!r}")
        HANDLERS[method] = fn
        return fn
    return wrap


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except KeyError:
        near = difflib.get_close_matches(preset_id, PRESETS, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(PRESETS)}"
        raise KeyError(f"unknown compression preset {preset_id!r}{hint}") from None


def compress(model: torch.nn.Module, preset_id: str, family: str) -> tuple[torch.nn.Module, dict]:
    """Apply a preset in place; return (model, measured effect). Raises CompressionError."""
    preset = get_preset(preset_id)
    start = time.perf_counter()
    effect = HANDLERS[preset.method](model, preset, family)
    effect["compression_seconds"] = round(time.perf_counter() - start, 3)
    if preset.method != "none" and not effect.get("changed"):
        raise CompressionError(
            f"preset {preset.id!r} left the model unchanged ({effect}); refusing to report "
            "the dense model as compressed")
    return model, effect


# Importing the method modules fills the registries (one file per method).
from compressors import baseline, pruning, dynamic_int8  # noqa: E402,F401
