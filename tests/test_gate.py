"""The retention gate (benchmarks/derive.py) on constructed records with known answers."""
import pytest

from benchmarks import derive
from benchmarks.derive import MIN_BASELINE_CORRECT, MIN_FACTS, compare


def _record(case_id, outcomes, *, kind="lama", revision="r", version="lama-2", limit=None,
            extra=None):
    """A record as derive reads it: outcomes are ranks (LAMA) or booleans (ability)."""
    examples = []
    for i, o in enumerate(outcomes):
        e = {"uid": f"f{i:03d}", "group": "P19"}
        e.update({"rank": o} if kind == "lama" else {"correct": o})
        e.update(extra(i) if extra else {})
        examples.append(e)
    metric = "p_at_1" if kind == "lama" else "acc"
    right = sum((o == 1) if kind == "lama" else o for o in outcomes) / len(outcomes)
    return {"case_id": case_id, "status": "ok", "model": {"revision": revision},
            "probe": {"kind": kind, "version": version, "data_checksum": "c", "limit": limit,
                      "main_metric": metric},
            "metrics": {metric: {"value": right, "stderr": 0.1}}, "examples": examples,
            "gate": {"protocol": "lenient"}}


def _pair(n_right_base, n_right_comp, n=40):
    base = _record("m__none__trex", [1] * n_right_base + [3] * (n - n_right_base))
    comp = _record("m__sparse-10__trex", [1] * n_right_comp + [3] * (n - n_right_comp))
    return base, comp


def test_real_drop_below_the_floor_fails_with_the_numbers():
    c = compare(*_pair(40, 20), floor=0.90)            # retention 0.50, 20 lost, 0 gained
    assert c.verdict == "fail"
    assert (c.lost, c.gained) == (20, 0)
    assert c.p == pytest.approx(2 ** -20)
    for part in ("m at sparse-10 on trex", "retention 0.500", "floor 0.90", "20 facts lost",
                 "0 gained", "on 40 facts"):
        assert part in c.message
    lo, hi = c.ci
    assert lo <= 0.5 <= hi


def test_drop_within_noise_passes_even_below_the_floor():
    c = compare(*_pair(20, 18), floor=0.95)            # retention 0.90: 2 lost, p = 0.25
    assert c.retention == pytest.approx(0.9) and c.p == pytest.approx(0.25)
    assert c.verdict == "pass"


def test_ungated_presets_record_only():
    assert compare(*_pair(20, 0), floor=None).verdict == "recorded"


def test_too_few_facts_is_not_a_result():
    base, comp = _pair(MIN_BASELINE_CORRECT - 1, 0)
    c = compare(base, comp, floor=0.9)
    assert c.verdict == "too-few-facts" and not c.rated
    assert "needs" in c.reason
    n = MIN_FACTS - 1
    small = compare(*_pair(n, 0, n=n), floor=0.9)
    assert small.verdict == "too-few-facts"
    assert derive.pooled([c, small]) == (None, None, 0)    # kept out of summaries


def test_degenerate_ability_baseline():
    # BoolQ-like: the gold is "yes" (choice 0) for 30 of 40 examples; the baseline always says
    # "no", so it scores 0.25, below always answering "yes" (0.75).
    gold = [0] * 30 + [1] * 10
    def ex(i):
        return {"choice": 1, "choices": ["yes", "no"], "target": gold[i]}
    base = _record("m__none__boolq", [g == 1 for g in gold], kind="ability", extra=ex)
    comp = _record("m__sparse-10__boolq", [g == 1 for g in gold], kind="ability", extra=ex)
    assert derive.majority_rate(base) == pytest.approx(0.75)
    assert compare(base, comp).verdict == "degenerate-baseline"


def test_a_baseline_of_another_scorer_is_never_paired():
    base, comp = _pair(40, 20)
    base["probe"]["version"] = "lama-1"
    c = compare(base, comp, floor=0.9)
    assert c.verdict == "mismatched-baseline" and "probe version" in c.reason


def test_a_subsample_is_paired_with_a_larger_baseline_on_the_facts_both_scored():
    """Limits are nested (each relation's first N facts of one fixed order), so a per-call case at
    a smaller limit pairs with the baseline on its own facts; both values are over those facts."""
    base, comp = _pair(40, 20)                    # the baseline knows 40, the compressed 20
    base["probe"]["limit"], comp["probe"]["limit"] = 10, 3
    comp["examples"] = comp["examples"][:32]      # the subsample: 32 facts, 20 right
    c = compare(base, comp, floor=0.9)
    assert c.n_shared == 32 and c.extra["limits"] == (3, 10)
    assert c.baseline_value == pytest.approx(32 / 32) and c.value == pytest.approx(20 / 32)
    assert c.retention == pytest.approx(20 / 32) and c.verdict == "fail"
    comp["examples"] = comp["examples"][:20]      # below MIN_FACTS shared: recorded, not rated
    assert compare(base, comp, floor=0.9).verdict == "too-few-facts"


def test_open_protocol_judges_only_the_facts_it_can_ask():
    def opened(outcomes):
        return lambda i: {"open": None if i >= 35 else {"correct": outcomes[i], "answer": "x"}}
    base = _record("m__none__trex", [1] * 40, extra=opened([True] * 40))
    comp = _record("m__sparse-10__trex", [1] * 40, extra=opened([True] * 10 + [False] * 30))
    lenient = compare(base, comp, floor=0.9)
    strict = compare(base, comp, floor=0.9, protocol="open")
    assert lenient.retention == 1.0 and lenient.verdict == "pass"
    assert strict.n_shared == 35 and strict.retention == pytest.approx(10 / 35)
    assert strict.verdict == "fail" and strict.metric == "open_p_at_1"


def test_pooled_retention_weighs_facts_not_probes():
    big = compare(*_pair(40, 40), floor=None)                      # 40 of 40 kept
    base, comp = _pair(10, 5, n=30)
    small = compare(base, comp, floor=None)                        # 5 of 10 kept
    ret, ci, n = derive.pooled([big, small])
    assert ret == pytest.approx(45 / 50) and n == 70
    assert ci[0] <= ret <= ci[1]
