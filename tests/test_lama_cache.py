"""The causal scorer's fast path (prompts packed under a 4-D segment mask and kept as a KV cache,
candidate paths packed beside them, head rows only where unknown, rounds in bounded slices) gives
the same ranks and predictions as scoring every candidate alone, without packing or cache.

    pytest tests/test_lama_cache.py
"""
import json

import pytest
import torch

from benchmarks.tiny import build, tokenizer
from probes.lama import score_subset
from probes.lama_cache import PromptCache, length_batches, pack_rows
from probes.lama_data import SLOT, load_subset

# Subjects of very different lengths (so prompts are padded), objects that share first tokens
# (so the trie opens several paths per fact), and one relation whose slot is mid-sentence.
SUBJECTS = ["Al", "Bo Li", "Carla Maria Delgado", "Dee", "Ed van der Berg Junior", "Fay", "Gus Hu",
            "Hannelore Kirchschlaeger-Obermaier", "Ivy"]
OBJECTS = ["Paris", "Parma", "Pau", "Rome", "Ro", "Oslo", "Osaka", "Lyon", "Lima"]
RELATIONS = {"P19": "[X] was born in [Y] .", "P20": "[Y] is where [X] died ."}


def _write(root):
    (root / "TREx").mkdir(parents=True)
    (root / "relations.jsonl").write_text("".join(
        json.dumps({"relation": r, "template": t, "type": "N-1"}) + "\n" for r, t in RELATIONS.items()))
    for k, rel in enumerate(RELATIONS):
        with open(root / "TREx" / f"{rel}.jsonl", "w") as f:
            for i, s in enumerate(SUBJECTS):
                f.write(json.dumps({"sub_label": s, "obj_label": OBJECTS[(i + k) % len(OBJECTS)],
                                    "uuid": f"{rel}-{i}"}) + "\n")
    return root


def _gemma3(seed=5, attn="sdpa"):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    tok = tokenizer(family="causal")
    torch.manual_seed(seed)
    # sliding_window=3 is shorter than every prompt: the sliding layers' cache is exercised too.
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                           head_dim=16, sliding_window=3, max_position_embeddings=256,
                           layer_types=["sliding_attention", "full_attention"],
                           final_logit_softcapping=30.0, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg._attn_implementation = attn
    model = Gemma3ForCausalLM(cfg).eval()
    assert model.config._attn_implementation == attn
    return model, tok


@torch.no_grad()
def _alone(model, tok, root):
    """Every candidate scored in full, one unpadded sequence at a time: (ranks, top-1) by uid."""
    sub = load_subset(root, "trex")
    ranks, best = {}, {}
    for fact in sub.facts:
        text = fact.causal_text or fact.text
        left, right = text.split(SLOT, 1)
        prompt = left.rstrip()
        ctx = tok(prompt)["input_ids"]
        tail = tok(right, add_special_tokens=False)["input_ids"] if fact.causal_text is None else []
        cands = sub.candidates[fact.group]
        scores = []
        for c in cands:
            cont = tok((left[len(prompt):] if prompt else "") + c, add_special_tokens=False)["input_ids"] + tail
            logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].float(), -1)
            scores.append(sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)))
        gold = scores[cands.index(fact.obj)]
        ranks[fact.uid] = 1 + sum(1 for s in scores if s > gold + 1e-5)
        best[fact.uid] = cands[max(range(len(cands)), key=lambda i: scores[i])]
    return ranks, best


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gemma3-eager"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_cached_search_equals_scoring_each_candidate_alone(tmp_path, arch, batch_size):
    """Packed prompts, packed candidate paths and the 4-D mask (bool for sdpa, additive for
    eager attention; Gemma's sliding window applied by position) give the exact ranks."""
    model, tok = build("causal", seed=7) if arch == "llama" else _gemma3(attn=arch.partition("-")[2] or "sdpa")
    assert PromptCache.supported(model)
    root = _write(tmp_path)
    res = score_subset(model, tok, "causal", root, "trex", batch_size=batch_size)
    ranks, best = _alone(model, tok, root)
    assert {e["uid"]: e["rank"] for e in res.examples} == ranks
    assert {e["uid"]: e["prediction"] for e in res.examples} == best
    assert {e["mode"] for e in res.examples} == {"slot-last", "whole-sentence"}
    assert len(res.examples) == 2 * len(SUBJECTS)


def test_results_do_not_depend_on_batch_size(tmp_path):
    """Packing and chunking change only rounding: ranks are identical at batch 1 and 64."""
    model, tok = build("causal", seed=11)
    root = _write(tmp_path)
    one = score_subset(model, tok, "causal", root, "trex", batch_size=1).examples
    many = score_subset(model, tok, "causal", root, "trex", batch_size=64).examples
    assert [(e["uid"], e["rank"], e["prediction"]) for e in one] == \
        [(e["uid"], e["rank"], e["prediction"]) for e in many]


