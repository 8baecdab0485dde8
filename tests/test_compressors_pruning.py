"""Pruning variants: layer-wise vs global, structured rows and heads, 2:4, Wanda, SparseGPT.
Each must deliver the sparsity and pattern it promises, keep the model running, and stay within
a per-method logit error bound (SQNR, dB) measured on tiny random-weight models, with margin."""
import copy
import re
from pathlib import Path

import pytest
import torch

from benchmarks.tiny import build
from compressors import compress
from compressors.measure import linear_modules, sparsity
from compressors.layers import nm_holds, out_in
from tests.test_compressors_scopes import build_arch, logits, sqnr

FAMILIES = ["masked", "seq2seq", "causal"]
# Lowest SQNR seen on the three tiny families (width 64, random weights), minus ~3 dB margin.
# Random weights have no outliers, so 50% pruning costs far more here than on trained models.
SQNR_FLOOR = {"local-50": 3.5, "mag-2-4": 1.0, "rows-20": 0.5, "wanda-50": 3.0, "wanda-2-4": 1.0,
              "sparsegpt-50": 2.5, "sparsegpt-2-4": 2.5}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Each test computes its pruning: no weights cached by an earlier run are reused."""
    monkeypatch.setenv("KCB_CACHE", str(tmp_path / "cache"))


def _tiny(family):
    model, tok = build(family, width=64)
    return model, tok, logits_tiny(model, family)


def logits_tiny(model, family):
    ids = torch.arange(43, 59).view(2, 8)
    kw = {"decoder_input_ids": ids[:, :4]} if family == "seq2seq" else {}
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_wise_pruning_hits_the_target_in_every_layer(family):
    model, tok, ref = _tiny(family)
    _, effect = compress(model, "local-50", family)
    for name, mod in linear_modules(model).items():
        assert sparsity({name: mod})[0] == pytest.approx(0.5, abs=0.01), name
    assert effect["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert sqnr(ref, logits_tiny(model, family)) > SQNR_FLOOR["local-50"]


def test_layer_wise_differs_from_global_when_one_layer_is_small():
    model, _ = build("causal")
    with torch.no_grad():
        linear_modules(model)["model.layers.0.mlp.down_proj"].weight.mul_(1e-3)
    glob = copy.deepcopy(model)
    compress(model, "local-20", "causal")
    compress(glob, "sparse-20", "causal")
    name = "model.layers.0.mlp.down_proj"
    assert sparsity({name: linear_modules(model)[name]})[0] == pytest.approx(0.2, abs=0.01)
    assert sparsity({name: linear_modules(glob)[name]})[0] > 0.9


@pytest.mark.parametrize("family", FAMILIES)
def test_structured_rows_removes_whole_output_rows(family):
    model, _, ref = _tiny(family)
    _, effect = compress(model, "rows-20", family)
    for name, mod in linear_modules(model).items():
        w = out_in(mod)
        zero_rows = int((w == 0).all(dim=1).sum())
        assert zero_rows == round(0.2 * w.shape[0]), name
        assert int((w == 0).sum()) == zero_rows * w.shape[1]       # only whole rows
    assert effect["rows_removed"] / effect["rows_total"] == pytest.approx(0.2, abs=0.02)
    assert sqnr(ref, logits_tiny(model, family)) > SQNR_FLOOR["rows-20"]


@pytest.mark.parametrize("arch", ["bert", "distilbert", "albert", "t5", "gpt2", "llama", "gemma3"])
def test_head_pruning_zeroes_one_of_four_heads_per_layer(arch):
    model, family = build_arch(arch)
    ref = logits(model, family)
    _, effect = compress(model, "heads-25", family)
    assert effect["head_fraction"] == 0.25 and effect["heads_removed"] >= 1
    out = logits(model, family)
    assert torch.isfinite(out).all() and not torch.equal(ref, out)


# Calibrated methods on two families each (SparseGPT's column loop is the slow part of CI).
@pytest.mark.parametrize("preset,family", [*(("mag-2-4", f) for f in FAMILIES),
                                           ("wanda-2-4", "masked"), ("wanda-2-4", "seq2seq"),
                                           ("sparsegpt-2-4", "causal"), ("sparsegpt-2-4", "masked")])
def test_two_of_four_holds_in_every_group_of_four(preset, family):
    model, tok, ref = _tiny(family)
    _, effect = compress(model, preset, family, tokenizer=tok)
    for name, mod in linear_modules(model).items():
        w = out_in(mod)
        nonzero = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        assert int(nonzero.max()) <= 2, name
        assert nm_holds(mod, 2, 4)
    assert effect["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert sqnr(ref, logits_tiny(model, family)) > SQNR_FLOOR[preset]


@pytest.mark.parametrize("preset,family", [("wanda-50", "causal"), ("wanda-50", "masked"),
                                           ("sparsegpt-50", "causal"), ("sparsegpt-50", "seq2seq")])
def test_calibrated_pruning_hits_half_and_records_its_calibration(preset, family):
    model, tok, ref = _tiny(family)
    _, effect = compress(model, preset, family, tokenizer=tok)
    assert effect["sparsity"] == pytest.approx(0.5, abs=0.01)
    cal = effect["calibration"]
    assert cal["byte_range"][0] == 0 and 60000 < cal["byte_range"][1] <= 65536
    assert cal["tokens_used"] == 16 * 128 and len(cal["slice_sha256"]) == 64
    assert sqnr(ref, logits_tiny(model, family)) > SQNR_FLOOR[preset]


def _layer_error(w_new, w_old, x):
    return float(((x @ w_old.t()) - (x @ w_new.t())).norm() / (x @ w_old.t()).norm())


def test_sparsegpt_reconstructs_a_layer_better_than_magnitude():
    # Correlated inputs with uneven scales: where the Hessian update has something to fix.
    from compressors.sparsegpt import inverse_hessian_factor, prune_layer
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=g) @ torch.randn(64, 64, generator=g) * torch.rand(64, generator=g) * 3
    w = torch.randn(32, 64, generator=g)
    u = inverse_hessian_factor((x.t() @ x).double(), x.shape[0], w.double().clone())
    sg = prune_layer(w.double().clone(), u, 0.5, None, None).float()
    mag = w * (w.abs() > w.abs().flatten().kthvalue(w.numel() // 2).values)
    assert float((sg == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert _layer_error(sg, w, x) < 0.8 * _layer_error(mag, w, x)


def test_wanda_keeps_weights_of_loud_inputs():
    # A feature with a 100x input norm keeps its weights even when they are the smallest.
    from compressors.wanda import row_mask
    w = torch.ones(4, 8)
    w[:, 0] = 0.1
    norms = torch.ones(8)
    norms[0] = 100
    keep = row_mask(w.abs() * norms[None, :], 0.5)
    assert keep[:, 0].all() and int(keep.sum()) == 16


@pytest.mark.parametrize("preset", ["wanda-50", "sparsegpt-2-4"])
def test_calibrated_pruning_is_cached_and_reused(preset):
    """The second compression of the same model loads the stored weights (safetensors) instead of
    recalibrating, and gives the very same weights; a damaged file is reported by name and
    recomputed."""
    model, tok, _ = _tiny("causal")
    fresh = copy.deepcopy(model)
    _, first = compress(model, preset, "causal", tokenizer=tok)
    assert first["cache_hit"] is False and first["cache"].endswith(".safetensors")
    again = copy.deepcopy(fresh)
    _, second = compress(again, preset, "causal", tokenizer=tok)
    assert second["cache_hit"] is True and second["cache"] == first["cache"]
    assert second["sparsity"] == first["sparsity"]
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    with open(first["cache"], "r+b") as f:      # a torn file
        f.truncate(100)
    with pytest.warns(UserWarning, match=re.escape(str(Path(first["cache"]).parent)) + ".*100 bytes"):
        healed, third = compress(copy.deepcopy(fresh), preset, "causal", tokenizer=tok)
    assert third["cache_hit"] is False and third["sparsity"] == first["sparsity"]
    for (name, a), (_, b) in zip(model.state_dict().items(), healed.state_dict().items()):
        assert torch.equal(a, b), name



def _torch_global_prune(model, amount):
    """The reference: torch.nn.utils.prune's global L1 pruning, masks made permanent."""
    from torch.nn.utils import prune
    params = [(m, "weight") for m in linear_modules(model).values()]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in params:
        prune.remove(module, name)


def _bits(model):
    """The weights as raw bits: -0.0 and 0.0 differ, as they would in a checksum."""
    return {k: v.detach().clone().view(torch.int32) for k, v in model.state_dict().items()
            if v.dtype == torch.float32}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pct", [10, 50, 90])
def test_global_magnitude_is_bit_for_bit_torch_prune(family, pct):
    model, _ = build(family, width=64)
    with torch.no_grad():   # 129 levels per tensor, as a dequantized GGUF: many ties
        for m in linear_modules(model).values():
            step = m.weight.abs().max() / 64
            m.weight.copy_((m.weight / step).round() * step)
        scores = torch.cat([m.weight.reshape(-1) for m in linear_modules(model).values()]).abs()
    kth = scores.kthvalue(round(pct / 100 * scores.numel())).values
    assert (scores == kth).sum() > 10   # the threshold falls inside a run of tied weights
    ref = copy.deepcopy(model)
    _torch_global_prune(ref, pct / 100)
    compress(model, f"sparse-{pct}", family)
    ours, theirs = _bits(model), _bits(ref)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
    assert not any(hasattr(m, "weight_orig") or m._forward_pre_hooks
                   for m in linear_modules(model).values())
