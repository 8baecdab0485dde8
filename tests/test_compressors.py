"""Each preset's measured effect is what it promises, on tiny models of every family."""
import copy

import pytest
import torch

from benchmarks.tiny import build
from compressors import CompressionError, METHODS, PRESETS, compress, get_preset, handler
from compressors.measure import linear_modules, sparsity, weight_bytes


def _logits(model, family):
    ids = torch.arange(3, 19).view(2, 8)
    kw = {"decoder_input_ids": ids[:, :4]} if family == "seq2seq" else {}
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits


@pytest.mark.parametrize("family", ["masked", "seq2seq", "causal"])
@pytest.mark.parametrize("pct", [10, 50, 90])
def test_global_magnitude_hits_the_target_sparsity(family, pct):
    model, _ = build(family)
    head_before = model.get_output_embeddings().weight.detach().clone()
    _, effect = compress(model, f"sparse-{pct}", family)
    frac, _, _ = sparsity(linear_modules(model))
    assert frac == pytest.approx(pct / 100, abs=0.01)
    assert effect["sparsity"] == pytest.approx(frac, abs=1e-6)
    assert effect["changed"] and effect["modules_pruned"] == len(linear_modules(model))
    # the output head (tied to the embeddings) is excluded
    assert torch.equal(model.get_output_embeddings().weight, head_before)
    assert not any(hasattr(m, "weight_mask") for m in model.modules()), "masks must be baked in"
    assert torch.isfinite(_logits(model, family)).all()


def test_pruning_is_global_not_per_layer():
    model, _ = build("causal")
    with torch.no_grad():   # make one layer's weights tiny: a global threshold empties it first
        linear_modules(model)["model.layers.0.mlp.down_proj"].weight.mul_(1e-3)
    compress(model, "sparse-20", "causal")
    w = linear_modules(model)["model.layers.0.mlp.down_proj"].weight
    assert float((w == 0).float().mean()) > 0.9


@pytest.mark.parametrize("family", ["masked", "seq2seq", "causal"])
def test_dynamic_int8_quantizes_every_linear_and_shrinks_them(family):
    model, _ = build(family, width=64)
    dense = copy.deepcopy(model)
    n_linear = len(linear_modules(model))
    before = weight_bytes(model)
    _, effect = compress(model, "int8-dyn", family)
    assert effect["quantized_modules"] == n_linear and effect["bits"] == 8
    linear_bytes = sum(m.weight.numel() * 4 for m in linear_modules(dense).values())
    # int8 stores a quarter of the fp32 linear bytes (plus scales and packing overhead)
    assert before - effect["weight_bytes"] == pytest.approx(0.75 * linear_bytes, rel=0.1)
    ref, out = _logits(dense, family), _logits(model, family)
    sqnr = 10 * torch.log10(ref.pow(2).mean() / (ref - out).pow(2).mean())
    assert sqnr > 20, f"int8 logits too far from fp32 (SQNR {sqnr:.1f} dB)"


def test_gpt2_conv1d_is_converted_not_silently_skipped():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100,
                                       n_positions=32, bos_token_id=0, eos_token_id=0)).eval()
    n_conv = sum(isinstance(m, Conv1D) for m in model.modules())
    ids = torch.arange(10).view(1, 10)
    with torch.no_grad():
        ref = model(ids).logits
    sp = copy.deepcopy(model)
    _, effect = compress(sp, "sparse-50", "causal")
    assert effect["modules_pruned"] == n_conv and effect["sparsity"] == pytest.approx(0.5, abs=0.01)
    _, effect = compress(model, "int8-dyn", "causal")
    assert effect["quantized_modules"] == n_conv
    with torch.no_grad():
        out = model(ids).logits
    assert (ref - out).abs().max() < 0.1 * ref.abs().max()


def test_a_preset_that_changes_nothing_is_an_error(monkeypatch):
    import dataclasses
    real = METHODS["global-magnitude"]
    monkeypatch.setitem(METHODS, "global-magnitude",
                        dataclasses.replace(real, apply=lambda m, p, f: {"changed": False}))
    model, _ = build("causal")
    with pytest.raises(CompressionError, match="left the model unchanged"):
        compress(model, "sparse-50", "causal")


def test_model_without_linear_layers_cannot_be_pruned():
    class Emb(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e = torch.nn.Embedding(5, 3)
    with pytest.raises(CompressionError, match="no linear layers"):
        compress(Emb(), "sparse-50", "causal")


def test_unknown_preset_suggests_near_misses():
    with pytest.raises(KeyError, match="did you mean sparse-50"):
        get_preset("sparse-5O")
    assert list(PRESETS)[0] == "none"


def test_duplicate_registration_raises():
    from compressors import Preset, register_preset
    with pytest.raises(ValueError, match="duplicate"):
        register_preset(Preset("sparse-50", "global-magnitude"))
    with pytest.raises(ValueError, match="duplicate"):
        handler("dynamic-int8", kind="quantization", version="x")(lambda *a: None)


@pytest.mark.parametrize("preset", ["none", "int8-dyn", "sparse-50"])
def test_weight_bytes_agree_with_a_real_serialization(preset):
    from compressors.measure import serialized_bytes
    model, _ = build("causal", width=256)
    compress(model, preset, "causal")
    real = serialized_bytes(model)
    assert abs(weight_bytes(model) - real) < 0.03 * real
