"""Knowledge analysis on constructed records with known answers (benchmarks/analysis.py, stats.py)."""
import json
import subprocess
import sys

import pytest

from benchmarks.analysis import (consistency, knowledge_summary, negation, pair_records,
                                 relation_types)
from benchmarks.stats import bootstrap_retention_ci, is_correct, mcnemar_exact
from tests.helpers import REPO


def record(case_id, outcomes, weight_bytes=1000, templates=None):
    """outcomes: [(uid, group, correct)] -> a record as analysis reads it (rank 1 or 5)."""
    model, preset, probe = case_id.split("__")
    return {"case_id": case_id, "status": "ok", "model": {"id": model}, "preset": {"id": preset},
            "probe": {"id": probe, "kind": "lama", "templates": templates or {}},
            "memory": {"weight_bytes": weight_bytes},
            "examples": [{"uid": u, "group": g, "rank": 1 if ok else 5} for u, g, ok in outcomes]}


def pair(n=100, base_right=50, lost=10, gained=0, group=lambda i: "P19"):
    """n facts; the baseline knows the first base_right; the compressed model forgets `lost` of
    them and learns `gained` of the others."""
    base = [(f"trex/{group(i)}/{i}", group(i), i < base_right) for i in range(n)]
    comp = [(u, g, (i < base_right - lost) or (base_right <= i < base_right + gained))
            for i, (u, g, _) in enumerate(base)]
    return record("m__none__trex", base, 4000), record("m__sparse-50__trex", comp, 2000)


def test_ten_lost_none_gained_of_a_hundred_gives_the_exact_mcnemar_p():
    s = knowledge_summary(*pair())
    assert (s["facts_lost"], s["facts_gained"], s["n_shared"]) == (10, 0, 100)
    assert s["mcnemar_p"] == 0.0009765625 == 2 ** -10
    assert s["retention"] == pytest.approx(40 / 50)
    assert (s["baseline_correct"], s["compressed_correct"]) == (50, 40)
    assert s["weight_bytes"] == {"baseline": 4000, "compressed": 2000}
    assert s["correct_per_mib"]["compressed"] == pytest.approx(40 / (2000 / 2**20))


def test_lost_is_the_correct_to_wrong_count_not_the_net_change():
    s = knowledge_summary(*pair(lost=10, gained=10))
    assert (s["facts_lost"], s["facts_gained"]) == (10, 10)
    assert s["retention"] == pytest.approx(1.0)
    assert s["mcnemar_p"] == pytest.approx(mcnemar_exact(10, 10)) and s["mcnemar_p"] > 0.5


def test_bootstrap_interval_contains_the_estimate_is_seeded_and_shrinks_with_n():
    small = knowledge_summary(*pair(n=100, base_right=50, lost=10))
    big = knowledge_summary(*pair(n=1000, base_right=500, lost=100))
    for s in (small, big):
        lo, hi = s["retention_ci"]
        assert lo < s["retention"] < hi and s["retention"] == pytest.approx(0.8)
        assert s["ci_method"]["resamples"] == 2000 and s["ci_method"]["seed"] == 0
    width = lambda s: s["retention_ci"][1] - s["retention_ci"][0]   # noqa: E731
    # With no gains, retention = kept/(kept+lost), a proportion over the 500 known facts:
    # se = sqrt(0.8 * 0.2 / 500) = 0.0179, so a 95 % interval is about 2 * 1.96 * se = 0.070 wide;
    # over 50 known facts it is sqrt(10) times wider.
    assert width(big) == pytest.approx(0.070, abs=0.012)
    assert width(small) / width(big) == pytest.approx(10 ** 0.5, rel=0.25)
    b, c = ({e["uid"]: is_correct(e) for e in r["examples"]} for r in pair())
    assert bootstrap_retention_ci(b, c) == bootstrap_retention_ci(b, c)        # seeded
    assert bootstrap_retention_ci(b, c, seed=1) != bootstrap_retention_ci(b, c)


def test_no_retention_and_no_interval_when_the_baseline_knows_nothing():
    s = knowledge_summary(*pair(base_right=0, lost=0, gained=3))
    assert s["retention"] is None and s["retention_ci"] is None and s["facts_gained"] == 3


