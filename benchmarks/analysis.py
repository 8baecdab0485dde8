"""Which facts a compressed model lost, how sure we are, computed from records (stdlib only).

    from benchmarks.analysis import knowledge_summary
    s = knowledge_summary(base_record, comp_record)   # facts lost/gained, retention + CI, McNemar p

Readers (the report CLI, the leaderboard) derive everything here from the per-fact examples a
record carries; nothing derived is stored. This module imports only the standard library and
``benchmarks.stats`` / ``benchmarks.record`` so site/build.py can use it without torch.

Public API (all take validated records, dicts as benchmarks/record.py reads them):

* ``knowledge_summary(base, comp, relation_types=None)`` -> dict: facts lost/gained (paired,
  correct->wrong and wrong->correct), accuracies, retention with a seeded paired-bootstrap
  interval, one-sided exact McNemar p, per-relation flips (most lost first), by relation type
  (1-1, N-1, N-M), by subset, weight bytes and correct facts per MiB; plus ``consistency`` for
  ParaRel records and ``negation`` for negated-LAMA records, baseline vs compressed.
* ``correct_by_fact(record)``, ``relation_types(record, lama_dir)``, ``consistency(record)``,
  ``negation(record)``, ``pair_records(records, model, preset)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks import derive
from benchmarks.derive import CI_LEVEL, Paired
from benchmarks.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from probes.pararel import consistency  # noqa: F401 (part of this module's API)
# Google-RE relations are not in LAMA's relations.jsonl; LAMA's paper types them all N-1.
GOOGLE_RE_TYPES = {"place_of_birth": "N-1", "date_of_birth": "N-1", "place_of_death": "N-1"}


def _ok(record: dict, what: str) -> dict:
    if record.get("status") != "ok":
        raise ValueError(f"{record.get('case_id')}: the {what} record is an error record "
                         f"({record.get('error', 'no measurements')}); re-run that case")
    if not record.get("examples"):
        raise ValueError(f"{record.get('case_id')}: the {what} record has no per-fact examples")
    return record


def correct_by_fact(record: dict, protocol: str = derive.DEFAULT_PROTOCOL) -> dict[str, bool]:
    """uid -> correct under ``protocol`` (benchmarks/derive.py: correctness)."""
    return derive.correctness(_ok(record, ""), protocol) or {}


def relation_types(record: dict, lama_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """relation -> LAMA type (1-1, N-1, N-M). From the record's own templates where they carry
    a type, else from ``relations.jsonl`` in ``lama_dir`` (or $KCB_LAMA_DIR) when given."""
    types = dict(GOOGLE_RE_TYPES)
    raw = lama_dir or os.environ.get("KCB_LAMA_DIR")
    if raw:
        path = Path(raw) / "relations.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no LAMA relations file; pass the LAMA folder "
                                    "(--lama-dir or $KCB_LAMA_DIR)")
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if row.get("type"):
                    types[row["relation"]] = row["type"]
    for group, t in (record.get("probe", {}).get("templates") or {}).items():
        if isinstance(t, dict) and t.get("type"):
            types[group] = t["type"]
    return types


def _subset(uid: str) -> str:
    return uid.split("/", 1)[0]


def _tally(rows: list[tuple[bool, bool]]) -> dict:
    n = len(rows)
    b = sum(x for x, _ in rows)
    c = sum(y for _, y in rows)
    lost = sum(1 for x, y in rows if x and not y)
    gained = sum(1 for x, y in rows if y and not x)
    return {"n": n, "baseline_correct": b, "compressed_correct": c, "lost": lost, "gained": gained,
            "baseline_acc": b / n, "compressed_acc": c / n, "retention": c / b if b else None}


def _grouped(keys: dict[str, str], base: dict[str, bool], comp: dict[str, bool]) -> dict[str, dict]:
    groups: dict[str, list] = {}
    for uid in sorted(base.keys() & comp.keys()):
        groups.setdefault(keys[uid], []).append((base[uid], comp[uid]))
    return {g: _tally(rows) for g, rows in sorted(groups.items())}


def negation(record: dict) -> dict | None:
    """Negated LAMA: share of facts whose (positive) object the model still ranks first for the
    negated sentence (lower is better), over all facts and over the facts it knows (positive
    sentence ranked first). None for records without ``negated_rank``."""
    es = [e for e in record.get("examples", []) if "negated_rank" in e]
    if not es:
        return None
    known = [e for e in es if e["rank"] == 1]
    first = sum(e["negated_rank"] == 1 for e in es)
    first_known = sum(e["negated_rank"] == 1 for e in known)
    return {"n": len(es), "negated_top1": first / len(es), "n_known": len(known),
            "negated_top1_known": first_known / len(known) if known else None,
            "higher_is_better": False}


def _weight_bytes(record: dict) -> int | None:
    return (record.get("memory") or {}).get("weight_bytes")


def knowledge_summary(base: dict, comp: dict, relation_types_map: dict[str, str] | None = None,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Paired comparison of a compressed record with its baseline on the facts both scored.

    Retention = compressed/baseline accuracy; its interval is a paired percentile bootstrap over
    facts (``resamples`` draws, ``random.Random(seed)``, 95 %). ``mcnemar_p`` is the one-sided
    exact test that the compressed model is worse. ``by_relation`` is sorted by facts lost."""
    _ok(base, "baseline"), _ok(comp, "compressed")
    protocol = (comp.get("gate") or {}).get("protocol") or derive.DEFAULT_PROTOCOL
    b, c = correct_by_fact(base, protocol), correct_by_fact(comp, protocol)
    pair = Paired.of(b, c)
    if not pair.n:
        raise ValueError("the baseline and compressed runs share no facts")
    lost, gained, ret, n = pair.lost, pair.gained, pair.retention, pair.n
    b_acc, c_acc = pair.baseline_correct / n, pair.compressed_correct / n
    from benchmarks.stats import bootstrap_kinds
    ci = bootstrap_kinds(list(pair.kinds), CI_LEVEL, resamples, seed)
    types = relation_types_map if relation_types_map is not None else relation_types(comp)
    # ability examples have no relation: their task (the uid's first part) groups them
    groups = {e["uid"]: e.get("group") or _subset(e["uid"]) for e in comp["examples"]}
    by_rel = _grouped(groups, b, c)
    for rel, row in by_rel.items():
        row["type"] = types.get(rel, "unknown")
    by_type = _grouped({u: types.get(g, "unknown") for u, g in groups.items()}, b, c)
    by_subset = _grouped({u: _subset(u) for u in groups}, b, c)
    wb, wc = _weight_bytes(base), _weight_bytes(comp)
    out = {
        "case": comp["case_id"], "baseline_case": base["case_id"],
        "model": comp["model"]["id"], "preset": comp["preset"]["id"], "probe": comp["probe"]["id"],
        "n_shared": n, "facts_lost": lost, "facts_gained": gained,
        "baseline_correct": pair.baseline_correct, "compressed_correct": pair.compressed_correct,
        "baseline_acc": b_acc, "compressed_acc": c_acc,
        "retention": ret, "retention_ci": list(ci) if ci else None,
        "ci_method": {"kind": "paired percentile bootstrap over facts", "level": CI_LEVEL,
                      "resamples": resamples, "seed": seed},
        "mcnemar_p": pair.p, "protocol": protocol,
        "by_relation": dict(sorted(by_rel.items(), key=lambda kv: (-kv[1]["lost"], kv[0]))),
        "by_type": by_type, "by_subset": by_subset,
        "weight_bytes": {"baseline": wb, "compressed": wc},
        "correct_per_mib": {"baseline": b_acc * n / (wb / 2**20) if wb else None,
                            "compressed": c_acc * n / (wc / 2**20) if wc else None},
    }
    cb, cc = consistency(base), consistency(comp)
    if cb or cc:
        out["consistency"] = {"baseline": cb, "compressed": cc}
    nb, nc = negation(base), negation(comp)
    if nb or nc:
        out["negation"] = {"baseline": nb, "compressed": nc}
    return out


def pair_records(records: list[dict] | dict[str, dict], model: str, preset: str,
                 probe: str | None = None) -> list[tuple[dict, dict]]:
    """(baseline, compressed) record pairs for one model and preset, one per probe that has
    both an ok ``<model>__none__<probe>`` and ``<model>__<preset>__<probe>`` record."""
    by_id = records if isinstance(records, dict) else {r["case_id"]: r for r in records}
    pairs = []
    for case_id in sorted(by_id):
        m, p, pr = case_id.split("__")
        if m != model or p != preset or (probe and pr != probe):
            continue
        base = by_id.get(f"{m}__none__{pr}")
        if base is not None and base.get("status") == "ok" and by_id[case_id].get("status") == "ok":
            pairs.append((base, by_id[case_id]))
    return pairs
