"""Which modules make a forward pass depend on what else shares the call, and the statistic each
one takes over its call.

    call_scoped(model)   # {module name: (module, Statistic)}; Statistic.reason says why

Most compressed models compute each sequence (each row of a batch) independently: pruning and
weight-only quantization change weights, not how activations are treated. Some quantizers take a
statistic of their input over the whole call instead. For such a model a sequence's logits
change with its batch-mates, with padding, and even with tokens appended after a position (the
model is no longer causal). Scorers ask this module and score such models as one call per
sequence (probes/lama_exact.py, probes/harness.py); scripts/callscope_extension.py measures how
often appending a candidate to a prompt changes a module's statistic (nearly always).

What each backend does, read from its code (torch 2.13, bitsandbytes 0.50.2, torchao 0.18,
optimum-quanto 0.2.7, gptqmodel 7.7) and checked numerically in tests/test_callscope.py:

* torch dynamic int8 ``Linear`` (``int8-dyn``, ``dyn8-*``, ``p*-dyn8``): ``linear_dynamic``
  quantizes its input with ONE scale and zero point from min(0, min x) and max(0, max x) over the
  whole input tensor (fbgemm ``FindMinMax`` + ``ChooseQuantizationParams``); the int8 GEMM and the
  per-element dequantization are then row-local. Call-scoped; statistic: (min, max).
* bitsandbytes ``Linear8bitLt`` with a threshold (LLM.int8, ``bnb-int8``), eval mode:
  ``int8_vectorwise_quant`` scales each row by its own absmax, but keeps in float every input
  column holding an |x| >= threshold (after the cast to fp16) in ANY row of the call, and zeroes
  those columns in the int8 part. Call-scoped; statistic: the set of outlier columns. (In
  training mode on CPU it dequantizes the weight instead; scorers run in eval mode.)
* torchao ``Int8DynamicActivationInt8WeightConfig`` (``ao-w8a8``): activation granularity
  ``PerRow()`` -> block size (1, ..., 1, in_features): one symmetric scale per token. Row-local,
  but not safe to share work across candidates: rounding every activation to int8 turns the
  last-bit differences between a cached prompt and a whole-sequence call into different scores
  (scripts/brute_lama.py on the SmolLM2 T-REx record scored through the prompt cache: 2 of 4
  facts ranked differently from one call per candidate, 6 vs 8 and 14 vs 13). Scored one call
  per sequence like the call-scoped kinds; statistic: each token's absmax (its own row).
* bitsandbytes 4-bit, torchao weight-only, optimum-quanto (weights only; compressors/quanto_int4
  multiplies by the dequantized weight), GPTQ (its grid values dequantized into fp32 ``Linear``
  layers, compressors/gptq.py): the activation is used as is. Row-local.
"""
from __future__ import annotations

import contextlib
import sys

import torch


class Statistic:
    """What a call-scoped module takes over its whole input: ``stat(x)`` of a (rows, features)
    input, as the kernel computes it. Two calls whose inputs have equal statistics compute every
    row they share identically (tests/test_callscope.py, on the real kernels). ``row_local``: the
    statistic is each sequence's own, so sequences of one length side by side in one call (no
    padding, no cache) give each one's separate call bit for bit, and probes/lama_exact need not
    split the module's call per row."""
    reason = ""
    row_local = False

    def stat(self, x):
        raise NotImplementedError


class MinMax(Statistic):
    """torch's dynamic int8 Linear: per-tensor (min, max), widened to include 0."""
    reason = "torch dynamic int8: one activation scale per call (per-tensor min/max)"

    def stat(self, x):
        return torch.stack([x.min().clamp(max=0), x.max().clamp(min=0)])


class RowAbsMax(Statistic):
    """torchao's per-token dynamic int8: each token's absmax (row-local). Listed because the
    rounding it applies magnifies float differences between cached and uncached computation."""
    reason = "torchao per-token dynamic int8: activation rounding magnifies cache-vs-call float differences"
    # Measured on torchao 0.18 (one thread): 16-32 sequences of 9-23 tokens side by side gave the
    # last hidden states of their separate calls bit for bit on SmolLM2 and Gemma-3 (3-5x faster
    # than splitting every quantized call per row); tests/test_lama_cache.py checks it on a tiny model.
    row_local = True

    def stat(self, x):
        return x.abs().amax(dim=-1)


class OutlierColumns(Statistic):
    """LLM.int8: the input columns with |x| >= threshold in some row (compared in fp16, as
    ``MatMul8bitLt`` casts its input before ``int8_vectorwise_quant``)."""
    reason = "LLM.int8: outlier input columns chosen over the whole call"

    def __init__(self, threshold: float):
        self.threshold = float(threshold)

    def stat(self, x):
        return (x.to(torch.float16).abs() >= self.threshold).any(dim=0)


def _kinds():
    """[(module class, statistic for a module or None)] for the backends installed."""
    out = []
    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        out.append((DynamicInt8Linear, lambda m: MinMax() if m._packed_params.dtype == torch.qint8
                    else None))   # the fp16 variant quantizes nothing per call
    except ImportError:   # pragma: no cover - torch without the ao namespace
        pass
    try:
        # A model holding LLM.int8 modules has imported bitsandbytes: asking only then spares
        # every other model the import (a second of the first scoring call, measured)
        bnb = sys.modules.get("bitsandbytes")
        if bnb is not None:
            out.append((bnb.nn.Linear8bitLt, lambda m: OutlierColumns(m.state.threshold)
                        if float(getattr(m.state, "threshold", 0.0) or 0.0) > 0 else None))
    except Exception:     # a broken optional backend must not break scoring of other models
        pass
    # Last: any Linear whose weight is a torchao tensor that quantizes its input on the fly
    # (torchao 0.18: Int8Tensor with act_quant_kwargs; older: LinearActivationQuantizedTensor).
    out.append((torch.nn.Linear, lambda m: RowAbsMax()
                if getattr(m.weight, "act_quant_kwargs", None) is not None
                or type(m.weight).__name__ == "LinearActivationQuantizedTensor" else None))
    return out


def call_scoped(model) -> dict:
    """{module name: (module, Statistic)} for every module whose output depends on the whole call."""
    kinds = _kinds()
    found = {}
    for name, module in model.named_modules():
        for cls, statistic in kinds:
            if isinstance(module, cls):
                s = statistic(module)
                if s is not None:
                    found[name] = (module, s)
                break
    return found


def is_call_scoped(model) -> bool:
    return bool(call_scoped(model))


# Such a model is scored one sequence per call (a LAMA candidate, a greedy step, an lm-eval
# request): thousands of small kernel calls, each of which, with two intra-op threads on the
# 2-core CPU, waits for the second thread. SmolLM2 int8-dyn: 2.2 s a candidate at 2 threads,
# 0.09 s at 1 (probes/lama_exact.py); its strict-protocol decoding of 123 T-REx facts ran over 13
# minutes at 2 threads. The scores were bit for bit the same at 1 and 2 threads.
SCOPED_THREADS = 1


@contextlib.contextmanager
def scoring_threads(model):
    """While active, torch runs on SCOPED_THREADS threads if ``model`` is call-scoped (else as it
    was): the runner scores every probe of such a model inside it."""
    before = torch.get_num_threads()
    if before > SCOPED_THREADS and is_call_scoped(model):
        torch.set_num_threads(SCOPED_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)
