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
        by_group: dict[str, list[dict]] = {}
        for e, m in zip(examples, per):
            by_group.setdefault(e["group"], []).append(m)
        metrics, groups = {}, {g: {"n": len(ms)} for g, ms in sorted(by_group.items())}
        for name in METRICS:
            value, stderr = mean_stderr([m[name] for m in per])
            group_means = []
            group_vars = []
            for g, ms in sorted(by_group.items()):
                gm, gs = mean_stderr([m[name] for m in ms])
                groups[g][name] = gm
                group_means.append(gm)
                group_vars.append(gs ** 2)
            macro = sum(group_means) / len(group_means)
            macro_se = math.sqrt(sum(group_vars)) / len(group_vars)
            metrics[name] = {"value": value, "stderr": stderr, "macro": macro,
                             "macro_stderr": macro_se, "higher_is_better": True}
        return cls(metrics, groups, examples, len(examples), meta or {})
