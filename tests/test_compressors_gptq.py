"""GPTQ through gptqmodel on the tiny causal model: 4 bits as promised, the weights are GPTQ's
grid values, the logits stay close, and a second run loads the cached checkpoint."""
import copy

import pytest
import torch

from benchmarks.tiny import build
from compressors import compress, get_preset, unavailable_reason
from tests.test_compressors_scopes import sqnr


def test_gptq_4bit_quantizes_caches_and_keeps_the_logits(tmp_path, monkeypatch):
    reason = unavailable_reason(get_preset("gptq-w4"))
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("KCB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)                     # gptqmodel writes a logs/ folder in the cwd
    model, tok = build("causal", width=128)
    dense = copy.deepcopy(model)
    info = {"id": "tiny-causal", "revision": "test:width128"}
    _, effect = compress(model, "gptq-w4", "causal", tokenizer=tok, model_info=info)
    assert effect["bits"] == 4 and effect["group_size"] == 128 and not effect["cache_hit"]
    assert effect["quantized_modules"] == 14               # 2 layers x (4 attention + 3 MLP)
    # int4 codes + fp16 scales/zeros per group of 128: well under a quarter of the fp32 bytes
    lin = sum(m.weight.numel() for n, m in dense.named_modules()
              if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    assert effect["checkpoint_bytes"] < effect["weight_bytes_before"] - 0.8 * 4 * lin
    # each weight row takes at most 16 distinct values per group of 128 inputs
    w = model.model.layers[0].mlp.up_proj.weight
    assert all(len(torch.unique(row[:128])) <= 16 for row in w[:8])
    ids = torch.arange(43, 59).view(2, 8)
    with torch.no_grad():
        ref, out = dense(input_ids=ids).logits, model(input_ids=ids).logits
    assert sqnr(ref, out) > 8          # measured 13.9 dB at width 128 (random weights)
    again = copy.deepcopy(dense)
    _, effect2 = compress(again, "gptq-w4", "causal", tokenizer=tok, model_info=info)
    assert effect2["cache_hit"] and torch.equal(again.model.layers[0].mlp.up_proj.weight, w)


def test_gptq_skips_models_it_cannot_quantize():
    if unavailable_reason(get_preset("gptq-w4")):
        pytest.skip(unavailable_reason(get_preset("gptq-w4")))
    from compressors import BackendUnavailable
    model, tok = build("masked")
    with pytest.raises(BackendUnavailable, match="causal"):
        compress(model, "gptq-w4", "masked", tokenizer=tok, model_info={"revision": "built-in"})
