"""The strict, open-vocabulary LAMA protocol (probes/lama_open.py): the normaliser, known answers
from constructed models, masked top-1/top-5 over a constructed distribution, the metrics, and
greedy answers that do not depend on the batch (dense and compressed tiny models)."""
import math
from types import SimpleNamespace

import pytest
import torch

from benchmarks.tiny import tokenizer
from probes.lama import score_subset
from probes.lama_open import match, settled, words
from tests.helpers import FAKES, write_lama


# ---------------------------------------------------------------------------- normaliser
@pytest.mark.parametrize("text, expected", [
    ("  Paris ", ["paris"]),
    ("PARIS.", ["paris"]),
    ("The Hague", ["hague"]),              # one leading article dropped ...
    ("the", ["the"]),                       # ... only when a word follows it
    ("a physicist", ["physicist"]),
    ("St. Louis", ["st", "louis"]),         # punctuation separates words
    ("AC/DC", ["ac", "dc"]),
    ("Saint-Denis", ["saint-denis"]),       # an inner hyphen or apostrophe joins them
    ("O'Brien", ["o'brien"]),
    ("Zürich", ["zürich"]),                 # accents kept: "Zurich" is another word
    ("ＰＡＲＩＳ", ["paris"]),                  # NFKC: full-width letters
    ("Straße", ["strasse"]),                # case-folded, not only lower-cased
    ("1950–1990", ["1950", "1990"]),
    ("  ", []),
])
def test_words(text, expected):
    assert words(text) == expected


@pytest.mark.parametrize("answer, obj, prefix, exact", [
    (" Paris, France", "Paris", True, False),
    (" Paris", "Paris", True, True),
    (" paris.", "Paris", True, True),
    (" the Netherlands", "Netherlands", True, True),
    (" Parisian", "Paris", False, False),
    (" the city of Paris", "Paris", False, False),
    (" Paris-based", "Paris", False, False),
    (" New York City", "New York", True, False),
    (" New", "New York", False, False),
    (" 1950 (aged 70)", "1950", True, False),
    ("", "Paris", False, False),
    (" Paris", "", False, False),          # an object without words matches nothing
])
def test_match(answer, obj, prefix, exact):
    assert match(answer, obj) is prefix
    assert match(answer, obj, exact=True) is exact


@pytest.mark.parametrize("partial, obj, exact, expected", [
    (" Paris", "Paris", False, False),       # may still become "Parisian"
    (" Paris,", "Paris", False, True),
    (" Paris ", "Paris", False, True),
    (" Paris-", "Paris", False, False),      # may become "Paris-based"
    (" Lon", "Paris", False, True),          # a word being written that cannot become "paris"
    (" Par", "Paris", False, False),         # ... or that can
    (" Pb", "Paris", False, False),          # its last character is not judged yet
    (" th", "Paris", False, False),          # may become an article
    (" the Lo", "Paris", False, True),
    (" the Pa", "Paris", False, False),
    (" New Yo", "New York", False, False),
    (" New Je", "New York", False, True),
    (" London ", "Paris", False, True),      # a complete wrong word does
    (" the", "Paris", False, False),         # an article may be dropped or may be the answer
    (" the ", "Paris", False, False),
    (" the Paris ", "Paris", False, True),
    (" New York ", "New York", False, True),
    (" New ", "New York", False, False),
    (" Paris ", "Paris", True, False),       # exact: the span may still grow
    (" Paris France ", "Paris", True, True), # ... and now it is too long
    (" Paris F", "Paris", True, True),       # ... already, with a second word begun
    (" A", "A", False, False),                # an object that is an article: decoded to the end
    (" Z\ufffd", "Zürich", False, False),    # half a UTF-8 character is not a word boundary
])
def test_settled(partial, obj, exact, expected):
    assert settled(partial, obj, exact) is expected


@pytest.mark.parametrize("partial, rest", [(" Paris,", " France"), (" London ", "Paris"),
                                           (" the Paris ", "ian"), (" Paris France ", ""),
                                           (" Lon", "don"), (" the Lo", "ndon"), (" Paris F", "rance")])
@pytest.mark.parametrize("exact", [False, True])
def test_settled_answer_keeps_its_verdict_whatever_follows(partial, rest, exact):
    if settled(partial, "Paris", exact):
        assert match(partial + rest, "Paris", exact) is match(partial, "Paris", exact)


