"""The plan before a run: how many cases, about how long on this machine, how to narrow it.

    plan = make(cases, limits, lama_root, device="cpu", results_dir=Path("results/records"))
    print("\n".join(plan.lines()))       # what conftest prints right after collection
    plan.seconds["<case id>"]            # one case's estimate (the progress line's ETA)

Calibration: earlier records' timings (benchmarks/timings.py): this machine's own records in the
results folder first, then the committed table (benchmarks/timings.json), both scaled by this
machine's speed now against theirs (benchmarks/environment.py: ``speed_ms``, a short fixed
measurement). A case costs its probe (a line through the records' (n, seconds) points at the
units it will score), its latency benchmark, and its share of loading the model and compressing
it once; a compressed case whose baseline is not selected also pays for scoring the baseline,
which its gate needs. What no record covers is scaled from the nearest thing that is (the same
probe on the dense model, the same preset on other probes, another model by parameter count)
and the plan says how many cases rest on such guesses, or on nothing.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from benchmarks import timings

LIMIT_CHOICES = (100, 30, 10, 3, 1)   # the --limit values a plan may suggest
SUGGEST_ABOVE_S = 30 * 60             # longer than this: suggest a --limit


# -- units: what a case will score at a limit ---------------------------------------------------
@lru_cache(maxsize=None)
def _lama_units(root: str, subset: str, limit: int | None) -> int:
    from probes.lama_data import load_subset
    return len(load_subset(Path(root), subset, limit=limit).facts)


@lru_cache(maxsize=None)
def _ability_units(task: str) -> int:
    import json
    import re
    from probes.harness import TASKS_DIR
    from probes.tasks.loaders import data_path
    for path in TASKS_DIR.glob("*.yaml"):
        text = path.read_text()
        if re.search(rf"^task:\s*{re.escape(task)}\s*$", text, re.M):
            olmo = re.search(r"olmo_path:\s*(\S+)", text).group(1).strip("\"'}")
            split = re.search(r"(?:validation|test)_split:\s*(\S+)", text).group(1)
            where = data_path(olmo)
            if where.is_dir():
                info = json.loads((where / "dataset_info.json").read_text())
                return int(info["splits"][split]["num_examples"])
            import gzip
            with gzip.open(where, "rt") as f:
                return sum(1 for _ in f)
    raise KeyError(task)


def units(case, limit: int | None, lama_root, table: dict) -> int | None:
    """Facts, prompts, examples or windows the case will score (None: unknown)."""
    probe, known = case.probe, table.get("units", {}).get(case.model.id, {}).get(case.probe.id)
    if probe.kind == "ability":
        whole = known or _counted(probe, case.model.family, None, lama_root)
        return whole if limit is None or whole is None else min(limit, whole)
    if probe.kind == "perplexity":
        return known if limit is None else min(limit, known) if known else limit
    return _counted(probe, case.model.family, limit, lama_root)


@lru_cache(maxsize=None)
def _counted(probe, family: str, limit: int | None, lama_root) -> int | None:
    """Units counted from the data (once per probe, family and limit in a process)."""
    try:
        if probe.kind == "ability":
            return _ability_units(probe.subset)
        if probe.id == "pararel":
            from probes.pararel import facts_and_patterns, max_patterns
            return len(facts_and_patterns(Path(lama_root), family, limit, max_patterns())[0])
        if probe.id == "negated":
            from probes.negated_data import load, negated_dir
            return 2 * len(load(negated_dir(Path(lama_root)), limit)[0])
        return _lama_units(str(probe.data_root(lama_root)), probe.subset, limit)
    except Exception:   # no data here: the case's own error will say so when it runs
        return None


# -- seconds ------------------------------------------------------------------------------------
def _line(points) -> tuple[float, float]:
    """(fixed, per unit) seconds through (n, seconds) points: least squares with two or more
    distinct n (fixed cost kept >= 0), else proportional."""
    pts = [(n, s) for n, s in points if n > 0]
    ns = {n for n, _ in pts}
    if len(ns) >= 2:
        mn, ms = statistics.fmean(n for n, _ in pts), statistics.fmean(s for _, s in pts)
        var = sum((n - mn) ** 2 for n, _ in pts)
        slope = sum((n - mn) * (s - ms) for n, s in pts) / var
        fixed = ms - slope * mn
        if slope > 0 and fixed >= 0:
            return fixed, slope
    return 0.0, sum(s for _, s in pts) / sum(n for n, _ in pts)


def _at(points, n: int) -> float:
    fixed, per = _line(points)
    return fixed + per * n


def _ratio(points, dense) -> float:
    """A preset's cost against the dense model's line, at the preset's own largest n."""
    n, s = max(points)
    return s / _at(dense, n)


