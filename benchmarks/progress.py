"""Progress while a run goes: one plain line per finished case, with an overall bar and an ETA.

    p = Progress(plan.seconds, plan.total)           # estimates from benchmarks/plan.py
    line = p.finished("<case id>", row, outcome)     # row: the runner's summary row, or None

Plain lines only (no carriage returns), so a CI log and a terminal read the same, and under
pytest-xdist the controller prints them as workers report. The ETA is the plan's estimate of the
cases left, corrected by how the finished ones compared with their estimates. Long single probes
draw their own bar on a terminal (probes/lama.py).
"""
from __future__ import annotations

import time

BAR = 20
UNIT = {"lama": "facts", "ability": "examples", "perplexity": "windows"}


def duration(seconds: float) -> str:
    """42 s | 3 min | 1 h 05 min."""
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, estimates: dict[str, float], total: float | None = None, start=None):
        self.estimates = dict(estimates)
        self.shared = max(0.0, (total or 0.0) - sum(self.estimates.values()))   # loads, compressions
        self.start = time.monotonic() if start is None else start
        self.done: list[str] = []

    def eta(self, now: float) -> float | None:
        """Seconds left: the estimates of the cases left (and of the shared work, in proportion),
        times elapsed / estimated so far."""
        total_est = sum(self.estimates.values()) + self.shared
        if not total_est:
            return None
        done_cases = sum(self.estimates.get(c, 0.0) for c in self.done)
        done_frac = done_cases / max(sum(self.estimates.values()), 1e-9)
        done_est = done_cases + self.shared * done_frac
        left_est = total_est - done_est
        elapsed = now - self.start
        return left_est * (elapsed / done_est) if done_est > 0 else left_est

    def finished(self, case_id: str, row: dict | None, outcome: str, now: float | None = None) -> str:
        """The line for a finished case: bar, count, elapsed and ETA, then id, facts/s,
        retention and verdict (or the outcome: skipped, error)."""
        now = time.monotonic() if now is None else now
        self.done.append(case_id)
        n, total = len(self.done), max(len(self.estimates), len(self.done))
        fill = BAR * n // total
        eta = self.eta(now)
        head = (f"[{'#' * fill}{'.' * (BAR - fill)}] {n}/{total} {clock(now - self.start)}"
                + (f" ETA {clock(eta)}" if eta is not None and n < total else ""))
        if row is None:
            return f"{head}  {case_id}  {outcome}"
        speed = row.get("facts_per_s")
        ret = row.get("retention")
        parts = [case_id, f"{speed:.1f} {UNIT.get(row.get('kind'), 'units')}/s"
                 if isinstance(speed, (int, float)) else "-",
                 f"retention {ret:.3f}" if isinstance(ret, (int, float)) else "retention -",
                 row.get("verdict", outcome)]
        return f"{head}  " + "  ".join(parts)
