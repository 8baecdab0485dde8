"""A failed knowledge gate is a finding: pytest prints its one-line message, no traceback (issue 19).

A real pytest run (under pytest-xdist, as CI may run it) on the testbed (trained in seconds, knows its facts by construction): `sparse-90`
destroys what testbed-llama knows, and $KCB_FLOORS gives that preset a floor it cannot meet.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import REPO

CASE = "testbed-llama__sparse-90__fact-trained"


def test_a_failed_gate_prints_one_line_and_no_traceback(tmp_path):
    env = dict(os.environ, KCB_FLOORS="sparse-90=0.9")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--models", "testbed", "-k",
         "testbed-llama and (none or sparse-90) and fact-trained", "--results-dir", str(tmp_path),
         "--benchmark-disable", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]                 # 1: a gate failure, not an error (6)
    assert "1 failed, 1 passed" in text, text[-3000:]
    failures = re.split(r"^=+ .+ =+$", text.split("= FAILURES =", 1)[1], maxsplit=1, flags=re.M)[0]
    # what pytest says about the failure itself: the section up to any captured output
    said = re.split(r"^-+ Captured .* -+$", failures, maxsplit=1, flags=re.M)[0]
    body = [l for l in said.splitlines() if l.strip() and not re.fullmatch(r"[_=\s]*", l)
            and not l.startswith("[gw")]      # xdist names the worker
    assert len(body) == 2 and body[0].startswith("_") and CASE in body[0], failures
    message = body[1]                         # the header, then the gate's one line
    assert message.startswith("knowledge gate: ") and "0.9" in message and "p" in message, message
    for sign in ("Traceback", "raise GateFailure", "runner.py", "test_matrix.py:", "\nE  "):
        assert sign not in said, f"{sign!r} in the failure section:\n{said}"
    # --dist loadgroup keeps a model's cases on one worker (benchmarks/scaleout.py)
    from benchmarks.record import read_records
    workers = {r["case_id"]: r["environment"]["xdist_worker"] for r in read_records(tmp_path)}
    assert len(workers) == 2 and len(set(workers.values())) == 1, workers
    # under pytest-xdist the controller prints the plan and each case's progress line
    assert re.search(r"^plan: 2 case\(s\), about ", text, re.M), text[-3000:]
    assert re.search(rf"^\[#+\.*\] 2/2 \S+  {CASE}  [0-9.]+ facts/s  retention 0\.\d+  fail$", text,
                     re.M), text[-3000:]


def test_forced_floors_must_read_as_preset_equals_number(tmp_path):
    env = dict(os.environ, KCB_FLOORS="sparse-90")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--models", "testbed", "-k", "nothing",
         "--results-dir", str(tmp_path), "--benchmark-disable", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 4 and "KCB_FLOORS='sparse-90': expected preset=floor" in out.stderr
