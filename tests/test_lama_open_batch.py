"""The strict protocol's greedy answers do not depend on the batch: batch 1, batch 64 and one
unpadded, uncached sequence per call give the same answers on tiny models of every family,
dense, pruned and quantized; call-scoped quantizers are decoded one sequence per call."""
import copy

import pytest
import torch

import probes.lama_open as lama_open
from benchmarks.tiny import build, tokenizer
from compressors import compress, get_preset, unavailable_reason
from probes.callscope import is_call_scoped
from probes.lama_data import load_subset
from tests.test_lama_cache import OBJECTS, _write

# nf4 is batch-invariant; int8-dyn and LLM.int8 are call-scoped, and torchao's w8a8 (per-token
# activation scales, rounding-sensitive) is listed with them: one sequence per call.
PRESETS = ["none", "sparse-50", "nf4-single", "ao-w8a8", "int8-dyn", "bnb-int8"]
ARCHS = {"llama": "causal", "gemma3": "causal", "t5": "seq2seq", "bert": "masked"}
# LLM.int8 takes the same path as int8-dyn (and is slow on CPU): on one architecture only.
CASES = [(a, p) for a in ARCHS for p in PRESETS if p != "bnb-int8" or a == "llama"]


def _model(arch, preset):
    family = ARCHS[arch]
    # masked: full-vocabulary ranks need single-token objects, so every object is a word token
    words = OBJECTS if family == "masked" else ()
    model, tok = _gemma3() if arch == "gemma3" else build(family, words, seed=3, width=64, dropout=0.0)
    # At the default init (std 0.02) a random Llama, T5 or BERT answers every prompt alike
    # ("##nnnn"), which would prove nothing; matrices drawn wider give answers that differ from
    # fact to fact. (Gemma's scaled embeddings already do; wider, its soft-capped logits saturate.)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2 and arch != "gemma3":
                p.normal_(0, 0.3, generator=g)
    if preset != "none":
        reason = unavailable_reason(get_preset(preset))
        if reason:
            pytest.skip(reason)
        compress(model, preset, family)
    return model.eval(), tok, family


def _gemma3():
    """A Gemma-3 text model 64 wide (bitsandbytes 4-bit needs widths that are multiples of 64),
    with a sliding layer whose window is shorter than the prompts."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    tok = tokenizer(family="causal")
    torch.manual_seed(3)
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           head_dim=16, sliding_window=4, max_position_embeddings=256,
                           layer_types=["sliding_attention", "full_attention"],
                           final_logit_softcapping=30.0, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           attn_implementation="sdpa")
    return Gemma3ForCausalLM(cfg).eval(), tok


def _answers(model, tok, family, sub, batch_size):
    return lama_open.open_answers(model, tok, family, sub.facts, sub.candidates, batch_size=batch_size)


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    return load_subset(_write(tmp_path_factory.mktemp("lama")), "trex")


@pytest.mark.parametrize("arch, preset", CASES)
def test_answers_are_the_same_at_batch_1_and_64_and_one_per_call(subset, arch, preset, monkeypatch):
    model, tok, family = _model(arch, preset)
    calls = []    # (batch rows, padded?) of every call that gets input ids

    def spy(_, args, kwargs):
        ids = next((kwargs[k] for k in ("input_ids", "decoder_input_ids") if kwargs.get(k) is not None))
        mask = kwargs.get("attention_mask")
        calls.append((ids.shape[0], mask is not None and not bool(mask.all())))

    model.register_forward_pre_hook(spy, with_kwargs=True)
    big, meta = _answers(model, tok, family, subset, 64)
    assert calls and not any(padded for _, padded in calls)
    scoped = is_call_scoped(model)
    assert scoped == (preset in ("int8-dyn", "bnb-int8", "ao-w8a8"))
    assert meta["path"].startswith("one sequence per call") == scoped
    assert all(rows == 1 for rows, _ in calls) == scoped   # batched: some call has many rows
    one, _ = _answers(model, tok, family, subset, 1)
    assert one == big
    eligible = [o for o in big.values() if o is not None]
    assert len(eligible) == meta["eligible"] >= 9
    assert len({o["answer"] for o in eligible}) >= 3, "alike answers would prove nothing"
    if family != "masked" and not scoped:   # the reference: every fact alone, no cache
        monkeypatch.setattr(lama_open, "_batched", lambda model, family: False)
        alone, meta_alone = _answers(model, tok, family, subset, 64)
        assert meta_alone["path"].startswith("one sequence per call")
        assert alone == big


def test_batched_decoding_of_a_call_scoped_model_would_depend_on_the_batch(subset, monkeypatch):
    """Why int8-dyn takes the slow path: forced through the batched one, its answers change with
    what shares the call (the scale is taken over every row and every padding token)."""
    model, tok, family = _model("llama", "int8-dyn")
    exact, _ = _answers(model, tok, family, subset, 64)
    monkeypatch.setattr(lama_open, "is_call_scoped", lambda model: False)
    batched, meta = _answers(model, tok, family, subset, 64)
    assert meta["path"] == "batches of 64, KV cache"
    assert batched != exact


@pytest.mark.parametrize("arch, preset", [(a, p) for a in ("llama", "gemma3")
                                          for p in ("none", "sparse-50", "nf4-single")])
def test_answers_decoded_on_the_rankings_cache_equal_one_sequence_per_call(subset, arch, preset,
                                                                           monkeypatch, tmp_path):
    """A case decodes a causal model's answers on the lenient ranking's packed prompt cache
    (lama_open.PackedOpener, first token from the slot rows, later steps in the search's passes):
    the answers are those of every fact alone, no cache, at batch 1 and 64 alike."""
    from probes.lama import score_subset
    from tests.test_lama_cache import _write as write
    model, tok, family = _model(arch, preset)
    root = write(tmp_path)
    got = {}
    for batch_size in (1, 64):
        res = score_subset(model, tok, family, root, "trex", batch_size=batch_size)
        assert res.meta["open"]["path"] == lama_open.PackedOpener.PATH
        got[batch_size] = {e["uid"]: e["open"] for e in res.examples}
    monkeypatch.setattr(lama_open, "_batched", lambda model, family: False)
    sub = load_subset(root, "trex")
    alone, meta = lama_open.open_answers(model, tok, family, sub.facts, sub.candidates, batch_size=64)
    assert meta["path"].startswith("one sequence per call")
    assert got[1] == got[64] == alone
    assert len({o["answer"] for o in alone.values() if o}) >= 3, "alike answers would prove nothing"
