"""The Pareto front of knowledge against size, crowning only steps that are beyond noise.

    front = pareto_front([{"x": bytes, "y": value, "lo": lower end of y's 95 % interval,
                           "rank": preference among equal sizes, ...}, ...])

Walking from the smallest point up, a point joins the front only when the lower end of its
interval is above the value of the last point on the front: a larger model or preset is named
as worth choosing only if it keeps measurably more than the smaller choice before it. Among
points of one size the preferred one (lowest ``rank``: the baseline, then the sweep order)
is tried first, so a preset that stores the same bytes as the baseline and scores within
noise of it (unstructured sparsity stored dense) is never crowned.
"""
from __future__ import annotations


def pareto_front(points: list[dict]) -> list[dict]:
    front: list[dict] = []
    for p in sorted(points, key=lambda p: (p["x"], p.get("rank", 0))):
        if not front or p["lo"] > front[-1]["y"]:
            if front and front[-1]["x"] == p["x"]:
                front.pop()           # same size, measurably better: it replaces the other
            front.append(p)
    return front
