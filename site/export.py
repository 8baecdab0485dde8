"""The table as data: one row per record, for the CSV and JSON downloads of the leaderboard.

    rows = export_rows(board)     # [{column: value}], in the overview's order
    write(board, out)             # out/leaderboard.csv and out/leaderboard.json

Every number is the one the page shows (benchmarks/derive.py through the board); nothing is
recomputed. An error record is a row too, with its reason and no measurements.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

COLUMNS = ("case_id", "model", "preset", "probe", "probe_kind", "status", "verdict", "floor",
           "metric", "value", "stderr", "n", "limit", "retention", "ci_low", "ci_high",
           "facts_lost", "facts_gained", "mcnemar_p", "strict_value", "strict_retention",
           "strict_ci_low", "strict_ci_high", "strict_verdict", "method", "bits",
           "bits_per_weight", "sparsity", "weight_bytes", "latency_ms_per_example",
           "peak_rss_bytes", "probe_version", "finished", "reason", "error",
           "newer_error", "newer_error_finished")


def _ci(c, i):
    return c["ci"][i] if c and c.get("ci") else None


def export_rows(board) -> list[dict]:
    out = []
    for r in board.rows:
        for probe in board.probe_order:
            c = r["cells"].get(probe)
            if c is None:
                continue
            rec = board.records[c["case_id"]]
            o = c.get("open")
            newer = c.get("newer_error") or {}
            out.append({
                "case_id": c["case_id"], "model": r["model"], "preset": r["preset"], "probe": probe,
                "probe_kind": c["probe_kind"], "status": c["status"], "verdict": c["verdict"],
                "floor": c.get("floor"), "metric": c.get("metric"), "value": c.get("value"),
                "stderr": c.get("stderr"), "n": c.get("n"), "limit": c["limit"],
                "retention": c.get("retention"), "ci_low": _ci(c, 0), "ci_high": _ci(c, 1),
                "facts_lost": c.get("lost"), "facts_gained": c.get("gained"), "mcnemar_p": c.get("p"),
                "strict_value": o and o["value"], "strict_retention": o and o["retention"],
                "strict_ci_low": _ci(o, 0), "strict_ci_high": _ci(o, 1),
                "strict_verdict": o and o["verdict"], "method": r["method"], "bits": r["bits"],
                "bits_per_weight": r["bits_per_weight"], "sparsity": r["sparsity"],
                "weight_bytes": c.get("weight_bytes"), "latency_ms_per_example": c.get("latency"),
                "peak_rss_bytes": c.get("rss"), "probe_version": str(rec["probe"].get("version", "")),
                "finished": c["finished"], "reason": c.get("reason") or "",
                "error": c.get("error") or "", "newer_error": newer.get("text", ""),
                "newer_error_finished": newer.get("finished", "")})
    return out


def _csv_value(v):
    # A cell starting with = + - @ is a formula to a spreadsheet; a quote keeps it text.
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return "" if v is None else v


def write(board, out: Path) -> dict:
    rows = export_rows(board)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _csv_value(row[k]) for k in COLUMNS})
    (out / "leaderboard.csv").write_text(buf.getvalue())
    # "<" as \u003c: the same JSON once parsed, and never markup if a browser shows the file
    (out / "leaderboard.json").write_text(json.dumps({"columns": COLUMNS, "rows": rows}, indent=1,
                                                     sort_keys=True, allow_nan=False).replace("<", "\\u003c"))
    return {"csv": "leaderboard.csv", "json": "leaderboard.json", "rows": len(rows)}
