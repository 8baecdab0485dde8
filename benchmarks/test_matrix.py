"""The benchmark: one parametrized case per (model, preset, probe); see benchmarks/matrix.py.

    pytest benchmarks -k "smollm2 and sparse-50 and trex" --limit 20
"""
import pytest

from benchmarks.models import ModelUnavailable
from benchmarks.runner import GateFailure
from compressors import BackendUnavailable, unavailable_reason


def test_case(case, runner, benchmark):
    runner.skip_if_resumed(case)
    reason = unavailable_reason(case.preset, runner.device)   # before loading anything
    if reason:
        pytest.skip(reason)
    try:
        with runner.recording_failures(case):   # a failure (not the gate) leaves an error record
            try:
                runner.dense(case.model)
            except ModelUnavailable as exc:
                pytest.skip(str(exc))
            try:
                runner.run(case, benchmark)
            except BackendUnavailable as exc:   # pytest.skip is a BaseException: no error record
                pytest.skip(str(exc))
    except GateFailure as exc:   # a finding, not a crash: one line, no traceback
        pytest.fail(f"knowledge gate: {exc}", pytrace=False)
