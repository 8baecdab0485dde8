"""Compression presets: a registry of named recipes and the one verb, ``compress``.

    from compressors import compress
    model, effect = compress(model, "sparse-50", family="causal")

A preset is a frozen value (id, method, params, marks). Each method registers a handler
that changes the model in place and returns the *measured* effect (sparsity, bits,
quantized module count, true weight bytes). ``compress`` refuses a result that changed
nothing: reporting the dense model as compressed is the worst thing this tool could do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Preset:
    id: str                      # case-id part: [a-z0-9.-]
    method: str                  # the registered method (METHODS) that applies it
    params: dict = field(default_factory=dict, hash=False, compare=False)
    bits: int | None = None      # weight bit width after compression (None: unchanged float)
    default: bool = True         # part of `--presets default` (the main job's curated subset)
    cuda: bool = False           # needs a CUDA device: collected with a `cuda` mark, skipped on CPU
    backend: tuple[str, str] | None = None   # (module to import, how to install it) if optional
    # Its quantizer rounds activations with a statistic the probes must not share across sequences
    # (probes/callscope.py), so every probe scores it one forward call per sequence: exact, and on
    # a CPU 10-50x slower than a batched case. The main job gives such cases their own, smaller
    # limits (`per-call:` in --limits). tests/test_callscope.py checks declared == detected.
    per_call: bool = False


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


@dataclass(frozen=True)
class Method:
    """What a compression method declares beside its handler (one file per method)."""
    name: str
    kind: str | tuple[str, ...]   # the case mark(s): "baseline", "pruning", "quantization"
    version: str                  # bump when its results can change (caches are keyed on it)
    apply: Callable[..., dict]
    context: bool = False         # the handler takes a 4th argument: tokenizer and model info
    effect: tuple[str, ...] = ()  # effect fields it reports beyond EFFECT_FIELDS


# Every measured effect carries these (compress() checks): what changed, by which backend, the
# measured sparsity and bit width (None where they do not apply) and the true stored bytes.
EFFECT_FIELDS = {"changed": (bool,), "backend": (str,), "sparsity": (int, float, type(None)),
                 "bits": (int, float, type(None)), "quantized_modules": (int,),
                 "weight_bytes": (int,)}
KINDS = ("baseline", "pruning", "quantization", "checkpoint")   # checkpoint: a user's own

PRESETS: dict[str, Preset] = {}
METHODS: dict[str, Method] = {}


def register_preset(preset: Preset) -> Preset:
    from probes.registry import register
    return register(PRESETS, preset, "compression preset")


def handler(method: str, kind: str | tuple[str, ...], version: str, context: bool = False,
            effect: tuple[str, ...] = ()):
    """Decorator: register the function that applies every preset of ``method``, with the
    method's case mark(s) (``kind``), its version, and the extra effect fields it reports. With
    ``context=True`` the function also gets a dict (tokenizer, model info) for calibration."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not set(kinds) <= set(KINDS):
        raise ValueError(f"method {method!r}: kind must be among {KINDS}, not {kind!r}")

    def wrap(fn):
        if method in METHODS:
            raise ValueError(f"duplicate compression method {method!r}")
        METHODS[method] = Method(method, kind, version, fn, context, tuple(effect))
        return fn
    return wrap


def method_of(preset: "Preset") -> Method:
    try:
        return METHODS[preset.method]
    except KeyError:
        raise CompressionError(f"preset {preset.id!r} names method {preset.method!r}, which no "
                               f"file in compressors/ registers with @handler") from None


def apply(model, preset: "Preset", family: str, ctx: dict | None = None) -> dict:
    """Run one preset's handler and return its raw effect (combos chain two of them)."""
    m = method_of(preset)
    return m.apply(model, preset, family, ctx or {}) if m.context else m.apply(model, preset, family)


def get_preset(preset_id: str) -> Preset:
    from probes.registry import lookup
    return lookup(PRESETS, preset_id, "compression preset")


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
    effect = apply(model, preset, family, {"tokenizer": tokenizer, "model_info": model_info or {}})
    effect["compression_seconds"] = round(time.perf_counter() - start, 3)
    # A method that builds a new model (GPTQ reloads its quantized checkpoint) hands it back here.
    model = effect.pop("replaced_model", model)
    if preset.method != "none" and not effect.get("changed"):
        raise CompressionError(
            f"preset {preset.id!r} left the model unchanged ({effect}); refusing to report "
            "the dense model as compressed")
    _check_effect(preset, effect)
    return model, effect


def _check_effect(preset: "Preset", effect: dict) -> None:
    """The measured effect is typed: every method reports EFFECT_FIELDS and what it declared."""
    m = method_of(preset)
    for name in (*EFFECT_FIELDS, *m.effect):
        if name not in effect:
            raise CompressionError(f"method {m.name!r} (preset {preset.id}) did not report "
                                   f"{name!r} in its measured effect")
        want = EFFECT_FIELDS.get(name)
        value = effect[name]
        if want and (not isinstance(value, want) or (isinstance(value, bool) and bool not in want)):
            raise CompressionError(f"method {m.name!r} reported {name}={value!r}: expected "
                                   f"{' or '.join(t.__name__ for t in want)}")


def _discover() -> None:
    """Import every module of this package: a method is one file that registers its presets and
    its handler, found here without being listed anywhere (helpers register nothing). Files named
    in ``$KCB_METHODS`` (os.pathsep-separated) are imported too: a user's own method, one file,
    without editing this package."""
    import importlib
    import pkgutil

    from probes.plugins import import_user_files
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    import_user_files("KCB_METHODS")


def _kind_rank(preset: "Preset") -> int:
    kind = METHODS[preset.method].kind
    return len(KINDS) if isinstance(kind, tuple) else KINDS.index(kind)


_discover()
# Presets in a sensible order (the case order and `--presets` listings follow it): the baseline
# first, then pruning, quantization and their combinations, each in registration order.
_ordered = sorted(PRESETS.values(), key=_kind_rank)
PRESETS.clear()
PRESETS.update((p.id, p) for p in _ordered)
