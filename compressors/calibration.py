"""The calibration data of activation-aware methods (Wanda, SparseGPT): a fixed, recorded slice of
WikiText-2, and the per-layer input statistics collected from it.

    batches, record = calibration_batches(tokenizer)        # [16, 128] token ids + provenance
    stats = input_stats(model, modules, batches, family, gram=True)

The file comes from ``$KCB_WIKITEXT`` (the file or its folder; default
``../shared/data/wikitext-2/wiki.test.raw`` beside the checkout) and is verified against its
published sha256, by probes/wikitext.py as for perplexity. The slice is the first 64 KiB of the
*test* split, cut at a line end: it overlaps the text that WikiText-2 test perplexity is measured
on, so a perplexity measured after a calibrated method is slightly optimistic. Wanda (Sun et al. 2024)
and SparseGPT (Frantar & Alistarh 2023) calibrate on 128 x 2048 tokens of C4; Wanda's authors
report it robust to far fewer samples. 16 x 128 tokens keeps calibration to seconds on a 2-core
CPU; the numbers used are recorded in every effect.
"""
from __future__ import annotations

import hashlib

import torch

from compressors import CompressionError
from probes.wikitext import WikiTextError, read_verified, wikitext_path

SLICE_BYTES = 65536
N_SAMPLES, SEQ_LEN = 16, 128


def calibration_slice() -> tuple[str, dict]:
    try:
        path = wikitext_path()
        data, digest = read_verified(path)
    except WikiTextError as exc:
        raise CompressionError(f"calibrated presets need WikiText-2: {exc}") from None
    end = data.rfind(b"\n", 0, SLICE_BYTES) + 1      # whole lines, so the bytes decode cleanly
    chunk = data[:end]
    return chunk.decode("utf-8"), {"file": path.name, "file_sha256": digest,
                                   "byte_range": [0, end],
                                   "slice_sha256": hashlib.sha256(chunk).hexdigest()}


def calibration_batches(tokenizer, n_samples: int = N_SAMPLES, seq_len: int = SEQ_LEN):
    """[n_samples, seq_len] token ids from the slice, consecutive and without padding."""
    if tokenizer is None:
        raise CompressionError("calibrated presets need the model's tokenizer (pass tokenizer= "
                               "to compress())")
    text, record = calibration_slice()
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    need = n_samples * seq_len
    if len(ids) < need:
        raise CompressionError(f"the calibration slice has {len(ids)} tokens, {need} needed")
    record.update({"tokens_in_slice": len(ids), "tokens_used": need, "n_samples": n_samples,
                   "seq_len": seq_len, "overlaps_wikitext2_test_perplexity": True})
    return torch.tensor(ids[:need]).view(n_samples, seq_len), record


def input_stats(model, modules: dict, batches: torch.Tensor, family: str, gram: bool) -> dict:
    """Per module: number of input rows, the sum of squares of each input feature, and (gram=True)
    the input Gram matrix X^T X, from one pass of the unmodified model over the batches."""
    stats = {name: {"rows": 0, "sq": None, "gram": None} for name in modules}
    hooks = []

    def hook(name):
        def fn(_mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            s = stats[name]
            s["rows"] += x.shape[0]
            sq = x.pow(2).sum(0)
            s["sq"] = sq if s["sq"] is None else s["sq"] + sq
            if gram:
                g = x.t() @ x
                s["gram"] = g if s["gram"] is None else s["gram"] + g
        return fn

    for name, mod in modules.items():
        hooks.append(mod.register_forward_pre_hook(hook(name)))
    dev = next(model.parameters()).device
    try:
        with torch.no_grad():
            for row in batches.to(dev).split(4):
                kw = {"decoder_input_ids": row} if family == "seq2seq" else {}
                model(input_ids=row, **kw)
    finally:
        for h in hooks:
            h.remove()
    dead = [n for n, s in stats.items() if s["rows"] == 0]
    if dead:
        raise CompressionError(f"calibration never reached {len(dead)} layers, e.g. {dead[:3]}")
    return stats


def calibrated_pruning(method: str, model, preset, family: str, ctx: dict, prune, gram: bool,
                       code_version: str, backend: str) -> dict:
    """The frame Wanda and SparseGPT share: every linear layer, input statistics from the
    calibration slice, ``prune(stats, modules)`` in place (under no_grad), the pruned weights
    cached on disk (compressors/ckpt_cache.py: a rerun loads them and skips calibration), and the
    measured effect: sparsity on target, or the N:M pattern holding, else CompressionError."""
    from compressors.ckpt_cache import reuse_or_make
    from compressors.measure import linear_modules, sparsity
    from compressors.effects import nm_effect, pruned_effect
    modules = linear_modules(model)
    if not modules:
        raise CompressionError(f"{preset.id}: the model has no linear layers to prune")
    batches, calib = calibration_batches(ctx["tokenizer"])
    before = sparsity(modules)[0]

    def make():
        stats = input_stats(model, modules, batches, family, gram=gram)
        with torch.no_grad():
            prune(stats, modules)
    hit, path = reuse_or_make(method, model, preset, ctx, calib, modules, make, code_version)
    cache = {"cache": str(path), "cache_hit": hit}
    if "n" in preset.params:
        return nm_effect(model, modules, before, preset, backend=backend, calibration=calib) | cache
    return pruned_effect(model, modules, before, preset.params["amount"], preset,
                         calibration=calib) | {"backend": backend} | cache
