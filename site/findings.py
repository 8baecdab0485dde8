"""Findings for the front page, generated from the records: each a sentence with numbers and
intervals, each left out when the records do not support it.

    for f in findings(board): f["text"]

A comparison word ("more", "less") is used only when the two 95 % intervals do not overlap;
otherwise the sentence says the difference is within noise. Every retention here is the row's
pooled knowledge retention (benchmarks/derive.py: pooled) with its paired interval.
"""
from __future__ import annotations

from board import num, text

FALLS = 0.9   # "falls off": the whole interval below 90 % of the facts the baseline knew
# How each 8-bit preset quantizes (from each backend's documentation): torch quantize_dynamic
# qint8 uses a per-tensor weight scale and per-tensor dynamic activations; torchao's
# Int8DynamicActivationInt8WeightConfig per-token activations and per-channel weights, its
# Int8WeightOnlyConfig per-channel weights only; bitsandbytes LLM.int8 is vector-wise with the
# outlier columns kept in 16 bits (Dettmers et al. 2022).
INT8_SCHEMES = {("dynamic-int8", None): "per-tensor int8",
                ("torchao", "Int8DynamicActivationInt8WeightConfig"): "per-token int8",
                ("torchao", "Int8WeightOnlyConfig"): "per-channel weight-only int8",
                ("bnb", "int8"): "LLM.int8 (vector-wise, fp16 outliers)"}


def pct(ret, ci=None) -> str:
    out = f"{100 * ret:.0f}%"
    if ci:
        out += f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]"
    return out


def _kept(row) -> str:
    k = row["knowledge"]
    return pct(k["retention"], k["ci"])


def _rated(rows):
    return [r for r in rows if r["knowledge"]["retention"] is not None]


def _params(row) -> dict:
    p = row["preset_info"].get("params")
    return p if isinstance(p, dict) else {}


def _amount(row):
    return num(_params(row).get("amount"))


def _versus(a, b) -> str:
    """'more than', 'less than' or 'within noise of', from the two rows' intervals."""
    ca, cb = a["knowledge"]["ci"], b["knowledge"]["ci"]
    if ca and cb and ca[0] > cb[1]:
        return "more than"
    if ca and cb and ca[1] < cb[0]:
        return "less than"
    return "within noise of"


def gate_summary(board):
    gated = [c for r in board.rows for c in r["cells"].values() if c.get("verdict") in ("pass", "fail")]
    if not gated:
        return None
    fails = [c for c in gated if c["verdict"] == "fail"]
    presets = sorted({c["case_id"].split("__")[1] for c in fails}, key=lambda p: board.preset_rank[p])
    unrated = sum(c.get("verdict") == "too-few-facts" for r in board.rows for c in r["cells"].values())
    out = (f"{len(fails)} of {len(gated)} gated knowledge cases {'fails' if len(fails) == 1 else 'fail'} "
           "their preset's floor")
    out += f" ({', '.join(presets)})." if presets else "."
    if unrated:
        out += f" {unrated} more {'has' if unrated == 1 else 'have'} too few facts to be gated."
    return out


def pruning_methods(board):
    parts = []
    for key in board.models:
        rows = _rated(board.model_rows(key))
        mag = next((r for r in rows if r["method"] == "global-magnitude" and _amount(r) == 0.5), None)
        others = [r for r in rows if r["method"] in ("wanda", "sparsegpt") and _amount(r) == 0.5]
        if mag is None or not others:
            continue
        name = board.models[key].get("id", key)
        bits = [f"{r['preset']} keeps {_kept(r)} of the facts, {_versus(r, mag)} magnitude "
                f"pruning ({_kept(mag)})" for r in others]
        parts.append(f"on {name}, {'; '.join(bits)}")
    if not parts:
        return None
    return "At 50 % sparsity, " + "; ".join(parts) + "."


def falloff(board):
    parts = []
    for key in board.models:
        sweep = sorted((r for r in _rated(board.model_rows(key))
                        if r["method"] == "global-magnitude" and not r["bits"] and r["sparsity"]),
                       key=lambda r: r["sparsity"])
        if len(sweep) < 2:
            continue
        i = next((i for i, r in enumerate(sweep) if r["knowledge"]["ci"]
                  and r["knowledge"]["ci"][1] < FALLS), None)
        if i is None:
            continue
        name = board.models[key].get("id", key)
        at = sweep[i]
        if i == 0:
            parts.append(f"{name} already keeps {_kept(at)} at {at['sparsity']:.0%} sparsity, the "
                         "lowest measured")
        else:
            prev = sweep[i - 1]
            parts.append(f"{name} keeps {_kept(prev)} at {prev['sparsity']:.0%} sparsity and "
                         f"{_kept(at)} at {at['sparsity']:.0%}")
    if not parts:
        return None
    return ("Knowledge falls off with magnitude pruning (the first sparsity whose whole interval "
            "is below 90 %): " + "; ".join(parts) + ".")


def _scheme(row):
    p = _params(row)
    return INT8_SCHEMES.get((row["method"], text(p.get("config")) or text(p.get("kind")) or None))


def int8_schemes(board):
    parts = []
    for key in board.models:
        rows = [r for r in _rated(board.model_rows(key)) if r["bits"] == 8 and _scheme(r)]
        if len(rows) < 2:
            continue
        name = board.models[key].get("id", key)
        desc = ", ".join(f"{_scheme(r)} ({r['preset']}) keeps {_kept(r)}" for r in rows)
        tensor = next((r for r in rows if _scheme(r) == "per-tensor int8"), None)
        token = next((r for r in rows if _scheme(r) == "per-token int8"), None)
        if tensor and token:
            desc += f": per-token keeps {_versus(token, tensor)} per-tensor"
        parts.append(f"on {name}, {desc}")
    if not parts:
        return None
    return "At 8 bits, " + "; ".join(parts) + "."


def knowledge_vs_ability(board):
    both = [r for r in board.rows if not r["baseline"] and r["knowledge"]["ci"] and r["ability"]["ci"]]
    if not both:
        return None
    faster = [r for r in both if r["knowledge"]["ci"][1] < r["ability"]["ci"][0]]
    slower = [r for r in both if r["ability"]["ci"][1] < r["knowledge"]["ci"][0]]
    def count(rows):
        return str(len(rows)) if rows else "none"
    out = (f"Of {len(both)} compressed presets measured on both, knowledge fell further than "
           f"ability beyond noise in {count(faster)}")
    if faster:
        worst = min(faster, key=lambda r: r["knowledge"]["retention"] - r["ability"]["retention"])
        out += (f" (largest gap: {worst['preset']} on {board.models[worst['model']].get('id')}, "
                f"knowledge {_kept(worst)} vs ability {pct(worst['ability']['retention'], worst['ability']['ci'])})")
    return out + f", and ability further than knowledge in {count(slower)}."


FINDINGS = (gate_summary, pruning_methods, falloff, int8_schemes, knowledge_vs_ability)


def findings(board) -> list[dict]:
    out = []
    for f in FINDINGS:
        sentence = f(board)
        if sentence:
            out.append({"id": f.__name__.replace("_", "-"), "text": sentence})
    return out
