"""The leaderboard builder: merges folders, computes retention, escapes, refuses bad records."""
import json
import subprocess
import sys

import pytest

from benchmarks.record import write_record
from tests.helpers import REPO
from tests.test_record import make_record

sys.path.insert(0, str(REPO / "site"))
import build as site_build  # noqa: E402


def _examples(ranks):
    return [{"uid": f"u{i}", "group": "P19", "gold": "x", "prediction": "x", "rank": r,
             "text": "t", "mode": "slot-last"} for i, r in enumerate(ranks)]


def _write_pair(folder, model="m"):
    base = make_record(f"{model}__none__trex", examples=_examples([1, 1, 1, 1, 2]), n=5)
    base["model"]["id"] = model
    comp = make_record(f"{model}__sparse-50__trex", examples=_examples([1, 2, 2, 1, 2]), n=5)
    comp["model"]["id"] = model
    comp["preset"].update(id="sparse-50", method="global-magnitude")
    comp["gate"] = {"floor": 0.4, "verdict": "pass"}
    write_record(folder, base)
    write_record(folder, comp)


def test_retention_is_computed_on_shared_facts(tmp_path):
    _write_pair(tmp_path)
    records = site_build.merge([tmp_path])
    table, probes, _ = site_build.rows(records)
    comp = [r for r in table if r["preset"] == "sparse-50"][0]
    assert comp["cells"]["trex"]["retention"] == pytest.approx(2 / 4)
    assert [r["preset"] for r in table] == ["none", "sparse-50"]     # baseline first


def test_build_escapes_markup_in_names(tmp_path):
    _write_pair(tmp_path)
    path = tmp_path / "m__none__trex.json"
    rec = json.loads(path.read_text())
    rec["model"]["baseline"] = "<script>alert(1)</script>"
    path.write_text(json.dumps(rec))
    out = site_build.build([tmp_path], tmp_path / "site")
    html = out.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_latest_record_per_case_wins_when_merging(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_pair(a)
    newer = make_record("m__none__trex", examples=_examples([2, 2, 2, 2, 2]), n=5)
    newer["timestamps"]["finished"] = "2027-01-01T00:00:00+00:00"
    write_record(b, newer)
    merged = site_build.merge([a, b])
    assert merged["m__none__trex"]["timestamps"]["finished"].startswith("2027")
    assert len(merged) == 2


def test_cli_refuses_unknown_schema_naming_the_file(tmp_path):
    _write_pair(tmp_path)
    rec = json.loads((tmp_path / "m__none__trex.json").read_text())
    rec["schema_version"] = 7
    (tmp_path / "m__none__trex.json").write_text(json.dumps(rec))
    out = subprocess.run([sys.executable, str(REPO / "site" / "build.py"), str(tmp_path), "-o",
                          str(tmp_path / "site")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "m__none__trex.json" in out.stderr and "schema_version 7" in out.stderr


def test_builder_never_imports_torch(tmp_path):
    _write_pair(tmp_path)
    code = (f"import sys; sys.argv=['build', {str(tmp_path)!r}, '-o', {str(tmp_path / 's')!r}];"
            f"sys.path.insert(0, {str(REPO / 'site')!r}); import build; build.main(sys.argv[1:]);"
            "assert 'torch' not in sys.modules, 'site builder imported torch'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_knowledge_bits_known_values():
    import math
    assert site_build._channel_bits(1.0, 8) == pytest.approx(3.0)        # perfect: log2 K per fact
    assert site_build._channel_bits(1 / 8, 8) == 0.0                     # chance: nothing
    assert site_build._channel_bits(0.5, 2) == 0.0
    # K=4, a=0.5: 2 + 0.5*log2(0.5) + 0.5*log2(0.5/3)
    assert site_build._channel_bits(0.5, 4) == pytest.approx(2 - 0.5 + 0.5 * math.log2(1 / 6))
    rec = {"probe": {"candidate_counts": {"R1": 8, "R2": 4}},
           "groups": {"R1": {"n": 10, "p_at_1": 1.0}, "R2": {"n": 5, "p_at_1": 0.25}}}
    assert site_build.knowledge_bits(rec) == pytest.approx(30.0)
