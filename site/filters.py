"""Formatting for the templates: bytes, numbers, p values, retention with its interval.

    filters.install(jinja_env)
"""
from __future__ import annotations

import json

from board import num

LABELS = {"too-few-facts": "too few facts", "degenerate-baseline": "degenerate baseline",
          "no-baseline": "no baseline", "mismatched-baseline": "mismatched baseline"}


def fmt_bytes(n):
    n = num(n)
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def fmt_num(x):
    x = num(x)
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.3f}"


def fmt_p(p):
    p = num(p)
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def fmt_pct(x, digits=0):
    x = num(x)
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def fmt_ci(ci, digits=0):
    """'[80–93%]' for a (low, high) interval; '' without one."""
    if not ci or num(ci[0]) is None or num(ci[1]) is None:
        return ""
    return f"[{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f}%]"


def fmt_frac(x):
    """A fraction such as sparsity: two decimals, or two significant digits when it is tiny
    (a baseline's 0.0003 zeros as loaded is not 0.00)."""
    x = num(x)
    if x is None:
        return "–"
    return f"{x:.2g}" if 0 < abs(x) < 0.01 else f"{x:.2f}"


def fmt_sort(x, missing=-1.0):
    """A data-sort value: numbers as text, missing ones at a fixed end of the order."""
    x = num(x)
    return f"{missing if x is None else x:.6g}"


def verdict_label(v):
    return LABELS.get(v, v or "")


def install(env):
    env.filters.update(bytes=fmt_bytes, num=fmt_num, frac=fmt_frac, pval=fmt_p, pct=fmt_pct, ci=fmt_ci,
                       sortkey=fmt_sort, verdict=verdict_label,
                       as_json=lambda v: json.dumps(v, sort_keys=True, default=str))
