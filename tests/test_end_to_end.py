"""The whole path as a user runs it, on tiny models: pytest cases -> records -> leaderboard."""
import json
import os
import subprocess
import sys

from benchmarks.record import read_records
from tests.helpers import REPO, shared_lama


def _pytest(*args, results):
    env = dict(os.environ, KCB_LAMA_DIR=str(shared_lama()))
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--tiny", "--limit", "1",
                           "--results-dir", str(results), "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


def test_tiny_cases_write_records_and_a_leaderboard(tmp_path):
    results = tmp_path / "records"
    out = _pytest("-k", "tiny-causal and (none or sparse-50 or int8-dyn) and trex", results=results)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "knowledge retention" in out.stdout and "tiny-causal__sparse-50__trex" in out.stdout
    records = {r["case_id"]: r for r in read_records(results)}
    assert set(records) == {"tiny-causal__none__trex", "tiny-causal__sparse-50__trex",
                            "tiny-causal__int8-dyn__trex"}
    sparse = records["tiny-causal__sparse-50__trex"]
    assert abs(sparse["preset"]["effect"]["sparsity"] - 0.5) < 0.01
    assert records["tiny-causal__int8-dyn__trex"]["preset"]["effect"]["quantized_modules"] == 14
    assert sparse["n"] == 41 and sparse["probe"]["limit"] == 1      # one fact per relation
    assert sparse["latency"]["ms_per_example"] > 0 and sparse["memory"]["peak_rss_bytes"] > 0
    site = subprocess.run([sys.executable, "site/build.py", str(results), "-o", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True)
    assert site.returncode == 0, site.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    for case in records:
        assert case.split("__")[1] in html


def test_a_compressed_case_alone_computes_its_own_baseline(tmp_path):
    out = _pytest("-k", "tiny-masked and sparse-30 and squad", results=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    (rec,) = read_records(tmp_path)
    assert rec["gate"]["baseline_case"] == "tiny-masked__none__squad"
    assert rec["gate"]["verdict"] in ("pass", "too-few-facts")   # random weights know little


def test_a_per_call_preset_runs_at_its_own_limit_paired_with_the_larger_baseline(tmp_path):
    """--limits per-call:trex=1 (the main job's way to afford int8-dyn's one call per sequence):
    the int8-dyn case scores each relation's first fact, the baseline two, and the gate pairs them
    on the 41 facts both scored; --resume keys on the case's own limit."""
    results = tmp_path / "records"
    args = ("-k", "tiny-causal and (none or int8-dyn) and trex",
            "--limits", "trex=2,per-call:trex=1")
    out = _pytest(*args, results=results)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    records = {r["case_id"]: r for r in read_records(results)}
    dyn, base = records["tiny-causal__int8-dyn__trex"], records["tiny-causal__none__trex"]
    assert (dyn["probe"]["limit"], dyn["n"]) == (1, 41) and (base["probe"]["limit"], base["n"]) == (2, 82)
    assert {e["uid"] for e in dyn["examples"]} < {e["uid"] for e in base["examples"]}
    assert dyn["gate"]["n_shared"] == 41
    again = _pytest(*args, "--resume", results=results)
    assert again.returncode == 0 and "2 skipped" in again.stdout, again.stdout[-2000:]
