"""Every number derived from records, in one place: retention, its interval, facts lost and
gained, the McNemar p, and the verdict. The gate, the report, the leaderboard and the regression
check all call this module, so they cannot disagree (tests/test_derive.py checks it on every
published record). Standard library only: the site uses it without torch.

    c = compare(base_record, record, floor=0.40)          # a Comparison
    c.retention, c.ci, c.lost, c.gained, c.p, c.verdict, c.message
    pooled([c1, c2, c3])                                   # a row's knowledge over its probes

Definitions
* Correctness per example: LAMA ``lenient`` protocol: the gold ranked first among the candidates
  (``rank == 1``); LAMA ``open`` protocol: the open-vocabulary answer matched the object
  (``open.correct``, facts the protocol can ask only); ability tasks: ``correct`` (lm-eval's
  main metric was 1). Perplexity has no per-example correctness.
* Retention: compressed / baseline share correct on the examples both records scored (paired),
  so 1.0 means "kept everything". Perplexity: baseline / compressed perplexity (lower is better),
  paired over the windows both scored.
* Interval: a seeded paired percentile bootstrap over examples (benchmarks/stats.py).
* McNemar p: one-sided exact, P(this many losses or more | no real change).
* Verdict of a compressed record: ``fail`` when retention is below the preset's floor AND the
  drop is real (p < ALPHA); ``pass`` otherwise; ``recorded`` when no floor applies; and, never
  gated or coloured, ``too-few-facts`` (fewer than MIN_FACTS shared examples or fewer than
  MIN_BASELINE_CORRECT examples the baseline gets right), ``degenerate-baseline`` (an ability
  baseline at or below the majority-class rate of its examples), ``no-baseline``,
  ``mismatched-baseline`` (the baseline was measured on another model revision, data or
  scorer) and ``error``. The baseline itself is ``baseline``.
* Limits: every probe's ``--limit N`` selects a prefix of one fixed order (LAMA: each relation's
  first N facts in a hash order; lm-eval: the split's first N documents; perplexity: the first N
  windows), so records at two limits are nested, and a record is paired with a baseline at
  another limit on the examples both scored (the main job scores the slow per-call presets on a
  subsample this way). ``value`` and ``baseline_value`` are then both the share correct on those
  shared examples, and ``extra["limits"]`` says (record's, baseline's).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from benchmarks.stats import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, _percentile, bootstrap_kinds,
                              mcnemar_exact)

ALPHA = 0.05            # "the drop is real": one-sided exact McNemar p below this
CI_LEVEL = 0.95
# Too few facts is not a result. With fewer than 10 facts right at the baseline one fact is
# 10 % of retention, and the gate's McNemar test needs 5 losses without a gain to reach
# p < 0.05 (2^-5); a cell of 30 facts has a P@1 standard error of about 0.08 at 0.3. Below
# either bound a cell is recorded, marked, and kept out of colours, gates and summaries.
MIN_FACTS = 30
MIN_BASELINE_CORRECT = 10
PROTOCOLS = ("lenient", "open")
DEFAULT_PROTOCOL = "lenient"
PROTOCOL_METRIC = {"lenient": "p_at_1", "open": "open_p_at_1"}
GATED = ("lama",)       # probe kinds whose cases a floor can fail (ability and ppl are context)
UNRATED = ("too-few-facts", "degenerate-baseline", "no-baseline", "mismatched-baseline", "error")
VERDICTS = ("baseline", "pass", "fail", "recorded", *UNRATED)
# What a verdict means, for the leaderboard's legend and the README.
MEANING = {
    "baseline": "the dense model: the reference every compressed case is paired with",
    "pass": "retention at or above the preset's floor, or a drop within noise (McNemar p >= 0.05)",
    "fail": "retention below the preset's floor and the drop is real (one-sided McNemar p < 0.05)",
    "recorded": "measured, with no floor for this preset or probe: a result, not a test",
    "too-few-facts": f"fewer than {MIN_FACTS} paired facts or fewer than {MIN_BASELINE_CORRECT} "
                     "known to the baseline: recorded, not gated, not summarised",
    "degenerate-baseline": "the baseline does no better than always giving the most common "
                           "answer: its retention means nothing",
    "no-baseline": "no usable baseline record to pair with",
    "mismatched-baseline": "the baseline came from another model revision, data or scorer: "
                           "not paired",
    "error": "the case failed to run; the error is shown",
}


class DeriveError(ValueError):
    """A record lacks what a derivation needs; the message names the case and the field."""


def _case(record) -> str:
    return record.get("case_id", "<record>") if isinstance(record, dict) else "<record>"


def kind(record: dict) -> str:
    return record["probe"]["kind"]


def metric_name(record: dict, protocol: str = DEFAULT_PROTOCOL) -> str:
    """The metric a record is judged by: the protocol's for LAMA, the probe's main metric else."""
    if kind(record) == "lama":
        return PROTOCOL_METRIC[protocol]
    return record["probe"].get("main_metric") or next(iter(record["metrics"]))


def correctness(record: dict, protocol: str = DEFAULT_PROTOCOL) -> dict[str, bool] | None:
    """uid -> correct for every example the protocol judges; None without per-example outcomes."""
    if protocol not in PROTOCOLS:
        raise DeriveError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    out: dict[str, bool] = {}
    lama = kind(record) == "lama"
    for e in record.get("examples") or ():
        if lama and protocol == "open":
            o = e.get("open")
            if isinstance(o, dict) and "correct" in o:
                out[e["uid"]] = bool(o["correct"])
        elif "correct" in e:
            out[e["uid"]] = bool(e["correct"])
        elif "rank" in e:
            out[e["uid"]] = e["rank"] == 1
    return out or None


@dataclass(frozen=True)
class Paired:
    """Two runs' outcomes on the examples both scored. ``kinds`` (one per shared example, in uid
    order: 0 both wrong, 1 gained, 2 lost, 3 kept) is all the bootstrap needs."""
    kinds: tuple[int, ...]

    @classmethod
    def of(cls, base: dict[str, bool], comp: dict[str, bool]) -> "Paired":
        shared = sorted(base.keys() & comp.keys())
        return cls(tuple(2 * base[k] + comp[k] for k in shared))

    n = property(lambda s: len(s.kinds))
    baseline_correct = property(lambda s: sum(k >= 2 for k in s.kinds))
    compressed_correct = property(lambda s: sum(k in (1, 3) for k in s.kinds))
    lost = property(lambda s: s.kinds.count(2))
    gained = property(lambda s: s.kinds.count(1))

    @property
    def p(self) -> float:
        return mcnemar_exact(self.lost, self.gained)

    @property
    def retention(self) -> float | None:
        b = self.baseline_correct
        return self.compressed_correct / b if b else None

    def ci(self, level: float = CI_LEVEL) -> tuple[float, float] | None:
        return bootstrap_kinds(list(self.kinds), level) if self.kinds else None


def majority_rate(record: dict) -> float | None:
    """Share of the most common gold answer among a multiple-choice record's examples (what
    always giving that answer scores); None when the gold answers cannot be read."""
    golds = []
    for e in record.get("examples") or ():
        gold = e.get("target") if isinstance(e.get("target"), int) else None
        if gold is None and isinstance(e.get("choice"), int) and "correct" in e:
            n_choices = len(e.get("choices") or ())
            gold = e["choice"] if e["correct"] else (1 - e["choice"] if n_choices == 2 else None)
        if gold is None:
            return None
        golds.append(gold)
    if not golds:
        return None
    return max(golds.count(g) for g in set(golds)) / len(golds)


def _window_nll(record: dict) -> dict[str, tuple[float, int]]:
    return {e["uid"]: (float(e["nll"]), int(e["tokens"])) for e in record.get("examples") or ()
            if "nll" in e and "tokens" in e}


def perplexity_ratio(base: dict, comp: dict, level: float = CI_LEVEL):
    """(baseline/compressed perplexity over the windows both scored, paired bootstrap interval
    over windows, n windows); (None, None, 0) without per-window NLL."""
    b, c = _window_nll(base), _window_nll(comp)
    shared = sorted(b.keys() & c.keys())
    if not shared:
        return None, None, 0

    def ratio(keys):
        tb = sum(b[k][1] for k in keys)
        tc = sum(c[k][1] for k in keys)
        # exp(mean NLL) is perplexity, so exp(NLL_b - NLL_c) = ppl_b / ppl_c: below 1 when
        # the compressed model is more perplexed (lost something)
        return math.exp(sum(b[k][0] for k in keys) / tb - sum(c[k][0] for k in keys) / tc)
    rng, values = random.Random(BOOTSTRAP_SEED), []
    for _ in range(BOOTSTRAP_RESAMPLES):
        values.append(ratio(rng.choices(shared, k=len(shared))))
    values.sort()
    ci = (_percentile(values, (1 - level) / 2), _percentile(values, 1 - (1 - level) / 2))
    return ratio(shared), (ci if len(shared) > 1 else None), len(shared)


# What must agree for two records to be paired: the same weights, data and scorer. The limit
# need not (limits are nested: the pair is taken on the examples both scored, see above).
PAIR_FIELDS = (("model revision", ("model", "revision")), ("probe version", ("probe", "version")),
               ("data checksum", ("probe", "data_checksum")))


def pairing_problems(base: dict, rec: dict) -> list[str]:
    """Why ``base`` must not be paired with ``rec`` (empty when it may)."""
    out = []
    for label, (a, b) in PAIR_FIELDS:
        x, y = (base.get(a) or {}).get(b), (rec.get(a) or {}).get(b)
        if x != y:
            out.append(f"{label} {x!r} vs {y!r}")
    return out


@dataclass
class Comparison:
    case_id: str
    verdict: str
    metric: str = ""
    protocol: str = DEFAULT_PROTOCOL
    floor: float | None = None
    baseline_case: str | None = None
    value: float | None = None
    baseline_value: float | None = None
    retention: float | None = None
    ci: tuple[float, float] | None = None
    paired: Paired | None = None
    n_shared: int | None = None
    reason: str = ""                 # why the verdict, in words (shown on the case page)
    message: str = ""                # the gate's message when it fails
    extra: dict = field(default_factory=dict)

    lost = property(lambda s: s.paired.lost if s.paired else None)
    gained = property(lambda s: s.paired.gained if s.paired else None)
    p = property(lambda s: s.paired.p if s.paired else None)
    kept = property(lambda s: (s.paired.baseline_correct, s.paired.compressed_correct)
                    if s.paired else None)
    rated = property(lambda s: s.verdict in ("pass", "fail", "recorded"))

    def gate(self) -> dict:
        """The record's ``gate`` field: what the case asserted on (readers recompute it)."""
        out = {"floor": self.floor, "verdict": self.verdict, "protocol": self.protocol}
        if self.verdict == "baseline":
            return out
        out.update(baseline_case=self.baseline_case, retention=self.retention,
                   facts_lost=self.lost, facts_gained=self.gained, mcnemar_p=self.p,
                   n_shared=self.n_shared)
        if "limits" in self.extra:   # paired with a baseline at another --limit (nested)
            out["baseline_limit"] = self.extra["limits"][1]
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        return out