def test_flips_per_relation_most_lost_first_and_by_relation_type():
    rel = lambda i: ("P19", "P36", "P1412")[i % 3]    # noqa: E731
    base = [(f"trex/{rel(i)}/{i}", rel(i), True) for i in range(30)]
    lose = {"P19": 2, "P36": 6, "P1412": 0}
    seen: dict = {}
    comp = []
    for u, g, _ in base:
        seen[g] = seen.get(g, 0) + 1
        comp.append((u, g, seen[g] > lose[g]))
    types = {"P19": {"type": "N-1"}, "P36": {"type": "1-1"}, "P1412": {"type": "N-M"}}
    s = knowledge_summary(record("m__none__trex", base), record("m__int8-dyn__trex", comp, templates=types))
    assert list(s["by_relation"])[:2] == ["P36", "P19"]
    assert s["by_relation"]["P36"] == {"n": 10, "baseline_correct": 10, "compressed_correct": 4,
                                       "lost": 6, "gained": 0, "baseline_acc": 1.0,
                                       "compressed_acc": 0.4, "retention": 0.4, "type": "1-1"}
    assert {t: (r["n"], r["lost"]) for t, r in s["by_type"].items()} == {
        "1-1": (10, 6), "N-1": (10, 2), "N-M": (10, 0)}
    assert s["by_subset"]["trex"]["lost"] == 8


def test_relation_types_come_from_the_record_else_the_lama_relations_file(tmp_path, monkeypatch):
    monkeypatch.delenv("KCB_LAMA_DIR", raising=False)
    (tmp_path / "relations.jsonl").write_text(
        json.dumps({"relation": "P19", "template": "[X] was born in [Y] .", "type": "N-1"}) + "\n"
        + json.dumps({"relation": "P36", "template": "[X] capital [Y] .", "type": "1-1"}) + "\n")
    rec = {"probe": {"templates": {"P36": {"type": "N-M"}}}}
    types = relation_types(rec, tmp_path)
    assert types["P19"] == "N-1" and types["P36"] == "N-M" and types["place_of_birth"] == "N-1"
    with pytest.raises(FileNotFoundError, match="no LAMA relations file"):
        relation_types(rec, tmp_path / "missing")


def test_is_correct_prefers_an_explicit_correct_flag():
    assert is_correct({"rank": 1}) and not is_correct({"rank": 2})
    assert is_correct({"correct": True, "rank": 7}) and not is_correct({"correct": False})


def test_paraphrase_consistency_is_the_share_of_agreeing_pattern_pairs():
    ex = lambda fact, k, pred, gold="A": {"uid": f"{fact}#p{k}", "fact": fact, "pattern": k,  # noqa: E731
                                          "group": "P19", "prediction": pred, "rank": 1 if pred == gold else 2}
    rec = {"examples": [ex("f1", 0, "A"), ex("f1", 1, "A"), ex("f1", 2, "B"),   # 1 of 3 pairs agree
                        ex("f2", 0, "A"), ex("f2", 1, "A")]}                      # 1 of 1
    c = consistency(rec)
    assert c["value"] == pytest.approx((1 / 3 + 1) / 2) and c["n_facts"] == 2
    assert c["all_patterns_correct"] == pytest.approx(0.5)
    assert consistency({"examples": [{"uid": "x", "group": "g", "rank": 1}]}) is None


def test_negation_share_still_ranked_first_overall_and_among_known_facts():
    es = [{"uid": str(i), "group": "P19", "rank": r, "negated_rank": nr}
          for i, (r, nr) in enumerate([(1, 1), (1, 3), (1, 1), (2, 1), (4, 5)])]
    n = negation({"examples": es})
    assert n["negated_top1"] == pytest.approx(3 / 5) and n["n_known"] == 3
    assert n["negated_top1_known"] == pytest.approx(2 / 3) and n["higher_is_better"] is False


def test_pair_records_matches_each_probe_with_its_baseline():
    recs = [record("m__none__trex", [("a", "g", True)]), record("m__sparse-50__trex", [("a", "g", False)]),
            record("m__sparse-50__squad", [("a", "g", False)])]   # squad has no baseline
    pairs = pair_records(recs, "m", "sparse-50")
    assert [(b["case_id"], c["case_id"]) for b, c in pairs] == [("m__none__trex", "m__sparse-50__trex")]


def test_analysis_and_report_import_no_torch():
    code = "import sys, benchmarks.analysis, benchmarks.report, benchmarks.regression; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