@pytest.mark.parametrize("arch,preset", [("llama", "int8-dyn"), ("gemma3", "int8-dyn"),
                                         ("gemma3-eager", "dyn8-ffn"), ("llama", "bnb-int8")])
def test_call_scoped_quantizers_rank_as_one_call_per_prompt_and_candidate(tmp_path, arch, preset):
    """torch's dynamic int8 quantizes each call's input with one min/max, LLM.int8 keeps in float
    the columns with an outlier anywhere in the call: a fact's score would change with what shares
    its call. Its rank must be that of one unpadded call per prompt + candidate (``_alone``), at
    batch 1 and at the default batch alike (lama-1 scored them in padded batches: it failed here)."""
    from compressors import compress, get_preset, unavailable_reason
    if unavailable_reason(get_preset(preset)):
        pytest.skip(unavailable_reason(get_preset(preset)))
    if arch == "llama":
        model, tok = build("causal", seed=7, width=64)
    else:
        model, tok = _gemma3(attn=arch.partition("-")[2] or "sdpa")
    compress(model, preset, "causal")
    root = _write(tmp_path)
    ranks, best = _alone(model.eval(), tok, root)
    for batch_size in (1, 64):
        res = score_subset(model, tok, "causal", root, "trex", batch_size=batch_size)
        assert {e["uid"]: e["rank"] for e in res.examples} == ranks, batch_size
        assert {e["uid"]: e["prediction"] for e in res.examples} == best, batch_size


def test_packing_and_batching_keep_every_index_once():
    lengths = [3, 17, 5, 5, 9, 1, 128, 40, 7, 7, 2]
    rows = pack_rows(lengths, 32)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 32 or len(r) == 1 for r in rows)   # 128 alone
    batches = length_batches(lengths, cap=4)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 4 for b in batches)
    # a batch closes where padding its rows to the next length would cost more than a pass
    assert length_batches([1] * 10 + [100], cap=64) == [list(range(10)), [10]]
    assert length_batches([4, 5, 6], cap=64) == [[0, 1, 2]]


def test_vocabulary_rows_held_at_once_are_bounded(tmp_path, monkeypatch):
    """A round's paths are scored in slices of about 4 x batch_size vocabulary rows (plus one row
    per strict-protocol answer still being decoded: at most batch_size), consumed before the next
    slice: SQuAD's whole-sentence paths once held 7.5 GiB of rows on SmolLM2."""
    import probes.lama_cache as lama_cache
    model, tok = build("causal", seed=7)
    root = _write(tmp_path)
    held, original = [], lama_cache.PromptCache.rows

    def rows(self, items, call_tokens):
        out = original(self, items, call_tokens)
        held.append((len(items), sum(r.shape[0] for r in out)))
        return out
    monkeypatch.setattr(lama_cache.PromptCache, "rows", rows)
    res = score_subset(model, tok, "causal", root, "trex", batch_size=4)
    # at most 16 + 4 rows a call, unless one path alone is longer (a whole-sentence path)
    assert len(held) > 2 and all(rows <= 16 + 4 or n <= 1 + 4 for n, rows in held), held
    assert any(n > 1 for n, _ in held)
    ranks, _ = _alone(model, tok, root)
    assert {e["uid"]: e["rank"] for e in res.examples} == ranks


@pytest.mark.parametrize("preset", ["int8-dyn", "ao-w8a8"])
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_call_scoped_batches_give_the_separate_calls_scores(arch, preset):
    """probes/lama_exact runs a fact's equal-length sequences side by side, each call-scoped
    kernel once per row (a row-local one, ao-w8a8, on the whole batch), on one thread: each score
    is the one of its own call (batch 1, the process's threads) to float summation order."""
    from compressors import compress, get_preset, unavailable_reason
    from probes.callscope import call_scoped
    from probes.lama_exact import Segments, _batched_scores, score_alone
    if unavailable_reason(get_preset(preset)):
        pytest.skip(unavailable_reason(get_preset(preset)))
    model, tok = build("causal", seed=7, width=64) if arch == "llama" else _gemma3()
    compress(model, preset, "causal")
    model.eval()
    ctx = tok("Hannelore Kirchschlaeger-Obermaier was born in")["input_ids"]
    seqs = [tok(" " + o, add_special_tokens=False)["input_ids"] for o in OBJECTS + ["Lyon Lima"]]
    with torch.inference_mode():
        got = _batched_scores(model, Segments(call_scoped(model)), ctx, seqs, "cpu")
        want = [score_alone(model, ctx, s) for s in seqs]
    assert got == pytest.approx(want, abs=1e-5)