def probe_seconds(table: dict, model: str, probe: str, preset: str, method: str, n: int):
    """(seconds at the table's speed, basis) for probing ``n`` units; (None, 'none') unknown.

    A preset measured at two sizes or more has its own line. Otherwise the dense model's line
    (its fixed cost and its cost per unit) times what the preset costs against it: where it was
    measured, on this model, else on other models (the same preset, else the same method)."""
    pts = table.get("probe", {})
    mine = pts.get(model, {}).get(probe, {})
    own = mine.get(preset)
    if own and (len({x for x, _ in own}) >= 2 or "none" not in mine or preset == "none"):
        return _at(own, n), "measured"
    if "none" in mine:
        if own:
            return _at(mine["none"], n) * _ratio(own, mine["none"]), "measured"
        ratios = [_ratio(pr[preset], pr["none"]) for m in pts.values() for pr in m.values()
                  if preset in pr and "none" in pr]
        if not ratios:
            from compressors import PRESETS
            ratios = [_ratio(pr[p], pr["none"]) for m in pts.values() for pr in m.values()
                      for p in pr if p != "none" and "none" in pr and p in PRESETS
                      and PRESETS[p].method == method]
        return _at(mine["none"], n) * (statistics.median(ratios) if ratios else 1.0), "scaled"
    if mine:
        return statistics.median(_at(v, n) for v in mine.values()), "scaled"
    kin = _kin_rate(pts.get(model, {}), probe)
    if kin is not None:   # another probe of the same kind on this model, per unit
        return kin * n, "scaled"
    params = table.get("params", {})
    others = [(m, d[probe]) for m, d in pts.items() if probe in d and m in params]
    if others and model in params:
        m, d = min(others, key=lambda x: abs(params[x[0]] - params[model]))
        base = d.get(preset) or d.get("none") or next(iter(d.values()))
        return _at(base, n) * params[model] / params[m], "scaled"
    return None, "none"


def _kin_rate(probes: dict, probe: str) -> float | None:
    """Seconds per unit of this model's other probes of ``probe``'s kind (dense runs), median;
    a rough guess for a probe never timed (what one fact or example costs varies by probe)."""
    from probes import PROBES
    kind = PROBES[probe].kind if probe in PROBES else None
    rates = [_at(d["none"], max(d["none"])[0]) / max(d["none"])[0]
             for pid, d in probes.items() if "none" in d and pid in PROBES and PROBES[pid].kind == kind]
    return statistics.median(rates) if rates else None


@dataclass
class Plan:
    seconds: dict = field(default_factory=dict)     # case id -> estimated seconds
    basis: dict = field(default_factory=dict)       # case id -> measured | scaled | none | skip
    shared: dict = field(default_factory=dict)      # loads, compressions, extra baselines: seconds
    owner: dict = field(default_factory=dict)       # shared key -> the model whose worker pays it
    speed_ratio: float = 1.0                        # this machine now / the table's records
    records: int = 0
    sources: tuple = ()
    suggestion: tuple | None = None                 # (limit, seconds) when the run is long

    def share(self, key: str, model: str, seconds: float) -> None:
        """A cost paid once (a load, a compression, an extra baseline) by ``model``'s worker."""
        self.shared[key] = seconds
        self.owner[key] = model

    @property
    def total(self) -> float:
        return sum(self.seconds.values()) + sum(self.shared.values())

    def wall(self, workers: int = 1, grouped: bool = True) -> float:
        """Seconds from the first case to the last with ``workers`` processes: the longest
        worker's share when whole groups (a model's cases: --dist loadgroup) go to the least
        loaded worker, largest first (what the scheduler does, near enough); without groups the
        work divides evenly."""
        if workers <= 1:
            return self.total
        if not grouped:
            return self.total / workers
        from benchmarks.scaleout import group_of
        groups: dict[str, float] = {}
        for cid, secs in self.seconds.items():
            groups[group_of(cid)] = groups.get(group_of(cid), 0.0) + secs
        for key, secs in self.shared.items():
            groups[self.owner[key]] = groups.get(self.owner[key], 0.0) + secs
        load = [0.0] * workers
        for secs in sorted(groups.values(), reverse=True):
            load[load.index(min(load))] += secs
        return max(load)

    def lines(self, n_cases: int, workers: int = 1, grouped: bool = True) -> list[str]:
        from benchmarks.progress import duration
        unknown = sum(b == "none" for b in self.basis.values())
        scaled = sum(b == "scaled" for b in self.basis.values())
        skip = sum(b == "skip" for b in self.basis.values())
        head = f"plan: {n_cases} case(s), about {duration(self.wall(workers, grouped))} on this machine"
        if workers > 1:
            head += (f" with {workers} workers (the busiest one's share of {duration(self.total)} "
                     f"of work{', a model per worker' if grouped else ''})")
        if unknown:
            head += f" plus {unknown} case(s) with no timing to go by"
        out = [head]
        if self.records:
            out.append(f"  calibrated from {self.records} earlier record(s) ({', '.join(self.sources)}); "
                       f"this machine runs at {1 / self.speed_ratio:.2f}x their speed now")
        else:
            out.append("  no earlier records to calibrate from: the estimate is a guess until "
                       "a first run leaves records (--limit 1 is a quick one)")
        notes = []
        if scaled:
            notes.append(f"{scaled} case(s) scaled from related timings")
        if skip:
            notes.append(f"{skip} case(s) will skip here (backend or device missing)")
        if notes:
            out.append("  " + "; ".join(notes))
        if self.suggestion:
            limit, secs = self.suggestion
            out.append(f"  that is long: --limit {limit} (per relation / examples / windows) "
                       f"would take about {duration(secs)}"
                       + ("; narrow the selection too" if secs > SUGGEST_ABOVE_S else ""))
        out.append("  narrow it: --limit N, -k \"smollm2 and trex\", --presets none,sparse-50, "
                   "--probes trex,piqa; --collect-only prints this plan and runs nothing")
        return out


