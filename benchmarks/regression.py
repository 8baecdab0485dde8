"""Committed baseline records (benchmarks/baselines/) and the check that a case did not lose
knowledge against them: a gate for regressions in our own code or in a dependency (stdlib only).

    bash scripts/gate.sh                                   # the gated selection, as CI runs it
    bash scripts/gate.sh --update-baselines                # rewrite them from this run

A baseline file is ``<case id>.json``: the case's model revision, probe version, data checksum,
limit, main metric with its standard error, and every fact's uid with its rank (or ``correct``
for probes that report it), sorted and without timestamps, so the same run writes the same
bytes. A case with a file is marked ``regression``. Beyond noise means:

* paired (the usual case: the run shares facts with the baseline, e.g. same or larger --limit):
  one-sided exact McNemar on the shared facts, p < 0.05 that the case lost facts;
* unpaired (no fact in common, e.g. the data changed): the metric fell by more than 1.645
  combined standard errors (one-sided 5 %).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from benchmarks.derive import Paired
from benchmarks.record import check_case_id
from probes.storage import atomic_write
from benchmarks.stats import is_correct

SCHEMA = "knowledge-cost/baseline"
SCHEMA_VERSION = 1
BASELINES_DIR = Path(__file__).resolve().parent / "baselines"
ALPHA = 0.05
Z_ONE_SIDED = 1.6449   # the 95th percentile of the standard normal
UPDATE_HINT = "bash scripts/gate.sh --update-baselines"


class BaselineError(ValueError):
    """A committed baseline file that cannot be used; the message names the file and the fix."""


def baselines_dir(option: str | os.PathLike | None = None) -> Path:
    return Path(option or os.environ.get("KCB_BASELINES_DIR") or BASELINES_DIR)


def baseline_path(case_id: str, folder: Path | None = None) -> Path:
    return baselines_dir(folder) / f"{check_case_id(case_id)}.json"


def make_baseline(record: dict, metric: str = "p_at_1") -> dict:
    """The small, deterministic part of a record that later runs are compared with."""
    facts = {}
    for e in record["examples"]:
        facts[e["uid"]] = bool(e["correct"]) if "correct" in e else int(e["rank"])
    m = record["metrics"][metric]
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": record["case_id"],
        "model": {"id": record["model"]["id"], "revision": record["model"].get("revision")},
        "preset": record["preset"]["id"],
        "probe": {k: record["probe"].get(k) for k in ("id", "version", "data_checksum", "limit")},
        "metric": metric, "value": m["value"], "stderr": m["stderr"], "n": record["n"],
        "facts": dict(sorted(facts.items())),
    }


def write_baseline(record: dict, folder: Path | None = None, metric: str = "p_at_1") -> Path:
    """Write ``<case id>.json`` atomically (probes/storage.py)."""
    path = baseline_path(record["case_id"], folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(make_baseline(record, metric), indent=0, sort_keys=True, allow_nan=False)
    return atomic_write(path, text + "\n")


def read_baseline(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: unreadable baseline ({exc}); restore it from git or "
                            f"rewrite it: {UPDATE_HINT}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA \
            or data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"{path}: not a knowledge-cost baseline of version {SCHEMA_VERSION}; "
                            f"rewrite it: {UPDATE_HINT}")
    missing = [k for k in ("case_id", "metric", "value", "stderr", "n", "facts") if k not in data]
    if missing or not isinstance(data["facts"], dict) or not data["facts"]:
        raise BaselineError(f"{path}: missing or empty field(s) {', '.join(missing) or 'facts'}")
    return data


def _correct(stored) -> bool:
    return stored if isinstance(stored, bool) else stored == 1


def compare(baseline: dict, record: dict, source: str = "", alpha: float = ALPHA) -> dict:
    """Did ``record`` lose knowledge against ``baseline`` beyond noise? (see module docstring)"""
    base = {uid: _correct(v) for uid, v in baseline["facts"].items()}
    cur = {e["uid"]: is_correct(e) for e in record["examples"]}
    metric = baseline["metric"]
    value = record["metrics"][metric]["value"]
    out = {"file": source, "metric": metric, "baseline_value": baseline["value"], "value": value}
    pair = Paired.of(base, cur)
    if pair.n:
        p = pair.p
        b_acc, c_acc = pair.baseline_correct / pair.n, pair.compressed_correct / pair.n
        out.update(method="paired: one-sided exact McNemar on the shared facts",
                   n_shared=pair.n, facts_lost=pair.lost, facts_gained=pair.gained, p=p,
                   regression=p < alpha)
        detail = (f"correct share {b_acc:.3f} -> {c_acc:.3f} on {pair.n} shared facts, "
                  f"{pair.lost} facts lost, {pair.gained} gained, McNemar p={p:.2g} < {alpha}")
    else:
        se = math.hypot(baseline["stderr"] or 0.0, record["metrics"][metric]["stderr"] or 0.0)
        drop = baseline["value"] - value
        out.update(method=f"unpaired: drop beyond {Z_ONE_SIDED} combined standard errors "
                          "(no fact in common)", n_shared=0, drop=drop, stderr=se,
                   regression=drop > Z_ONE_SIDED * se if se else drop > 0)
        detail = (f"{metric} {baseline['value']:.3f} -> {value:.3f}, drop {drop:.3f} > "
                  f"{Z_ONE_SIDED} x {se:.3f} (no fact in common with the baseline)")
    out["verdict"] = "regression" if out["regression"] else "pass"
    if out["regression"]:
        out["message"] = (f"{record['case_id']}: knowledge regression against the committed "
                          f"baseline {source}: {detail}. If the change is intended, rewrite the "
                          f"baselines: {UPDATE_HINT}")
    return out


def check_record(case, record: dict, folder=None, update: bool = False) -> BaselineError | None:
    """The committed-baseline part of a case's gate, written into ``record["gate"]``: a loss
    beyond noise makes the verdict ``fail``. With ``update``, the file is rewritten instead. An
    unreadable committed baseline is recorded and returned (the caller writes the record first,
    then fails the case): a measurement is never discarded because a baseline is bad."""
    folder = baselines_dir(folder)
    path = baseline_path(case.id, folder)
    gate = record["gate"]
    if update:
        write_baseline(record, folder, case.probe.main_metric)
        gate["committed_baseline"] = {"file": str(path), "verdict": "updated"}
        return None
    if not path.is_file():
        return None
    try:
        check = compare(read_baseline(path), record, str(path))
    except BaselineError as exc:
        gate["committed_baseline"] = {"file": str(path), "verdict": "unreadable", "message": str(exc)}
        return exc
    gate["committed_baseline"] = check
    if check["verdict"] == "regression":
        gate["message"] = (gate["message"] + "\n" if gate["verdict"] == "fail" else "") + check["message"]
        gate["verdict"] = "fail"
    return None
