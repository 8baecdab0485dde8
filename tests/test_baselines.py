"""Committed baselines: small deterministic files, the noise rule, and the gate through pytest."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.record import read_records
from benchmarks.regression import (BaselineError, compare, make_baseline, read_baseline,
                                   write_baseline)
from tests.helpers import REPO, shared_lama


def rec(ranks, case_id="m__none__trex", uid=lambda i: f"trex/P19/{i}"):
    n = len(ranks)
    p = sum(r == 1 for r in ranks) / n
    return {"case_id": case_id, "model": {"id": "m", "revision": "sha256:abc"},
            "preset": {"id": "none"},
            "probe": {"id": "trex", "version": "lama-1", "data_checksum": "d", "limit": 10},
            "metrics": {"p_at_1": {"value": p, "stderr": (p * (1 - p) / max(n - 1, 1)) ** 0.5}},
            "n": n, "examples": [{"uid": uid(i), "group": "P19", "rank": r, "text": "long text"}
                                 for i, r in enumerate(ranks)]}


def test_baseline_files_are_small_deterministic_and_keep_only_uid_and_rank(tmp_path):
    r = rec([1, 3, 1, 2])
    path = write_baseline(r, tmp_path)
    first = path.read_bytes()
    write_baseline(json.loads(json.dumps(r)), tmp_path)
    assert path.read_bytes() == first and path.name == "m__none__trex.json"
    data = read_baseline(path)
    assert data["facts"] == {"trex/P19/0": 1, "trex/P19/1": 3, "trex/P19/2": 1, "trex/P19/3": 2}
    assert b"long text" not in first and b"timestamp" not in first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]   # atomic, cleaned up


def test_paired_rule_fails_only_when_mcnemar_says_the_loss_is_real():
    base = make_baseline(rec([1] * 10 + [2] * 10))
    five_lost = compare(base, rec([2] * 5 + [1] * 5 + [2] * 10), "b.json")
    assert five_lost["verdict"] == "regression" and five_lost["p"] == pytest.approx(1 / 32)
    assert "5 facts lost, 0 gained" in five_lost["message"] and "--update-baselines" in five_lost["message"]
    four_lost = compare(base, rec([2] * 4 + [1] * 6 + [2] * 10))
    assert four_lost["verdict"] == "pass" and four_lost["p"] == pytest.approx(1 / 16)
    swapped = compare(base, rec([2] * 5 + [1] * 5 + [1] * 5 + [2] * 5))   # 5 lost, 5 gained
    assert swapped["verdict"] == "pass"


def test_paired_rule_uses_the_shared_facts_when_the_limit_differs():
    base = make_baseline(rec([1] * 20))                    # e.g. --limit 10 committed
    smaller = compare(base, rec([2] * 6 + [1] * 4))       # a --limit 5 run: 10 shared facts
    assert smaller["n_shared"] == 10 and smaller["facts_lost"] == 6 and smaller["verdict"] == "regression"


def test_unpaired_rule_uses_the_standard_errors_when_no_fact_is_shared():
    base = make_baseline(rec([1] * 60 + [2] * 40))         # 0.60 ± 0.049
    other = lambda i: f"trex/P19/new{i}"                   # noqa: E731
    near = compare(base, rec([1] * 55 + [2] * 45, uid=other))   # 0.55: drop 0.05 < 1.645 * 0.0703
    far = compare(base, rec([1] * 40 + [2] * 60, uid=other))    # 0.40: drop 0.20
    assert near["n_shared"] == far["n_shared"] == 0
    assert near["verdict"] == "pass" and far["verdict"] == "regression"
    assert far["stderr"] == pytest.approx((0.6 * 0.4 / 99 + 0.4 * 0.6 / 99) ** 0.5)


def test_a_corrupt_baseline_is_reported_by_name(tmp_path):
    bad = tmp_path / "m__none__trex.json"
    bad.write_text("{not json")
    with pytest.raises(BaselineError, match="m__none__trex.json.*unreadable"):
        read_baseline(bad)
    bad.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(BaselineError, match="not a knowledge-cost baseline"):
        read_baseline(bad)


def _gate(baselines, results, *extra):
    env = dict(os.environ, KCB_LAMA_DIR=str(shared_lama()))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "--limit", "1", "-m", "regression",
         "--baselines-dir", str(baselines), "--results-dir", str(results), "-q",
         "-p", "no:cacheprovider", "--benchmark-disable", *extra],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


def test_gate_fails_when_a_baseline_is_raised_and_passes_after_the_update(tmp_path):
    case = "tiny-masked__none__trex"
    baselines = tmp_path / "baselines"
    # Create it the way a user adds a case to the gated selection.
    env = dict(os.environ, KCB_LAMA_DIR=str(shared_lama()))
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--tiny", "--limit", "1",
                          "-k", "tiny-masked and none and trex", "--update-baselines",
                          "--baselines-dir", str(baselines), "--results-dir", str(tmp_path / "r1"),
                          "-q", "-p", "no:cacheprovider", "--benchmark-disable"],
                         cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:]
    path = baselines / f"{case}.json"
    honest = read_baseline(path)
    assert len(honest["facts"]) == 41                       # one fact per T-REx relation
    # Same code, same facts: passes.
    out = _gate(baselines, tmp_path / "r2")
    assert out.returncode == 0, out.stdout[-3000:]
    (r,) = read_records(tmp_path / "r2")
    assert r["gate"]["committed_baseline"]["verdict"] == "pass"
    assert r["gate"]["committed_baseline"]["facts_lost"] == 0
    # Raise the baseline: claim every fact was known. The run now "lost" the ones it misses.
    raised = dict(honest, facts={u: 1 for u in honest["facts"]}, value=1.0)
    path.write_text(json.dumps(raised))
    missed = sum(1 for v in honest["facts"].values() if v != 1)
    assert missed >= 5, "the tiny model must miss enough facts for the test to mean something"
    out = _gate(baselines, tmp_path / "r3")
    assert out.returncode == 1
    assert "knowledge regression against the committed baseline" in out.stdout
    assert f"{missed} facts lost, 0 gained" in out.stdout
    (r,) = read_records(tmp_path / "r3")                    # the record is still written
    assert r["gate"]["verdict"] == "fail"
    # Accept the new numbers: --update-baselines rewrites the file, and the gate passes again.
    out = _gate(baselines, tmp_path / "r4", "--update-baselines")
    assert out.returncode == 0, out.stdout[-3000:]
    assert read_baseline(path) == honest
    assert _gate(baselines, tmp_path / "r5").returncode == 0


def test_committed_baselines_are_valid_and_small():
    folder = REPO / "benchmarks" / "baselines"
    files = sorted(folder.glob("*.json"))
    assert files, "benchmarks/baselines/ has no committed baseline"
    for path in files:
        data = read_baseline(path)
        assert data["case_id"] == path.stem and path.stat().st_size < 64 * 1024


def test_workflow_runs_the_local_gate_command_with_read_only_permissions():
    wf = (REPO / ".github" / "workflows" / "gate.yml").read_text()
    assert "pull_request:" in wf and "permissions:\n  contents: read\n" in wf
    assert "write" not in wf.split("permissions:")[1].split("jobs:")[0]
    assert "run: bash scripts/setup.sh" in wf and "run: bash scripts/gate.sh" in wf
    assert "python -m probes.lama_data download" in wf and "actions/upload-artifact" in wf
    assert "bash scripts/gate.sh" in (REPO / "README.md").read_text()
