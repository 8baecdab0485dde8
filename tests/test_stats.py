import pytest

from benchmarks.stats import flips, mcnemar_exact


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(10, 0) == pytest.approx(1 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == pytest.approx(638 / 1024)   # P(X>=5), X~Bin(10, 1/2)
    assert mcnemar_exact(0, 3) == 1.0


def test_flips_count_paired_changes_only_on_shared_facts():
    base = {"a": True, "b": True, "c": False, "d": False, "only-base": True}
    comp = {"a": True, "b": False, "c": True, "d": False, "only-comp": False}
    assert flips(base, comp) == (1, 1)
    with pytest.raises(ValueError, match="share no facts"):
        flips({"x": True}, {"y": True})