# -------------------------------------------------------------------- known greedy answers
class Bigram(torch.nn.Module):
    """Each position predicts a fixed next token from its own token (a table): the greedy
    continuation of any prompt is known. No cache: decoded one sequence per call."""

    def __init__(self, vocab: int, table: dict[int, int], seq2seq=False):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(vocab, vocab), requires_grad=False)
        for a in range(vocab):
            self.logits.data[a, table.get(a, 0)] = 5.0     # default: <pad>, a stop token
        self.seq2seq = seq2seq
        self.config = SimpleNamespace(decoder_start_token_id=0)

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, **_):
        ids = decoder_input_ids if self.seq2seq else input_ids
        return SimpleNamespace(logits=self.logits[ids])


CITIES = ["Paris", "France", "Rome", "born", "in"]


def _bigram(tok, chain: list[str], seq2seq=False):
    ids = [tok.convert_tokens_to_ids(w) for w in chain]
    return Bigram(len(tok), dict(zip(ids, ids[1:])), seq2seq)


def test_causal_greedy_answer_and_its_verdict(tmp_path):
    tok = tokenizer(CITIES, family="causal")
    # after "in": Paris , France , France ...: settled correct for Paris, wrong for Rome
    model = _bigram(tok, ["in", "Paris", ",", "France", ",", "France"])
    root = write_lama(tmp_path, [("Ann", "Paris"), ("Bob", "Rome"), ("Cy", "Paris France")])
    res = score_subset(model, tok, "causal", root, "trex", batch_size=4)
    got = {e["gold"]: e["open"] for e in res.examples}
    assert got["Paris"] == {"answer": "Paris,", "correct": True, "rank": None}
    assert got["Rome"] == {"answer": "Paris", "correct": False, "rank": None}   # "Pari" is no "rome"
    # "Paris, France": the comma separates the words, as in the object's "Paris France"
    assert got["Paris France"] == {"answer": "Paris, France,", "correct": True, "rank": None}
    assert res.metrics["open_p_at_1"]["value"] == pytest.approx(2 / 3)
    assert res.metrics["open_p_at_1"]["n"] == 3 and res.meta["open"]["eligible"] == 3
    assert res.meta["open"]["path"].startswith("one sequence per call")   # no cache in the fake
    assert "open_p_at_5" not in res.metrics


def test_causal_answer_stops_at_the_budget_at_a_stop_token_or_once_settled(tmp_path):
    tok = tokenizer(CITIES, family="causal")
    root = write_lama(tmp_path, [("Ann", "Paris")])
    commas = _bigram(tok, ["in", ",", ","])    # , , , ...: no word ever settles it
    res = score_subset(commas, tok, "causal", root, "trex")
    budget = res.meta["open"]["max_new_tokens"]
    assert budget == 1 + 3          # "Paris" is one token; MARGIN 3
    comma = tok.convert_tokens_to_ids(",")
    assert res.examples[0]["open"] == {"answer": tok.decode([comma] * budget), "correct": False, "rank": None}
    stop = _bigram(tok, ["in", "Paris"])       # then <pad>: a special token ends the answer
    res = score_subset(stop, tok, "causal", root, "trex")
    assert res.examples[0]["open"] == {"answer": "Paris", "correct": True, "rank": None}
    loop = _bigram(tok, ["in", "France", "France"])
    res = score_subset(loop, tok, "causal", root, "trex")
    # settled at the first token: "Franc" cannot become "paris"
    assert res.examples[0]["open"] == {"answer": "France", "correct": False, "rank": None}


def test_causal_fact_with_a_mid_sentence_slot_only_is_not_eligible(tmp_path):
    tok = tokenizer(CITIES, family="causal")
    model = _bigram(tok, ["in", "Paris", ","])
    root = write_lama(tmp_path, [("Ann", "Paris"), ("Bob", "Rome")], template="[Y] is where [X] was born .")
    res = score_subset(model, tok, "causal", root, "trex")
    assert [e["open"] for e in res.examples] == [None, None]
    assert res.meta["open"]["eligible"] == 0 and "open_p_at_1" not in res.metrics
    assert res.groups["P19"]["open_n"] == 0


