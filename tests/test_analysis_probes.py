"""The ParaRel consistency and Negated-LAMA probes on small constructed data with known answers."""
import json

import pytest
import torch

from benchmarks.tiny import tokenizer
from probes.lama_data import LamaDataError
from probes.negated import PROBE as NEGATED
from probes.negated_data import download, negated_dir
from probes.pararel import PROBE as PARAREL
from tests.helpers import FAKES, write_lama

WORDS = ["Paris", "Rome", "Oslo", "Lima"]


def _fake(family):
    """A model that ignores its input and prefers Paris, then Rome, Oslo, Lima."""
    tok = tokenizer(WORDS, family=family)
    bias = torch.full((len(tok),), -30.0)
    for j, w in enumerate(WORDS):
        bias[tok.convert_tokens_to_ids(w)] = -float(j)
    return FAKES[family](bias), tok


def _pararel_data(root):
    write_lama(root, [(f"Person {i}", w) for i, w in enumerate(WORDS)])
    (root / "ParaRel").mkdir()
    patterns = ["[X] was born in [Y].", "[X] is originally from [Y].", "[Y] is where [X] was born.",
                "[X] was born in the city of [Y]."]
    (root / "ParaRel" / "P19.jsonl").write_text("".join(json.dumps({"pattern": p}) + "\n" for p in patterns))
    return root


@pytest.mark.parametrize("family, n_patterns", [("causal", 3), ("masked", 4)])
def test_pararel_scores_every_fact_under_each_eligible_pattern(tmp_path, family, n_patterns):
    model, tok = _fake(family)
    res = PARAREL.score(model, tok, family, _pararel_data(tmp_path))
    # causal models skip the pattern whose slot is not last ("[Y] is where [X] was born.")
    assert res.n == len(WORDS) * n_patterns
    assert {e["pattern"] for e in res.examples} == ({0, 1, 3} if family == "causal" else {0, 1, 2, 3})
    e = res.examples[0]
    assert e["uid"] == f"pararel/P19/u{WORDS.index(e['gold'])}#p{e['pattern']}"
    assert e["fact"] == f"trex/P19/u{WORDS.index(e['gold'])}"
    # A model that ignores the sentence answers Paris everywhere: perfectly consistent, and right
    # under every pattern only for the Paris fact.
    assert res.metrics["consistency"]["value"] == pytest.approx(1.0)
    assert res.metrics["all_patterns_correct"]["value"] == pytest.approx(1 / 4)
    assert res.metrics["p_at_1"]["value"] == pytest.approx(1 / 4)
    assert res.meta["templates"]["P19"]["type"] == "N-1"


def test_pararel_caps_patterns_and_lists_relations_it_cannot_use(tmp_path, monkeypatch):
    model, tok = _fake("causal")
    monkeypatch.setenv("KCB_PARAREL_PATTERNS", "2")
    res = PARAREL.score(model, tok, "causal", _pararel_data(tmp_path))
    assert {e["pattern"] for e in res.examples} == {0, 1} and res.meta["max_patterns"] == 2
    (tmp_path / "ParaRel" / "P19.jsonl").write_text(json.dumps({"pattern": "[Y] is home to [X]."}) + "\n")
    with pytest.raises(LamaDataError, match="no ParaRel relation .* two patterns"):
        PARAREL.score(model, tok, "causal", tmp_path)
    monkeypatch.setenv("KCB_PARAREL_PATTERNS", "1")
    with pytest.raises(ValueError, match="KCB_PARAREL_PATTERNS"):
        PARAREL.score(model, tok, "causal", tmp_path)


def _negated_data(root):
    (root / "TREx").mkdir(parents=True)
    rows = [{"sub_label": f"Person {i}", "obj_label": w, "uuid": i,
             "masked_sentences": [f"Person {i} was born in [MASK] ."],
             "masked_negations": [f"Person {i} was not born in [MASK] ."]} for i, w in enumerate(WORDS)]
    (root / "TREx" / "P19.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_negated_scores_both_sentences_and_reports_the_share_still_first(tmp_path, monkeypatch):
    neg = _negated_data(tmp_path / "lama-negated")
    monkeypatch.setenv("KCB_NEGATED_DIR", str(neg))
    model, tok = _fake("causal")
    res = NEGATED.score(model, tok, "causal", tmp_path / "lama")
    assert res.n == 4 and {e["uid"] for e in res.examples} == {f"negated/P19/{i}" for i in range(4)}
    paris = next(e for e in res.examples if e["gold"] == "Paris")
    assert paris["rank"] == 1 and paris["negated_rank"] == 1 and "not born" in paris["negated_text"]
    # The fake ignores "not": Paris stays first under negation, the worst case (1 of 4 facts,
    # and every fact it knows).
    assert res.metrics["negated_top1"]["value"] == pytest.approx(1 / 4)
    assert res.metrics["negated_top1_known"]["value"] == pytest.approx(1.0)
    assert res.metrics["negated_top1"]["higher_is_better"] is False
    assert res.meta["candidate_counts"] == {"P19": 4}


def test_negated_data_is_found_beside_lama_or_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KCB_NEGATED_DIR", raising=False)
    _negated_data(tmp_path / "lama-negated")
    assert negated_dir(tmp_path / "lama") == tmp_path / "lama-negated"
    monkeypatch.setattr("probes.negated_data.DEFAULT_NEGATED", tmp_path / "nowhere")
    with pytest.raises(LamaDataError, match="python -m probes.negated_data download"):
        negated_dir(tmp_path / "elsewhere" / "lama")


def test_negated_download_verifies_pinned_checksums(tmp_path):
    def fake_fetch(url, dest):   # serves wrong bytes for every file
        assert url.startswith("https://raw.githubusercontent.com/norakassner/LAMA_primed_negated/")
        assert url.endswith("_random.jsonl")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("{}\n")
    with pytest.raises(LamaDataError, match="do not match their pinned checksums"):
        download(tmp_path, fetch=fake_fetch)


def test_pinned_checksums_match_the_shared_negated_lama_copy():
    from tests.helpers import shared_lama
    shared = negated_dir(shared_lama())

    def no_network(url, dest):
        raise AssertionError(f"{dest} does not match its pinned checksum")
    assert download(shared, fetch=no_network) == shared   # every file already verified
