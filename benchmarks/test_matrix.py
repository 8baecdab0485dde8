"""The benchmark: one parametrized case per (model, preset, probe); see benchmarks/matrix.py.

    pytest benchmarks -k "smollm2 and sparse-50 and trex" --limit 20
"""
import pytest

from benchmarks.models import ModelUnavailable


def test_case(case, runner, benchmark):
    try:
        runner.dense(case.model)
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    runner.run(case, benchmark)
