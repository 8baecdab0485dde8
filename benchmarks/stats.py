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


def is_correct(example: dict) -> bool:
    """Whether one example was answered right: its ``correct`` flag (ability probes: lm-eval's
    per-example accuracy or exact match), else rank 1 among the candidates (LAMA probes)."""
    if "correct" in example:
        return bool(example["correct"])
    return example["rank"] == 1
