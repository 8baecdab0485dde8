"""The leaderboard's numbers: verdicts, pooled intervals, the per-model answer, sparse storage,
true bits per weight, the Pareto front, findings and the CSV/JSON export. Every figure must be
the one benchmarks/derive.py gives; these tests compare with it or with a hand computation."""
import csv
import io
import math
import sys
from pathlib import Path

import pytest

from benchmarks import derive
from tests.site_records import BASE, ability, all_records, lama, perplexity, ranks

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
import answer as site_answer  # noqa: E402
import board as site_board  # noqa: E402
import export as site_export  # noqa: E402
import findings as site_findings  # noqa: E402
import pareto as site_pareto  # noqa: E402
import relations as site_relations  # noqa: E402


def _board(records, newer=None):
    return site_board.Board({r["case_id"]: r for r in records}, newer)


def _row(board, model, preset):
    return next(r for r in board.rows if (r["model"], r["preset"]) == (model, preset))


def test_lama_retention_is_paired_on_shared_facts_and_matches_derive():
    base = lama("m", "none", BASE)
    comp = lama("m", "sparse-50", ranks(25, 15), sparsity=0.5, floor=0.9)
    comp["examples"].append({"uid": "only-here", "group": "P19", "rank": 1, "gold": "g",
                             "prediction": "g", "text": "t"})   # not in the baseline: not counted
    comp["n"] += 1
    cell = _row(_board([base, comp]), "m", "sparse-50")["cells"]["trex"]
    assert cell["retention"] == pytest.approx(25 / 30)
    assert (cell["lost"], cell["gained"], cell["shared"]) == (5, 0, 40)
    assert cell["p"] == pytest.approx(2 ** -5)       # one-sided exact McNemar: 5 lost, 0 gained
    c = derive.compare(base, comp, 0.9)
    assert cell["ci"] == c.ci and cell["verdict"] == c.verdict == "fail"
    lo, hi = cell["ci"]
    assert lo <= cell["retention"] <= hi < 1


def test_every_verdict_is_derives_and_too_few_facts_is_never_rated():
    recs = all_records()
    b = _board(recs)
    by_id = {r["case_id"]: r for r in recs}
    for row in b.rows:
        for probe, cell in row["cells"].items():
            rec = by_id[cell["case_id"]]
            if rec["status"] != "ok":
                assert cell["verdict"] == "error"
                continue
            base = by_id.get(f"{row['model']}__none__{probe}")
            expect = derive.compare(base if row["preset"] != "none" else None, rec,
                                    rec["gate"]["floor"], "lenient")
            assert (cell["verdict"], cell["retention"], cell["ci"]) == (
                expect.verdict, expect.retention, expect.ci), cell["case_id"]
    squad = _row(b, "toy", "sparse-50")["cells"]["squad"]
    assert squad["verdict"] == "too-few-facts"
    # the pooled knowledge of the row ignores the unrated squad cell: trex facts only
    assert _row(b, "toy", "sparse-50")["knowledge"]["n"] == 40


def test_lower_is_better_retention_is_baseline_over_compressed():
    b = _board([perplexity("m", "none", 20.0), perplexity("m", "sparse-50", 25.0, sparsity=0.5)])
    cell = _row(b, "m", "sparse-50")["cells"]["wikitext-2"]
    assert cell["retention"] == pytest.approx(0.8)      # token perplexity 10 -> 12.5
    assert cell["kind"] == "ability" and cell["lost"] is None and not cell["paired"]


def test_ability_retention_pools_lm_eval_examples_with_an_interval():
    b = _board([ability("m", "none", [True] * 32 + [False] * 8),
                ability("m", "sparse-50", [True] * 24 + [False] * 12 + [True] * 4, sparsity=0.5)])
    row = _row(b, "m", "sparse-50")
    cell = row["cells"]["boolq"]
    assert cell["metric"] == "acc" and cell["retention"] == pytest.approx(28 / 32)
    assert (cell["lost"], cell["gained"]) == (8, 4)
    assert row["ability"]["retention"] == pytest.approx(28 / 32) and row["ability"]["n"] == 40
    assert row["ability"]["ci"][0] < 28 / 32 < row["ability"]["ci"][1]
    assert b.probes == {"knowledge": [], "ability": ["boolq"]}


def test_knowledge_retention_pools_facts_over_probes_with_an_interval():
    recs = [lama("m", "none", [1] * 40), lama("m", "sparse-50", ranks(20, 20), sparsity=0.5),
            lama("m", "none", [1] * 30, probe="squad"),
            lama("m", "sparse-50", [1] * 30, probe="squad", sparsity=0.5)]
    k = _row(_board(recs), "m", "sparse-50")["knowledge"]
    assert k["retention"] == pytest.approx(50 / 70)   # not the mean (0.5 + 1) / 2
    assert k["n"] == 70 and k["ci"][0] < 50 / 70 < k["ci"][1]


