"""The knowledge testbed: deterministic corpus, trained models that know their facts, and
compression damage that the probe sees on every family."""
import copy

import pytest

from benchmarks import testbed
from compressors import compress
from probes.lama import score_subset
from probes.lama_data import load_subset


def test_corpus_is_deterministic_and_lama_shaped(tmp_path):
    a, b = testbed.corpus(seed=1, n_entities=20), testbed.corpus(seed=1, n_entities=20)
    assert a == b and a.key == b.key and testbed.corpus(seed=2, n_entities=20).key != a.key
    assert len(a.facts) == 20 * len(testbed.RELATIONS)
    root = testbed.write_corpus(a, tmp_path / "tb")
    trained, heldout = load_subset(root / "trained", "trex"), load_subset(root / "heldout", "trex")
    assert [f.obj for f in trained.facts] == [f.obj for f in heldout.facts]
    assert trained.facts[0].text != heldout.facts[0].text       # a different template
    for rel, (cands, _) in testbed.RELATIONS.items():
        assert set(trained.candidates[rel]) <= set(cands)
    # the held-out template is never trained on
    sentences = {t for t, _ in testbed.training_sentences(a)}
    assert not any(f.text in sentences for f in heldout.facts)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KCB_CACHE", str(tmp_path_factory.mktemp("cache")))
        c = testbed.corpus(seed=0, n_entities=30)
        yield c, {fam: testbed.train(fam, c, progress=False) for fam in ("masked", "seq2seq", "causal")}


@pytest.mark.parametrize("family", ["masked", "seq2seq", "causal"])
def test_each_family_learns_its_facts_and_pruning_destroys_them(trained, family, tmp_path):
    c, models = trained
    model, tok, info = models[family]
    assert info["trained_p_at_1"] >= 0.95
    root = testbed.write_corpus(c, tmp_path / "tb") / "trained"
    dense = score_subset(model, tok, family, root, "trex").metrics["p_at_1"]["value"]
    assert dense >= 0.95
    pruned = copy.deepcopy(model)
    compress(pruned, "sparse-90", family)
    after = score_subset(pruned, tok, family, root, "trex").metrics["p_at_1"]["value"]
    assert after < dense - 0.1, f"{family}: 90% sparsity left P@1 at {after:.2f}"