def _value(record, metric):
    m = (record.get("metrics") or {}).get(metric)
    return m.get("value") if isinstance(m, dict) else None


def baseline_quality(base: dict, paired: Paired | None = None,
                     protocol: str = DEFAULT_PROTOCOL) -> tuple[str | None, str]:
    """(None, "") when a baseline can support a comparison, else (verdict, reason)."""
    if paired is not None:
        if paired.n < MIN_FACTS or paired.baseline_correct < MIN_BASELINE_CORRECT:
            return "too-few-facts", (f"{paired.n} paired facts, {paired.baseline_correct} right at "
                                     f"the baseline (needs {MIN_FACTS} and {MIN_BASELINE_CORRECT})")
    if kind(base) == "ability":
        rate = majority_rate(base)
        acc = _value(base, metric_name(base, protocol))
        if rate is not None and acc is not None and acc <= rate:
            return "degenerate-baseline", (f"baseline {acc:.3f} is at or below always giving the "
                                           f"most common answer ({rate:.3f})")
    return None, ""


def compare(base: dict | None, rec: dict, floor: float | None = None,
            protocol: str = DEFAULT_PROTOCOL) -> Comparison:
    """The one comparison of a record with its baseline record (see the module docstring)."""
    cid = _case(rec)
    if rec.get("status") != "ok":
        return Comparison(cid, "error", reason="the case failed to run")
    metric = metric_name(rec, protocol)
    out = Comparison(cid, "recorded", metric=metric, protocol=protocol,
                     floor=floor if kind(rec) in GATED else None, value=_value(rec, metric))
    model, preset, probe = cid.split("__")
    if preset == "none":
        out.verdict, out.floor = "baseline", None
        return out
    out.baseline_case = f"{model}__none__{probe}"
    if base is None or base.get("status") != "ok":
        out.verdict, out.reason = "no-baseline", f"no ok record of {out.baseline_case}"
        return out
    problems = pairing_problems(base, rec)
    if problems:
        out.verdict = "mismatched-baseline"
        out.reason = f"{out.baseline_case} differs: " + "; ".join(problems)
        return out
    out.baseline_value = _value(base, metric)
    b_c, r_c = correctness(base, protocol), correctness(rec, protocol)
    if b_c and r_c and (b_c.keys() & r_c.keys()):
        out.paired = Paired.of(b_c, r_c)
        out.n_shared = out.paired.n
        out.retention = out.paired.retention
        out.ci = out.paired.ci()
        limits = ((rec.get("probe") or {}).get("limit"), (base.get("probe") or {}).get("limit"))
        if limits[0] != limits[1] and out.paired.n:
            # a subsample of the baseline's examples (or the reverse): both values on the shared ones
            out.extra["limits"] = limits
            out.value = out.paired.compressed_correct / out.paired.n
            out.baseline_value = out.paired.baseline_correct / out.paired.n
    elif kind(rec) == "perplexity":
        out.retention, out.ci, out.n_shared = perplexity_ratio(base, rec)
        if out.retention is None and out.value and out.baseline_value:
            out.retention = out.baseline_value / out.value
    verdict, reason = baseline_quality(base, out.paired, protocol)
    if verdict is None and out.paired is not None and out.retention is None:
        verdict, reason = "too-few-facts", "the baseline gets none of these right"
    if verdict is None and out.retention is None and out.floor is not None:
        # e.g. the open protocol on records scored before it existed: nothing to gate on
        verdict, reason = "too-few-facts", f"no facts paired under the {protocol} protocol"
    if verdict:
        out.verdict, out.reason = verdict, reason
        return out
    if out.floor is None:
        return out
    fails = out.retention < out.floor and out.p < ALPHA
    out.verdict = "fail" if fails else "pass"
    if fails:
        b_acc = out.paired.baseline_correct / out.paired.n
        c_acc = out.paired.compressed_correct / out.paired.n
        out.message = (f"{model} at {preset} on {probe}: {metric} retention {out.retention:.3f} "
                       f"is below the floor {out.floor:.2f} ({c_acc:.3f} vs dense {b_acc:.3f} on "
                       f"{out.paired.n} facts); {out.lost} facts lost, {out.gained} gained, "
                       f"McNemar p={out.p:.2g}")
    return out


def pooled(comparisons: list[Comparison]) -> tuple[float | None, tuple | None, int]:
    """A row's knowledge: facts right after / facts right before, pooled over its rated, paired
    comparisons (a 30-fact probe weighs 30 facts, not as much as a 410-fact one), with the
    paired bootstrap interval over the pooled facts; (None, None, 0) when none qualifies."""
    kinds: list[int] = []
    for c in comparisons:
        if c.rated and c.paired is not None:
            kinds.extend(c.paired.kinds)
    if not kinds:
        return None, None, 0
    p = Paired(tuple(kinds))
    return p.retention, p.ci(), p.n
