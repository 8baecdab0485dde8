"""The retention gate on constructed results with known answers."""
import pytest

from benchmarks.matrix import FLOORS, Case
from benchmarks.models import MODELS
from benchmarks.runner import Runner
from compressors import PRESETS
from probes import PROBES
from probes.result import ProbeResult


def _result(n_correct, n=20):
    return ProbeResult.from_examples([
        {"uid": f"f{i}", "group": "P19", "rank": 1 if i < n_correct else 3} for i in range(n)])


def _gate(tmp_path, preset, compressed, floor=None, monkeypatch=None):
    case = Case(MODELS["tiny-causal"], PRESETS[preset], PROBES["trex"])
    if floor is not None:
        monkeypatch.setitem(FLOORS, preset, floor)
    r = Runner(tmp_path, tmp_path, limit=None)
    r._baselines[("tiny-causal", "trex")] = _result(20)
    return r._gate(case, compressed)


def test_real_drop_below_the_floor_fails_with_the_numbers(tmp_path):
    gate = _gate(tmp_path, "sparse-10", _result(10))          # floor 0.90, retention 0.50
    assert gate["verdict"] == "fail"
    assert gate["facts_lost"] == 10 and gate["facts_gained"] == 0
    assert gate["mcnemar_p"] == pytest.approx(1 / 1024)
    msg = gate["message"]
    for part in ("tiny-causal", "sparse-10", "trex", "retention 0.500", "floor 0.90",
                 "10 facts lost", "0 gained"):
        assert part in msg


def test_drop_within_noise_passes_even_below_the_floor(tmp_path, monkeypatch):
    gate = _gate(tmp_path, "sparse-10", _result(18), floor=0.95, monkeypatch=monkeypatch)
    assert gate["retention"] == pytest.approx(0.9) and gate["mcnemar_p"] == pytest.approx(0.25)
    assert gate["verdict"] == "pass"


def test_ungated_presets_record_only(tmp_path):
    assert "sparse-90" not in FLOORS
    assert _gate(tmp_path, "sparse-90", _result(0))["verdict"] == "recorded"