def test_strict_protocol_shown_where_records_carry_it_and_nothing_where_not():
    opened = [True] * 20 + [False] * 20
    recs = [lama("m", "none", BASE, opened=opened),
            lama("m", "sparse-50", ranks(25, 15), sparsity=0.5, opened=[True] * 10 + [False] * 30),
            lama("m", "none", BASE, probe="google-re"),
            lama("m", "sparse-50", ranks(25, 15), probe="google-re", sparsity=0.5)]
    row = _row(_board(recs), "m", "sparse-50")
    strict = row["cells"]["trex"]["open"]
    assert strict["value"] == pytest.approx(0.25) and strict["retention"] == pytest.approx(0.5)
    assert row["cells"]["google-re"]["open"] is None
    assert row["knowledge_open"]["n"] == 40           # only the probe that has it
    assert _row(_board(recs[2:]), "m", "sparse-50")["knowledge_open"] is None


def test_true_bits_per_weight_count_every_stored_byte():
    rec = lama("m", "int8-x", BASE, bits=8, method="dynamic-int8", weight_bytes=2300)
    rec["model"]["params"] = 800
    row = _row(_board([rec]), "m", "int8-x")
    assert row["bits_per_weight"] == pytest.approx(2300 * 8 / 800)   # 23, not the setting's 8
    assert row["bits"] == 8


def test_latency_is_the_main_probes_not_the_first_by_name():
    recs = [lama("m", "none", BASE, probe=p) for p in ("conceptnet", "trex")]
    recs[0]["latency"]["ms_per_example"] = 10.5
    recs[1]["latency"]["ms_per_example"] = 18.06
    b = _board(recs)
    assert b.main_probe == "trex"
    assert (_row(b, "m", "none")["latency"], _row(b, "m", "none")["latency_probe"]) == (18.06, "trex")


def test_sparse_storage_is_computed_from_the_measured_zeros():
    rec = lama("m", "sparse-50", BASE, sparsity=0.5, weight_bytes=5000)
    rec["preset"]["effect"].update(zeros=500, params_in_scope=1000)   # 4000 bytes in scope
    row = _row(_board([rec]), "m", "sparse-50")
    sp = site_answer.sparse_storage(row)
    # 1000 bytes outside the scope + 500 fp32 values + a 1000-bit mask
    assert sp["bytes"] == 1000 + 500 * 4 + 125
    assert sp["saves"] == pytest.approx(1 - 3125 / 5000)
    quant = _row(_board([lama("m", "int8-x", BASE, bits=8, method="dynamic-int8")]), "m", "int8-x")
    assert site_answer.sparse_storage(quant) is None


def test_the_answer_never_names_a_preset_that_saves_nothing():
    recs = [lama("m", "none", BASE, weight_bytes=1000),
            lama("m", "sparse-10", ranks(31, 9), sparsity=0.1, weight_bytes=1000),   # > baseline
            lama("m", "sparse-50", ranks(20, 20), sparsity=0.5, weight_bytes=1000),
            lama("m", "int8-x", ranks(27, 13), bits=8, method="dynamic-int8", weight_bytes=300),
            lama("m", "int4-x", ranks(15, 25), bits=4, method="bnb", weight_bytes=200)]
    (a,) = site_answer.answers(_board(recs))
    assert [e["row"]["preset"] for e in a["ranked"]] == ["int8-x", "int4-x"]   # by knowledge kept
    assert a["ranked"][0]["knowledge"]["retention"] == pytest.approx(0.9)
    assert a["ranked"][0]["knowledge"]["ci"] is not None
    assert {e["row"]["preset"] for e in a["dense_pruned"]} == {"sparse-10", "sparse-50"}
    assert a["ranked"][0]["size"] == pytest.approx(0.3)


def test_a_faster_preset_counts_only_beyond_timing_noise_and_never_at_the_same_bytes():
    recs = [lama("m", "none", BASE, weight_bytes=1000),
            lama("m", "fast", ranks(28, 12), method="structured-rows", weight_bytes=1200),
            lama("m", "same", ranks(29, 11), method="structured-rows", weight_bytes=1300),
            lama("m", "sparse-50", ranks(29, 11), sparsity=0.5, weight_bytes=1000),
            lama("m", "other-machine", ranks(29, 11), method="structured-rows", weight_bytes=1400)]
    for rec, ms in zip(recs, (10.0, 5.0, 9.0, 2.0, 2.0)):
        rec["latency"]["ms_per_example"] = ms
    recs[4]["environment"]["cpu_count"] = 64
    # 10 % faster is within noise; dense zeros timed 5x faster are noise too (same matmuls);
    # a latency from another machine is not compared
    (a,) = site_answer.answers(_board(recs))
    assert [(e["row"]["preset"], e["speed"]) for e in a["ranked"]] == [("fast", 2.0)]
    assert [e["row"]["preset"] for e in a["dense_pruned"]] == ["sparse-50"]