def test_seq2seq_greedy_span_must_equal_the_object(tmp_path):
    tok = tokenizer(CITIES)
    # decoder: <pad> <extra_id_0> Paris <extra_id_1>
    model = _bigram(tok, ["<extra_id_0>", "Paris", "<extra_id_1>"], seq2seq=True)
    root = write_lama(tmp_path, [("Ann", "Paris"), ("Bob", "Paris France"), ("Cy", "Rome")])
    res = score_subset(model, tok, "seq2seq", root, "trex")
    got = {e["gold"]: e["open"] for e in res.examples}
    assert got == {"Paris": {"answer": "Paris", "correct": True, "rank": None},
                   "Paris France": {"answer": "Paris", "correct": False, "rank": None},
                   "Rome": {"answer": "Paris", "correct": False, "rank": None}}
    assert res.metrics["open_p_at_1"]["value"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------ masked top-1 / top-5
WORDS = [f"city{i}" for i in range(12)]


def test_masked_full_vocabulary_rank_top1_top5(tmp_path):
    tok = tokenizer(WORDS)
    bias = torch.full((len(tok),), -30.0)
    for j, w in enumerate(WORDS):               # city0 is preferred, then city1, ...
        bias[tok.convert_tokens_to_ids(w)] = -float(j)
    bias[tok.mask_token_id] = bias[tok.pad_token_id] = 5.0   # special tokens never count
    bias[tok.convert_tokens_to_ids("x")] = -2.5              # a plain token between city2 and city3
    facts = [(f"Person {i}", w) for i, w in enumerate(WORDS)] + [("Zed", "Rome")]   # Rome: 4 tokens
    res = score_subset(FAKES["masked"](bias), tok, "masked", write_lama(tmp_path, facts), "trex")
    got = {e["gold"]: e["open"] for e in res.examples}
    assert got["Rome"] is None
    assert {w: got[w]["rank"] for w in WORDS} == {w: j + 1 + (j >= 3) for j, w in enumerate(WORDS)}
    assert {got[w]["answer"] for w in WORDS} == {"city0"}
    assert [w for w in WORDS if got[w]["correct"]] == ["city0"]
    m = res.metrics
    assert m["open_p_at_1"]["n"] == 12 and res.meta["open"]["eligible"] == 12
    assert m["open_p_at_1"]["value"] == pytest.approx(1 / 12)
    assert m["open_p_at_5"]["value"] == pytest.approx(4 / 12)    # city0..city3 (x is 4th)
    assert m["open_p_at_5"]["stderr"] == pytest.approx(math.sqrt((4 / 12) * (8 / 12) / 11))
    assert res.groups["P19"]["open_n"] == 12
    assert res.groups["P19"]["open_p_at_5"] == pytest.approx(4 / 12)
    # the lenient protocol is what it was: city j ranks j + 1 among the 13 candidates
    assert {e["gold"]: e["rank"] for e in res.examples if e["gold"] in WORDS} == \
        {w: j + 1 for j, w in enumerate(WORDS)}


# ------------------------------------------------------------------- testbed: trained models
@pytest.mark.parametrize("family", ["causal", "masked", "seq2seq"])
def test_testbed_models_answer_their_trained_facts_in_the_open(family):
    """Models trained on their facts produce them from the whole vocabulary on the trained
    template. Every testbed object is one token, so the model's top-1 token being the object
    makes the object first among the candidates too: strict-correct implies lenient-correct."""
    from benchmarks.testbed import corpus, trained_model, write_corpus
    model, tok, _, _ = trained_model(family)
    root = write_corpus(corpus())
    for split, floor in (("trained", 0.95), ("heldout", 0.0)):
        res = score_subset(model, tok, family, root / split, "trex", batch_size=64)
        assert res.meta["open"]["eligible"] == res.n == 240
        assert res.metrics["open_p_at_1"]["value"] >= floor
        assert all(e["rank"] == 1 for e in res.examples if e["open"]["correct"])
        if split == "trained":   # measured 1.0 (causal), 0.95 (masked), 0.996 (seq2seq)
            assert res.metrics["open_p_at_1"]["value"] >= res.metrics["p_at_1"]["value"] - 0.01
        else:                    # a paraphrase: right among the candidates, not in the open
            assert res.metrics["open_p_at_1"]["value"] < res.metrics["p_at_1"]["value"] - 0.2
