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
    default: bool = True         # part of `--presets default` (the main job's curated subset)
    cuda: bool = False           # needs a CUDA device: collected with a `cuda` mark, skipped on CPU
    backend: tuple[str, str] | None = None   # (module to import, how to install it) if optional


class CompressionError(RuntimeError):
    """A preset could not be applied, or applying it changed nothing."""


class BackendUnavailable(RuntimeError):
    """The preset's optional backend is not installed, or it needs a device this run lacks."""


def unavailable_reason(preset: "Preset", device: str = "cpu") -> str | None:
    """Why ``preset`` cannot run here (missing optional backend, no CUDA), or None; cheap."""
    if preset.cuda and device != "cuda":
        return (f"preset {preset.id} needs a CUDA device (run with --device cuda on a GPU "
                "machine); skipped on CPU")
    if preset.backend:
        import importlib.util
        module, install = preset.backend
        if importlib.util.find_spec(module) is None:
            return f"preset {preset.id} needs the optional backend {module}: `{install}`"
    return None


PRESETS: dict[str, Preset] = {}
HANDLERS: dict[str, Callable[..., dict]] = {}
NEEDS_CONTEXT: set[str] = set()   # methods whose handler takes a 4th argument: the context dict


def register_preset(preset: Preset) -> Preset:
    if preset.id in PRESETS:
        raise ValueError(f"duplicate compression preset id {preset.id!r}")
    PRESETS[preset.id] = preset
    return preset


def handler(method: str, context: bool = False):
    """Decorator: register the function that applies every preset of ``method``. With
    ``context=True`` it also gets a dict (tokenizer, model info) for calibration and caching."""
    def wrap(fn):
        if method in HANDLERS:
            raise ValueError(f"duplicate compression method {method!r}")
        HANDLERS[method] = fn
        if context:
            NEEDS_CONTEXT.add(method)
        return fn
    return wrap


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except KeyError:
        near = difflib.get_close_matches(preset_id, PRESETS, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(PRESETS)}"
        raise KeyError(f"unknown compression preset {preset_id!r}{hint}") from None


def compress(model: torch.nn.Module, preset_id: str, family: str, tokenizer=None,
             model_info: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Apply a preset in place; return (model, measured effect). Raises CompressionError, or
    BackendUnavailable when its optional backend is missing. Calibrated methods need the
    tokenizer; cached ones key their cache on ``model_info["revision"]``."""
    preset = get_preset(preset_id)
    device = next(model.parameters()).device.type if any(True for _ in model.parameters()) else "cpu"
    reason = unavailable_reason(preset, device)
    if reason:
        raise BackendUnavailable(reason)
    start = time.perf_counter()
    if preset.method in NEEDS_CONTEXT:
        ctx = {"tokenizer": tokenizer, "model_info": model_info or {}}
        effect = HANDLERS[preset.method](model, preset, family, ctx)
    else:
        effect = HANDLERS[preset.method](model, preset, family)
    effect["compression_seconds"] = round(time.perf_counter() - start, 3)
    # A method that builds a new model (GPTQ reloads its quantized checkpoint) hands it back here.
    model = effect.pop("replaced_model", model)
    if preset.method != "none" and not effect.get("changed"):
        raise CompressionError(
            f"preset {preset.id!r} left the model unchanged ({effect}); refusing to report "
            "the dense model as compressed")
    return model, effect


# Importing the method modules fills the registries (one file per method).
from compressors import baseline, pruning, dynamic_int8  # noqa: E402,F401
from compressors import (pruning_scoped, pruning_structured, bnb, torchao_int8,  # noqa: E402,F401
                         quanto_int4, wanda, sparsegpt, combos, gptq,
                         checkpoint)