@pytest.mark.parametrize("points, crowned", [
    # sparse-10 at the baseline's size scores higher but within noise: only the baseline
    ([(100, 0.34, 0.26, 0), (100, 0.37, 0.29, 1)], [0]),
    # measurably better at the same size: it replaces the baseline
    ([(100, 0.34, 0.26, 0), (100, 0.50, 0.40, 1)], [1]),
    # a bigger point within noise of the smaller one is not crowned; a clearly better one is
    ([(50, 0.30, 0.2, 2), (80, 0.33, 0.25, 3), (100, 0.45, 0.38, 0)], [0, 2]),
])
def test_pareto_front_crowns_only_steps_beyond_noise(points, crowned):
    pts = [{"x": x, "y": y, "lo": lo, "rank": r, "i": i} for i, (x, y, lo, r) in enumerate(points)]
    got = [p["i"] for p in site_pareto.pareto_front(pts)]
    assert got == crowned


def test_relation_labels_and_types_come_from_the_records(monkeypatch):
    monkeypatch.delenv("KCB_LAMA_DIR", raising=False)
    info = site_relations.relation_info([lama("m", "none", BASE)])
    assert info["P19"] == {"label": "place of birth", "type": "N-1", "template": "[X] was born in [Y] ."}
    assert info["P20"]["label"] == "" and info["P20"]["template"] == "[X] died in [Y] ."


def test_relation_heat_is_paired_per_relation():
    # lama(): odd indices are P19, even P20
    b = _board([lama("m", "none", [1, 1, 1, 1]), lama("m", "sparse-50", [2, 1, 1, 2], sparsity=0.5)])
    heat, presets = site_relations.relation_heat(b, "m", "trex")
    assert presets == ["sparse-50"]
    assert heat["P19"]["sparse-50"] == pytest.approx(0.5) and heat["P20"]["sparse-50"] == pytest.approx(0.5)


def test_facts_lost_and_gained_carry_both_answers():
    b = _board([lama("m", "none", [1, 2, 1]), lama("m", "sparse-50", [2, 1, 1], sparsity=0.5)])
    facts = site_relations.facts(b, "m__sparse-50__trex")
    assert [(f["change"], f["gold"], f["base_pred"], f["pred"]) for f in facts] == [
        ("lost", "gold0", "gold0", "other0"), ("gained", "gold1", "other1", "gold1")]


def test_a_subsample_at_another_limit_is_paired_on_shared_facts_and_flagged():
    sub = lama("m", "sparse-50", ranks(20, 20), sparsity=0.5, limit=3)
    sub["examples"] = sub["examples"][:32]
    recs = [lama("m", "none", BASE, limit=10), sub,
            lama("m", "none", BASE, probe="squad", limit=10),
            lama("m", "sparse-50", ranks(20, 20), probe="squad", sparsity=0.5, limit=10)]
    b = _board(recs)
    row = _row(b, "m", "sparse-50")
    cell = row["cells"]["trex"]
    assert cell["verdict"] not in derive.UNRATED and cell["comparison"].n_shared == 32
    assert "trex at --limit 3, its baseline at 10: paired on the 32 examples both scored" in row["flags"]
    assert not any(f.startswith("squad") for f in row["flags"])     # one limit everywhere


def test_a_newer_failed_run_is_kept_beside_the_last_good_result():
    good = lama("m", "sparse-50", ranks(20, 20), sparsity=0.5)
    newer = {"case_id": good["case_id"], "status": "error",
             "error": {"type": "MemoryError", "message": "killed", "phase": "probe"},
             "timestamps": {"started": "2026-02-01T00:00:00+00:00", "finished": "2026-02-01T00:00:09+00:00"}}
    b = _board([lama("m", "none", BASE), good], {good["case_id"]: newer})
    cell = _row(b, "m", "sparse-50")["cells"]["trex"]
    assert cell["retention"] == pytest.approx(20 / 30)        # the good result still counts
    assert cell["newer_error"] == {"text": "MemoryError: killed", "case_id": good["case_id"],
                                   "finished": "2026-02-01T00:00:09+00:00"}
    assert cell["finished"] == "2026-01-01T00:00:01+00:00"
    assert any("newer run failed on 2026-02-01" in f for f in _row(b, "m", "sparse-50")["flags"])


