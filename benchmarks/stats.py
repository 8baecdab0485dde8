"""Paired statistics for dense-vs-compressed comparisons on the same facts (stdlib only).

    lost, gained = flips(base_correct, comp_correct)
    p = mcnemar_exact(lost, gained)     # one-sided: P(a loss this large | no real change)
    is_correct({"uid": "x", "correct": True}) -> True
"""
from __future__ import annotations

from math import comb


def flips(baseline: dict[str, bool], compressed: dict[str, bool]) -> tuple[int, int]:
    """(correct->wrong, wrong->correct) over the facts both runs scored."""
    shared = baseline.keys() & compressed.keys()
    if not shared:
        raise ValueError("the baseline and compressed runs share no facts")
    lost = sum(1 for k in shared if baseline[k] and not compressed[k])
    gained = sum(1 for k in shared if compressed[k] and not baseline[k])
    return lost, gained


def retention(baseline: dict[str, bool], compressed: dict[str, bool]) -> tuple[float | None, float, float, int]:
    """(compressed/baseline accuracy, baseline accuracy, compressed accuracy, n) on shared facts;
    retention is None when the baseline gets none of them right."""
    shared = baseline.keys() & compressed.keys()
    if not shared:
        raise ValueError("the baseline and compressed runs share no facts")
    b = sum(baseline[k] for k in shared) / len(shared)
    c = sum(compressed[k] for k in shared) / len(shared)
    return (c / b if b else None), b, c, len(shared)


def mcnemar_exact(lost: int, gained: int) -> float:
    """One-sided exact McNemar p-value that the compressed model is worse:
    P(X >= lost) for X ~ Binomial(lost + gained, 1/2). 1.0 when nothing flipped."""
    n = lost + gained
    if n == 0:
        return 1.0
    return sum(comb(n, k) for k in range(lost, n + 1)) / 2 ** n


def is_correct(e: dict) -> bool:
    """Whether one per-example outcome counts as correct: ``e["correct"]`` where a probe reports
    it (ability probes), else the gold ranked first (LAMA probes: ``rank == 1``)."""
    return bool(e["correct"]) if "correct" in e else e["rank"] == 1


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 1]) of an already sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


BOOTSTRAP_RESAMPLES = 2000   # percentile intervals settle to ~0.01 of their width by ~2000 draws
BOOTSTRAP_SEED = 0


def bootstrap_retention_ci(baseline: dict[str, bool], compressed: dict[str, bool],
                           level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Paired percentile-bootstrap interval for retention (compressed/baseline accuracy).

    Facts shared by both runs are resampled with replacement as pairs (so the correlation
    between the two runs is kept), ``resamples`` times, from ``random.Random(seed)``: the same
    inputs always give the same interval. Resamples in which the baseline gets nothing right
    have no retention and are dropped. None when the baseline gets none of the facts right."""
    shared = sorted(baseline.keys() & compressed.keys())
    if not shared:
        raise ValueError("the baseline and compressed runs share no facts")
    # Only the joint outcome of a fact matters: 0 = both wrong, 1 = gained, 2 = lost, 3 = kept.
    return bootstrap_kinds([2 * baseline[k] + compressed[k] for k in shared], level, resamples, seed)


def bootstrap_kinds(kinds: list[int], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """The paired bootstrap of ``bootstrap_retention_ci`` on the joint outcomes alone, in the
    order given (0 both wrong, 1 gained, 2 lost, 3 kept)."""
    import random
    if not 0 < level < 1 or resamples < 1:
        raise ValueError("level must be in (0, 1) and resamples positive")
    if not any(k >= 2 for k in kinds):
        return None
    rng, n, values = random.Random(seed), len(kinds), []
    for _ in range(resamples):
        counts = [0, 0, 0, 0]
        for k in rng.choices(kinds, k=n):
            counts[k] += 1
        b = counts[2] + counts[3]
        if b:
            values.append((counts[1] + counts[3]) / b)
    values.sort()
    return _percentile(values, (1 - level) / 2), _percentile(values, 1 - (1 - level) / 2)
