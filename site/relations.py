"""Per-relation views of LAMA records: which facts went, relation labels, knowledge in bits.

    heat, presets = relation_heat(board, model_key, probe_key)
    facts(board, case_id)        # facts lost and gained, with both answers
    relation_info(records)       # {relation: {"label", "type", "template"}} from the records

Relation labels and types come from the records' ``probe.templates`` (what the probe used), so
a site built without the LAMA data (GitHub Pages) shows them too.
"""
from __future__ import annotations

from board import correctness, num, text


def relation_info(records) -> dict[str, dict]:
    """{relation: {"label", "type", "template"}} merged over ``records``' probe.templates."""
    out: dict[str, dict] = {}
    for rec in records:
        templates = rec.get("probe", {}).get("templates")
        if not isinstance(templates, dict):
            continue
        for rel, t in templates.items():
            if not isinstance(t, dict):
                continue
            have = out.setdefault(str(rel), {"label": "", "type": "", "template": ""})
            for key, src in (("label", "label"), ("type", "type"), ("template", "template"),
                             ("template", "causal_template")):
                if not have[key] and text(t.get(src)):
                    have[key] = t[src]
    return out


def relation_heat(board, model_key, probe_key):
    """{relation: {"base": P@1, "n": facts, preset: retention}} paired per relation, and the
    presets in sweep order; (None, []) without a baseline with per-fact outcomes."""
    base = board.records.get(f"{model_key}__none__{probe_key}")
    if base is None or base.get("status") != "ok" or not correctness(base):
        return None, []
    b_c = correctness(base)
    groups = {e["uid"]: text(e.get("group")) for e in base["examples"]}
    presets, heat = [], {}
    for row in board.model_rows(model_key):
        rec = board.records.get(f"{model_key}__{row['preset']}__{probe_key}")
        if row["baseline"] or rec is None or rec["status"] != "ok":
            continue
        cell = row["cells"][probe_key]
        if cell.get("verdict") == "mismatched-baseline" or not correctness(rec):
            continue          # never pair what derive refuses to pair
        presets.append(row["preset"])
        r_c = correctness(rec)
        for rel in sorted({g for g in groups.values() if g}):
            keys = {u for u, g in groups.items() if g == rel} & r_c.keys() & b_c.keys()
            if not keys:
                continue
            b = sum(b_c[k] for k in keys)
            c = sum(r_c[k] for k in keys)
            heat.setdefault(rel, {"base": b / len(keys), "n": len(keys)})[row["preset"]] = (
                c / b if b else None)
    return heat, presets


def facts(board, case_id):
    """Facts the compressed model lost and gained against its baseline, with both answers."""
    model_key, preset_key, probe_key = case_id.split("__")
    rec, base = board.records[case_id], board.records.get(f"{model_key}__none__{probe_key}")
    if preset_key == "none" or base is None or base["status"] != "ok" or rec["status"] != "ok":
        return None
    if board.cell(case_id)[1].get("verdict") == "mismatched-baseline":
        return None
    b_c, r_c = correctness(base), correctness(rec)
    if not b_c or not r_c:
        return None
    b_ex = {e["uid"]: e for e in base["examples"]}
    out = []
    for e in rec["examples"]:
        u = e["uid"]
        if u in b_c and u in r_c and u in b_ex and b_c[u] != r_c[u]:
            be = b_ex[u]
            out.append({"uid": u, "group": text(e.get("group")), "text": text(e.get("text")),
                        "gold": text(e.get("gold")), "change": "lost" if b_c[u] else "gained",
                        "base_pred": text(be.get("prediction")), "base_rank": num(be.get("rank")),
                        "pred": text(e.get("prediction")), "rank": num(e.get("rank"))})
    out.sort(key=lambda f: (f["change"] != "lost", f["group"], f["uid"]))
    return out