def test_rows_follow_the_sweep_order():
    recs = [lama("m", p, [1, 2], sparsity=s, bits=bits, method=meth) for p, s, bits, meth in [
        ("int4-x", None, 4, "bnb"), ("sparse-20", 0.2, None, None), ("none", None, None, None),
        ("int8-x", None, 8, "dynamic-int8"), ("sparse-10", 0.1, None, None),
        ("wanda-50", 0.5, None, "wanda"), ("sparse-50", 0.5, None, None)]]
    b = _board(recs)
    assert [r["preset"] for r in b.rows] == ["none", "sparse-10", "sparse-20", "sparse-50",
                                            "wanda-50", "int8-x", "int4-x"]
    assert [b.preset_rank[r["preset"]] for r in b.rows] == list(range(7))


def test_findings_carry_numbers_and_drop_out_without_support():
    recs = [lama("m", "none", BASE), lama("m", "sparse-30", ranks(29, 11), sparsity=0.3),
            lama("m", "sparse-50", ranks(12, 28), sparsity=0.5, floor=0.6),
            lama("m", "wanda-50", ranks(27, 13), sparsity=0.5, method="wanda")]
    for r in recs[1:]:
        r["preset"]["params"]["amount"] = r["preset"]["effect"]["sparsity"]
    got = {f["id"]: f["text"] for f in site_findings.findings(_board(recs))}
    assert set(got) == {"gate-summary", "pruning-methods", "falloff"}     # no int8, no ability
    assert got["gate-summary"].startswith("1 of 1 gated knowledge cases fails")
    assert "wanda-50 keeps 90% [" in got["pruning-methods"]
    assert "more than magnitude pruning (40% [" in got["pruning-methods"]
    assert "keeps 97% [" in got["falloff"] and "at 30% sparsity and 40% [" in got["falloff"]
    # without the magnitude row there is nothing to compare Wanda with
    got = {f["id"] for f in site_findings.findings(_board(recs[:2] + recs[3:]))}
    assert "pruning-methods" not in got and "falloff" not in got


def test_findings_compare_int8_schemes_and_knowledge_with_ability():
    recs = [lama("m", "none", BASE), ability("m", "none", [True] * 32 + [False] * 8),
            lama("m", "int8-dyn", ranks(18, 22), bits=8, method="dynamic-int8",
                 params={"dtype": "qint8", "scope": "linear"}),
            lama("m", "ao-w8a8", ranks(30, 10), bits=8, method="torchao",
                 params={"config": "Int8DynamicActivationInt8WeightConfig"}),
            ability("m", "int8-dyn", [True] * 32 + [False] * 8, bits=8, method="dynamic-int8",
                    params={"dtype": "qint8", "scope": "linear"})]
    got = {f["id"]: f["text"] for f in site_findings.findings(_board(recs))}
    assert "per-tensor int8 (int8-dyn) keeps 60% [" in got["int8-schemes"]
    assert "per-token int8 (ao-w8a8) keeps 100%" in got["int8-schemes"]
    assert "per-token keeps more than per-tensor" in got["int8-schemes"]
    assert got["knowledge-vs-ability"].startswith("Of 1 compressed presets measured on both, "
                                                  "knowledge fell further than ability beyond noise in 1")


def test_export_has_one_row_per_record_with_the_pages_numbers(tmp_path):
    recs = all_records()
    b = _board(recs)
    info = site_export.write(b, tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    assert len(rows) == info["rows"] == len(recs)
    assert {r["case_id"] for r in rows} == {r["case_id"] for r in recs}
    fail = next(r for r in rows if r["case_id"] == "toy__sparse-90__trex")
    cell = _row(b, "toy", "sparse-90")["cells"]["trex"]
    assert fail["verdict"] == "fail" and float(fail["retention"]) == pytest.approx(cell["retention"])
    assert float(fail["ci_low"]) == pytest.approx(cell["ci"][0])
    err = next(r for r in rows if r["case_id"] == "toy__gptq-int4__trex")
    assert err["status"] == "error" and "pip install gptqmodel" in err["error"] and err["value"] == ""
    assert "'=cmd" in site_export._csv_value("=cmd")          # no formula in a spreadsheet
    assert math.isclose(float(fail["floor"]), 0.6)


def test_mixed_limits_are_flagged_only_within_one_probe():
    """Probes sized differently (T-REx 10 per relation, ConceptNet whole) are one comparable
    board; one probe measured at two limits is not, and the front page names it."""
    import pages as site_pages
    sized = [lama("m", "none", BASE, limit=10), lama("m", "none", BASE, probe="conceptnet", limit=None)]
    assert site_pages.results_meta({r["case_id"]: r for r in sized})["mixed"] == []
    mixed = [lama("m", "none", BASE, limit=10), lama("m", "sparse-50", ranks(20, 20), limit=3)]
    assert site_pages.results_meta({r["case_id"]: r for r in mixed})["mixed"] == ["trex"]
