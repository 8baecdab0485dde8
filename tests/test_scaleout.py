"""Sharding (--shard K/N) and xdist placement: deterministic, whole models together, and two
shards merged give the same records as one run.

    pytest tests/test_scaleout.py
"""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from benchmarks.matrix import cases, select_models
from benchmarks.scaleout import ShardError, assign, parse_shard, unit, worker_device
from tests.helpers import REPO


def test_parse_shard_accepts_k_of_n_and_names_the_fix_otherwise():
    assert parse_shard("2/8") == (2, 8) and parse_shard(" 1 / 1 ") == (1, 1)
    assert parse_shard(None) is None
    for bad in ("0/2", "3/2", "2", "a/b", "1/0", "-1/2"):
        with pytest.raises(ShardError, match="expected K/N"):
            parse_shard(bad)


def test_every_case_in_exactly_one_shard_and_models_never_split():
    matrix = cases(select_models("all"))
    n_models = len({c.model.id for c in matrix})
    for n in (1, 2, 3, 5, n_models):
        where = assign(matrix, n)
        assert set(where) == {c.id for c in matrix} and set(where.values()) <= set(range(1, n + 1))
        for m in {c.model.id for c in matrix}:          # a model's cases share one shard
            assert len({where[c.id] for c in matrix if c.model.id == m}) == 1
        sizes = Counter(where.values())
        biggest = max(Counter(c.model.id for c in matrix).values())
        assert max(sizes.values()) - min(sizes.get(k, 0) for k in range(1, n + 1)) <= biggest
    assert assign(matrix, 3) == assign(list(matrix), 3)   # deterministic


def test_more_shards_than_models_splits_by_preset_and_keeps_presets_whole():
    matrix = cases(select_models("default"))
    n_presets, n_models = len({c.preset.id for c in matrix}), len({c.model.id for c in matrix})
    assert n_models < 8
    where = assign(matrix, 8)
    assert set(where.values()) == set(range(1, 9))       # no idle machine
    for c in matrix:                                      # a (model, preset) stays together
        same = [d for d in matrix if unit(d, n_models, 8) == unit(c, n_models, 8)]
        assert {where[d.id] for d in same} == {where[c.id]}
    assert len({unit(c, n_models, 8) for c in matrix}) == n_models * n_presets


def test_xdist_worker_gets_its_own_gpu_only_when_there_are_several():
    assert worker_device("cuda", "gw0", 4) == "cuda:0"
    assert worker_device("cuda", "gw5", 4) == "cuda:1"
    assert worker_device("cuda", "gw1", 1) == "cuda"      # one GPU: everybody shares it
    assert worker_device("cuda", "", 4) == "cuda"         # not under xdist
    assert worker_device("cpu", "gw3", 4) == "cpu"


def _pytest(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider",
                          "--benchmark-disable", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def _records(folder):
    out = {}
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        out[r["case_id"]] = (r["metrics"], r["gate"].get("verdict"),
                             [(e["uid"], e["rank"]) for e in r["examples"]])
    return out


def test_two_shards_merged_equal_one_run(tmp_path):
    """The issue's check, on the tiny models: shard 1/2 + shard 2/2 == one run, case by case;
    and site/build.py accepts the two folders together."""
    sel = ["--tiny", "--limit", "1", "-k", "(none or sparse-50) and google-re"]
    _pytest(*sel, "--results-dir", str(tmp_path / "one"))
    for k in (1, 2):
        log = _pytest(*sel, "--shard", f"{k}/2", "--results-dir", str(tmp_path / f"s{k}"))
        assert "deselected" in log
    one, s1, s2 = (_records(tmp_path / d) for d in ("one", "s1", "s2"))
    assert len(one) == 6 and s1 and s2 and not set(s1) & set(s2)
    assert {**s1, **s2} == one
    site = subprocess.run([sys.executable, "site/build.py", str(tmp_path / "s1"), str(tmp_path / "s2"),
                           "-o", str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True)
    assert site.returncode == 0, site.stderr


def test_progress_bar_is_off_under_xdist_and_on_short_work(monkeypatch):
    from probes.lama import _progress
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert _progress(10_000, "trex").disable
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert _progress(10, "trex").disable
