"""Chaos: a run killed with SIGKILL at random moments, again and again, each time resumed with
--resume, ends with exactly the records of an uninterrupted run (issue 17). Every file seen after
a kill is a complete record or a hidden temp file; nothing is lost, duplicated or half-written.

The selection is three tiny-model cases on a small LAMA folder written here (no LAMA download, no
training), so the whole test takes a couple of minutes even with 20 kills."""
import json
import os
import random
import signal
import subprocess
import sys
import time

from benchmarks.record import merge_folders, read_record
from tests.helpers import REPO, write_lama

KILLS = 20
CASES = {f"tiny-causal__{p}__trex" for p in ("none", "sparse-50", "int8-dyn")}


def _cmd(lama, results, *extra):
    return [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "-k",
            "tiny-causal and (none or sparse-50 or int8-dyn) and trex", "--lama-dir", str(lama),
            "--results-dir", str(results), "--benchmark-disable", "-q", "-p", "no:cacheprovider",
            *extra]


def _measurement(rec):
    """What a rerun must reproduce exactly: everything but timings and timestamps."""
    effect = {k: v for k, v in rec["preset"]["effect"].items() if "seconds" not in k}
    return {k: rec[k] for k in ("case_id", "status", "metrics", "n", "groups", "examples", "gate")} | {
        "effect": effect, "probe": {k: rec["probe"][k] for k in ("version", "data_checksum", "limit")}}


def _check_folder(folder):
    """After a kill: every visible file is a complete, valid record of a selected case."""
    for path in folder.glob("*.json"):
        if path.name.startswith("."):
            continue
        rec = read_record(path)            # raises on a partial or invalid file
        assert rec["case_id"] in CASES and rec["status"] == "ok", path


def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path):
    lama = write_lama(tmp_path / "lama", [(f"Person{i}", c) for i, c in
                                          enumerate(["Paris", "Rome", "Oslo", "Paris", "Lima", "Rome"])])
    env = {**os.environ, "KCB_CACHE": str(tmp_path / "cache"), "KCB_LAMA_VERIFY": "0"}
    t0 = time.monotonic()
    ref = subprocess.run(_cmd(lama, tmp_path / "ref"), cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    duration = time.monotonic() - t0
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    reference = {cid: _measurement(r) for cid, r in merge_folders([tmp_path / "ref"]).records.items()}
    assert set(reference) == CASES

    rng = random.Random(17)
    out = tmp_path / "chaos"
    kills = finished_early = 0
    while kills < KILLS:
        # Kill anywhere from interpreter start-up to the end of a full run: early kills hit
        # start-up and collection, late ones a case mid-probe or a record mid-write.
        delay = rng.uniform(0.0, duration)
        proc = subprocess.Popen(_cmd(lama, out, "--resume"), cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
            finished_early += 1                 # the run ended before its kill: resume from scratch
            if len(list(out.glob("*.json"))) == len(CASES):
                for path in out.glob("*.json"):   # start the chaos over, keep counting kills
                    path.unlink()
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            kills += 1
        if out.exists():
            _check_folder(out)
    final = subprocess.run(_cmd(lama, out, "--resume"), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    merged = merge_folders([out], strict=True)
    assert not merged.newer_errors and not merged.refused
    assert {cid: _measurement(r) for cid, r in merged.records.items()} == reference
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{c}.json" for c in CASES)
    assert kills == KILLS
