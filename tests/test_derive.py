"""The four consumers of a record agree: the runner's gate (stored in the record when the case
ran), the leaderboard, the report and the committed-baseline check all take retention, flips,
McNemar p and the verdict from benchmarks/derive.py, on every published record."""
import sys

import pytest

from benchmarks import analysis, derive, regression
from benchmarks.record import merge_folders
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "site"))
from board import Board  # noqa: E402

PUBLISHED = REPO / "published" / "records"


@pytest.fixture(scope="module")
def published():
    merged = merge_folders([PUBLISHED], strict=True)
    assert len(merged.records) >= 20, "published/records must hold the republished records"
    return merged.records


def _pairs(records):
    for cid, rec in sorted(records.items()):
        model, preset, probe = cid.split("__")
        if preset != "none" and rec["status"] == "ok":
            yield records.get(f"{model}__none__{probe}"), rec


def test_the_runner_and_derive_agree_on_every_published_record(published):
    checked = 0
    for base, rec in _pairs(published):
        gate = rec["gate"]
        c = derive.compare(base, rec, gate["floor"], gate["protocol"])
        assert c.verdict == gate["verdict"] or gate.get("committed_baseline"), rec["case_id"]
        if c.paired is not None:
            assert (c.lost, c.gained) == (gate["facts_lost"], gate["facts_gained"]), rec["case_id"]
            assert c.p == pytest.approx(gate["mcnemar_p"]) and c.retention == pytest.approx(gate["retention"])
        checked += 1
    assert checked >= 10


def test_the_board_the_report_and_the_regression_check_agree(published):
    board = Board(published)
    cells = {c["case_id"]: c for row in board.rows for c in row["cells"].values()}
    checked = 0
    for base, rec in _pairs(published):
        if base is None or base["status"] != "ok":
            continue
        gate = rec["gate"]
        c = derive.compare(base, rec, gate["floor"], gate["protocol"])
        cell = cells[rec["case_id"]]
        assert cell["verdict"] == c.verdict and cell["retention"] == c.retention
        assert cell["ci"] == c.ci and (cell["lost"], cell["gained"]) == (c.lost, c.gained)
        if c.paired is None or rec["probe"]["kind"] != "lama":
            continue
        s = analysis.knowledge_summary(base, rec, relation_types_map={})
        assert (s["facts_lost"], s["facts_gained"]) == (c.lost, c.gained)
        assert s["retention"] == pytest.approx(c.retention) and s["mcnemar_p"] == pytest.approx(c.p)
        assert tuple(s["retention_ci"] or ()) == tuple(c.ci or ())
        check = regression.compare(regression.make_baseline(base), rec)
        assert (check["facts_lost"], check["facts_gained"]) == (c.lost, c.gained)
        assert check["p"] == pytest.approx(c.p)
        checked += 1
    assert checked >= 10
