"""Which modules make a forward pass depend on what else shares the call.

    call_scoped_modules(model)   # {module name: why its output depends on the whole call}

Most compressed models compute each sequence (each row of a batch) independently: pruning and
weight-only quantization change weights, not how activations are treated. Some quantizers take a
statistic of their input over the whole call instead: torch's dynamic int8 ``Linear`` (the
paper's ``int8-dyn``) quantizes its input with one scale and zero point from the minimum and
maximum over every row and every token of the call, padding included; LLM.int8 (bitsandbytes
``Linear8bitLt`` with a threshold) keeps in float every input column that exceeds the threshold
in any row of the call. For such a model a sequence's logits change with its batch-mates, with
padding, and even with tokens appended after a position (the model is no longer causal).
Scorers ask this module, and score such models one sequence per call (probes/lama.py).
"""
from __future__ import annotations


def _reasons():
    out = []
    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        out.append((DynamicInt8Linear, lambda m: True,
                    "torch dynamic int8: one activation scale per call (per-tensor min/max)"))
    except ImportError:   # pragma: no cover - torch without the ao namespace
        pass
    try:
        import importlib.util
        if importlib.util.find_spec("bitsandbytes") is not None:
            import bitsandbytes as bnb
            out.append((bnb.nn.Linear8bitLt, lambda m: float(getattr(m.state, "threshold", 0.0)) > 0,
                        "LLM.int8: outlier input columns chosen over the whole call"))
    except Exception:     # a broken optional backend must not break scoring of other models
        pass
    return out


def call_scoped_modules(model) -> dict[str, str]:
    """{module name: reason} for every module whose output depends on the whole call."""
    reasons = _reasons()
    found = {}
    for name, module in model.named_modules():
        for cls, applies, why in reasons:
            if isinstance(module, cls) and applies(module):
                found[name] = why
                break
    return found


def is_call_scoped(model) -> bool:
    return bool(call_scoped_modules(model))
