"""Scoring on known answers: each family, single- and multi-token objects, exact ranks."""
import math

import pytest
import torch

from benchmarks.tiny import build, tokenizer
from probes.lama import score_subset
from tests.helpers import FAKES, write_lama

WORDS = [f"city{i}" for i in range(12)]


@pytest.mark.parametrize("family", ["causal", "masked", "seq2seq"])
def test_fake_model_that_ranks_gold_kth_gives_mrr_one_over_k(tmp_path, family):
    tok = tokenizer(WORDS)
    bias = torch.full((len(tok),), -30.0)
    for j, w in enumerate(WORDS):               # city0 is preferred, then city1, ...
        bias[tok.convert_tokens_to_ids(w)] = -float(j)
    root = write_lama(tmp_path, [(f"Person {i}", w) for i, w in enumerate(WORDS)])
    res = score_subset(FAKES[family](bias), tok, family, root, "trex")
    ranks = {e["gold"]: e["rank"] for e in res.examples}
    assert ranks == {w: j + 1 for j, w in enumerate(WORDS)}
    assert res.metrics["mrr"]["value"] == pytest.approx(sum(1 / k for k in range(1, 13)) / 12)
    assert res.metrics["p_at_1"]["value"] == pytest.approx(1 / 12)
    assert res.metrics["p_at_10"]["value"] == pytest.approx(10 / 12)
    assert {e["prediction"] for e in res.examples} == {"city0"}
    # standard error of a proportion over 12 facts
    assert res.metrics["p_at_1"]["stderr"] == pytest.approx(math.sqrt((1 / 12) * (11 / 12) / 11))


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_multi_token_objects_are_ranked_by_their_whole_log_probability(tmp_path, family):
    # Objects split into characters; the fake prefers 'a' strongly, so "aa" (two likely tokens)
    # must beat "b" (one less likely token) only if the sum says so. Bias: a=-1, b=-1.5.
    tok = tokenizer()
    bias = torch.full((len(tok),), -20.0)
    for ch, v in {"a": -1.0, "##a": -1.0, "b": -1.5, "##b": -3.0}.items():
        bias[tok.convert_tokens_to_ids(ch)] = v
    root = write_lama(tmp_path, [("X1", "aa"), ("X2", "b"), ("X3", "ab")])
    res = score_subset(FAKES[family](bias), tok, family, root, "trex")
    ranks = {e["gold"]: e["rank"] for e in res.examples}
    # causal scores: b = -1.5 - norm, aa = -2 - 2norm, ab = -4 - 2norm (norm < 0 adds more loss)
    assert ranks["b"] == 1 and ranks["aa"] == 2 and ranks["ab"] == 3
    assert all(e["prediction"] == "b" for e in res.examples)


@torch.no_grad()
def _brute_force_ranks(model, tok, family, root):
    """Score every candidate in full with the plain model (no bound, no trie): the reference."""
    from probes.lama_data import load_subset
    sub = load_subset(root, "trex")
    out = {}
    for fact in sub.facts:
        cands = sub.candidates[fact.group]
        scores = []
        for c in cands:
            if family == "causal":
                prompt, _, _ = fact.causal_text.partition("[Y]")
                ctx = tok(prompt.rstrip())["input_ids"]
                cont = tok(" " + c, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([ctx + cont])
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
                scores.append(sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)))
            else:   # seq2seq
                left, right = fact.text.split("[Y]")
                enc = torch.tensor([tok(left + "<extra_id_0>" + right)["input_ids"]])
                tgt = [tok.convert_tokens_to_ids("<extra_id_0>")] + \
                    tok(c, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<extra_id_1>")]
                dec = torch.tensor([[model.config.decoder_start_token_id] + tgt[:-1]])
                logp = torch.log_softmax(model(input_ids=enc, decoder_input_ids=dec).logits[0], -1)
                scores.append(sum(float(logp[j, tgt[j]]) for j in range(1, len(tgt))))
        gold = scores[cands.index(fact.obj)]
        out[fact.uid] = 1 + sum(1 for s in scores if s > gold + 1e-5)
    return out


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_bound_and_trie_search_equals_brute_force_on_a_real_model(tmp_path, family):
    objs = ["Paris", "Parma", "Pau", "Rome", "Ro", "Oslo", "Osaka", "Lyon", "Lima", "Bern"]
    root = write_lama(tmp_path, [(f"Person {i}", o) for i, o in enumerate(objs)])
    model, tok = build(family, seed=3)
    res = score_subset(model, tok, family, root, "trex", batch_size=4)
    expected = _brute_force_ranks(model, tok, family, root)
    got = {e["uid"]: e["rank"] for e in res.examples}
    assert got == expected


def test_masked_scores_k_masks_for_k_token_candidates(tmp_path):
    tok = tokenizer(["Paris"])
    bias = torch.full((len(tok),), -10.0)
    bias[tok.convert_tokens_to_ids("Paris")] = -1.0      # one token: -1 - norm
    bias[tok.convert_tokens_to_ids("R")] = -0.2          # "Ro" = R ##o: two tokens
    bias[tok.convert_tokens_to_ids("##o")] = -0.2
    root = write_lama(tmp_path, [("A", "Paris"), ("B", "Ro")])
    res = score_subset(FAKES["masked"](bias), tok, "masked", root, "trex")
    ranks = {e["gold"]: e["rank"] for e in res.examples}
    # log-softmax normaliser is shared per position, so two mask positions pay it twice.
    norm = float(torch.logsumexp(bias, 0))
    paris, ro = -1.0 - norm, -0.4 - 2 * norm
    assert ranks == ({"Paris": 1, "Ro": 2} if paris > ro else {"Paris": 2, "Ro": 1})
