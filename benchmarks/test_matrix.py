"""The benchmark: one parametrized case per (model, preset, probe); see benchmarks/matrix.py.

    pytest benchmarks -k "smollm2 and sparse-50 and trex" --limit 20
"""
import pytest

from benchmarks.models import ModelUnavailable
from benchmarks.runner import GateFailure
from compressors import BackendUnavailable, unavailable_reason


def test_case(case, runner, benchmark, request):
    try:
        _run(case, runner, benchmark)
    except Exception:   # a case that could not run (gate findings and skips are not Exceptions):
        # said in the report, which xdist carries to the controller, for exit code 6 (conftest)
        request.node.user_properties.append(("kcb_case_error", True))
        raise
    finally:   # the progress line (benchmarks/live.py) reads the summary row from the report
        row = runner.row(case.id)
        if row is not None:
            request.node.user_properties.append(("kcb_row", row))


def _run(case, runner, benchmark):
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
    except GateFailure as exc:
        finding = str(exc)
    else:
        return
    # A finding, not a crash: its one line, no traceback. Raised outside the except block, or
    # pytest would also print the GateFailure it was handling ("During handling of the above
    # exception, another exception occurred").
    pytest.fail(f"knowledge gate: {finding}", pytrace=False)
