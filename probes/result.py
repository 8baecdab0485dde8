"""The result of one probe run, and the statistics every probe shares.

    res = ProbeResult.from_examples(examples, meta)   # examples: [{"uid","group","rank",...}]
    res.metrics["p_at_1"]  -> {"value", "stderr", "macro", "macro_stderr", "higher_is_better"}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


def mean_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); stderr 0 for n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def rank_metrics(rank: int) -> dict[str, float]:
    """Per-example metrics from the 1-based rank of the gold object among the candidates."""
    return {"p_at_1": float(rank == 1), "p_at_10": float(rank <= 10), "mrr": 1.0 / rank}


METRICS = ("p_at_1", "p_at_10", "mrr")


def run_fields(model) -> dict:
    """What every probe's ``meta["scoring"]`` pins about how the model computed (beside the
    probe's own batch size, policy, padding side and guarantee)."""
    cfg = getattr(model, "config", None)
    dtype = getattr(model, "dtype", None)
    return {"attn_implementation": getattr(cfg, "_attn_implementation", None),
            "dtype": str(dtype).replace("torch.", "") if dtype is not None else None}


def open_metrics(o: dict) -> dict[str, float]:
    """Per-example metrics of the strict protocol (probes/lama_open.py) from an example's
    ``open`` field: top-1 everywhere, top-5 where a full-vocabulary rank exists (masked LMs)."""
    out = {"open_p_at_1": float(o["correct"])}
    if o.get("rank") is not None:
        out["open_p_at_5"] = float(o["rank"] <= 5)
    return out


def _summary(per: list[dict], groups: list[str], name: str, out_groups: dict) -> dict:
    """{"value","stderr","macro","macro_stderr"} of metric ``name`` over examples ``per`` (one
    dict each, aligned with their ``groups``); every group's mean goes into ``out_groups``."""
    by_group: dict[str, list[float]] = {}
    for g, m in zip(groups, per):
        by_group.setdefault(g, []).append(m[name])
    value, stderr = mean_stderr([m[name] for m in per])
    group_means, group_vars = [], []
    for g, vs in sorted(by_group.items()):
        gm, gs = mean_stderr(vs)
        out_groups[g][name] = gm
        group_means.append(gm)
        group_vars.append(gs ** 2)
    return {"value": value, "stderr": stderr, "macro": sum(group_means) / len(group_means),
            "macro_stderr": math.sqrt(sum(group_vars)) / len(group_vars), "higher_is_better": True}


@dataclass
class ProbeResult:
    metrics: dict                 # name -> {"value","stderr","macro","macro_stderr","higher_is_better"}
    groups: dict                  # group -> {"n", metric: value, ...}
    examples: list[dict]          # per fact: uid, group, gold, prediction, rank, mode, text
    n: int
    meta: dict = field(default_factory=dict)
    # A fixed batch of this probe's own prompts for the runner's latency benchmark (not stored;
    # None: the runner builds it from the examples' LAMA texts).
    workload: list[str] | None = None

    @classmethod
    def from_examples(cls, examples: list[dict], meta: dict | None = None) -> "ProbeResult":
        if not examples:
            raise ValueError("the probe scored no examples: nothing to report")
        per = [rank_metrics(e["rank"]) for e in examples]
        names = [e["group"] for e in examples]
        groups = {g: {"n": names.count(g)} for g in sorted(set(names))}
        metrics = {name: _summary(per, names, name, groups) for name in METRICS}
        # The strict protocol, over the facts it applies to (``open`` not None); its metrics are
        # absent when no fact is eligible (e.g. a masked LM and no single-token object), and the
        # per-group counts say how many facts each group's strict values rest on.
        opened = [e for e in examples if e.get("open") is not None]
        if any("open" in e for e in examples):
            for g in groups:
                groups[g]["open_n"] = sum(1 for e in opened if e["group"] == g)
        if opened:
            per_open = [open_metrics(e["open"]) for e in opened]
            for name in per_open[0]:
                for g in groups:
                    groups[g].setdefault(name, None)   # a group with no eligible fact
                metrics[name] = {**_summary(per_open, [e["group"] for e in opened], name, groups),
                                 "n": len(opened)}
        return cls(metrics, groups, examples, len(examples), meta or {})