def table_for(results_dir: Path | None, device: str) -> tuple[dict, tuple]:
    """The committed table, overlaid with this machine's records in ``results_dir``."""
    table, sources = timings.load_table(), []
    if table.get("records"):
        sources.append(timings.DEFAULT.name)
    if results_dir is not None and Path(results_dir).is_dir():
        mine = [r for r in timings.read_folders([results_dir])
                if (r.get("scoring") or {}).get("device", "cpu") == device]
        if mine:
            table = timings.merge(table, timings.from_records(mine))
            sources.append(str(results_dir))
    return table, tuple(sources)


def estimate(cases, limits, lama_root, table: dict, speed_ratio: float, device: str = "cpu") -> Plan:
    """``limits``: probe id (or ``per-call:`` probe id) -> limit (None: all), as the runner will
    apply them (benchmarks/matrix.case_limit)."""
    from benchmarks.matrix import case_limit
    from compressors import unavailable_reason
    plan = Plan(speed_ratio=speed_ratio, records=table.get("records", 0))
    k = speed_ratio
    selected = {(c.model.id, c.probe.id) for c in cases if c.preset.id == "none"}
    baselines, models, compressed = set(), set(), set()
    for c in cases:
        m, p, pr = c.model.id, c.preset.id, c.probe.id
        if unavailable_reason(c.preset, device):
            plan.seconds[c.id], plan.basis[c.id] = 0.0, "skip"
            continue
        n = units(c, case_limit(limits, None, pr, c.preset), lama_root, table)
        secs, basis = probe_seconds(table, m, pr, p, c.preset.method, n) if n else (None, "none")
        if secs is None:
            plan.seconds[c.id], plan.basis[c.id] = 0.0, "none"
            continue
        lat = table.get("latency", {}).get(m, {})
        secs += lat.get(pr, statistics.median(lat.values()) if lat else 0.0)
        plan.seconds[c.id], plan.basis[c.id] = secs * k, basis
        models.add(m)
        if p != "none":
            compressed.add((m, p, c.preset.method))
            if (m, pr) not in selected and (m, pr) not in baselines:
                baselines.add((m, pr))
                n_base = units(c, limits.get(pr), lama_root, table)   # at the probe's own limit
                base, _ = probe_seconds(table, m, pr, "none", "none", n_base) if n_base else (None, "")
                plan.share(f"{m} baseline of {pr}", m, (base or 0.0) * k)
    for m in models:
        plan.share(f"load {m}", m, table.get("load", {}).get(m, 0.0) * k)
    for m, p, method in compressed:
        comp = table.get("compress", {}).get(m, {})
        plan.share(f"compress {m} {p}", m, comp.get(p, statistics.median(comp.values())
                                                    if comp else 0.0) * k)
    return plan


def make(cases, limits: dict, default_limit, lama_root, device: str = "cpu",
         results_dir: Path | None = None, workers: int = 1, grouped: bool = True) -> Plan:
    """The plan of ``cases`` at their limits (``limits`` per probe, else ``default_limit``),
    with a smaller --limit suggested when it would take longer than SUGGEST_ABOVE_S."""
    from benchmarks.environment import speed_ms
    from benchmarks.matrix import SKIP
    table, sources = table_for(results_dir, device)
    ratio = speed_ms() / table["speed_ms"] if table.get("speed_ms") else 1.0
    per_probe = {c.probe.id: limits.get(c.probe.id, default_limit) for c in cases}
    per_probe.update({k: v for k, v in limits.items() if ":" in k})   # per-call: and <preset>: keys
    plan = estimate(cases, per_probe, lama_root, table, ratio, device)
    plan.sources = sources
    if plan.wall(workers, grouped) > SUGGEST_ABOVE_S:
        for limit in LIMIT_CHOICES:
            if default_limit is not None and limit >= default_limit:
                continue
            smaller = estimate(cases, {p: SKIP if v == SKIP else limit for p, v in per_probe.items()},
                               lama_root, table, ratio, device)
            plan.suggestion = (limit, smaller.wall(workers, grouped))   # the smallest, if none is short enough
            if plan.suggestion[1] <= SUGGEST_ABOVE_S:
                break
    return plan
