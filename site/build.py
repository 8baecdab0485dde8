"""Render the leaderboard: JSON records in, a static HTML site out (Jinja2, autoescaped).

    python site/build.py results/records -o results/site

Reads records only (never imports torch, compressors or probes). Several results folders
merge; the latest record of a case wins. A record of an unknown schema stops the build with
its file name. Retention is computed here, on the facts a case shares with its baseline.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # `site` is not a package (the stdlib owns that name)

from benchmarks.record import RecordError, read_records  # noqa: E402
from benchmarks.stats import retention as paired_retention  # noqa: E402


def merge(folders: list[Path]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for folder in folders:
        for rec in read_records(folder):
            cur = latest.get(rec["case_id"])
            if cur is None or rec["timestamps"]["finished"] >= cur["timestamps"]["finished"]:
                latest[rec["case_id"]] = rec
    return latest


def _correct(rec) -> dict[str, bool]:
    return {e["uid"]: e["rank"] == 1 for e in rec["examples"]}


def retention(rec: dict, base: dict | None) -> float | None:
    """Compressed P@1 / baseline P@1 over the facts both records scored."""
    if base is None or base.get("status") != "ok" or rec.get("status") != "ok":
        return None
    try:
        return paired_retention(_correct(base), _correct(rec))[0]
    except ValueError:   # no shared facts
        return None


def _channel_bits(acc: float, k: int) -> float:
    """Information (bits) per fact of a K-ary symmetric channel with accuracy ``acc``: what a
    model answering from K candidates with that P@1 reveals about the gold. 0 at chance."""
    if k < 2 or acc <= 1 / k:
        return 0.0
    bits = math.log2(k) + acc * math.log2(acc)
    if acc < 1:
        bits += (1 - acc) * math.log2((1 - acc) / (k - 1))
    return bits


def knowledge_bits(rec: dict) -> float | None:
    """Bits of knowledge a record shows: sum over relations of n * I(P@1, candidate count)."""
    counts = rec["probe"].get("candidate_counts")
    if not counts:
        return None
    return sum(g["n"] * _channel_bits(g["p_at_1"], counts[name])
               for name, g in rec["groups"].items() if name in counts)


def rows(records: dict[str, dict]):
    """One row per model x preset; cells per probe. Returns (rows, probe ids, models)."""
    by_key: dict[tuple, dict] = {}
    probes: list[str] = []
    models: dict[str, dict] = {}
    for case_id, rec in sorted(records.items()):
        model_id, preset_id, probe_id = case_id.split("__")
        if probe_id not in probes:
            probes.append(probe_id)
        models.setdefault(model_id, rec["model"])
        row = by_key.setdefault((model_id, preset_id), {
            "model": model_id, "preset": preset_id, "model_info": rec["model"],
            "preset_info": rec["preset"], "cells": {}, "baseline": preset_id == "none"})
        base = records.get(f"{model_id}__none__{probe_id}")
        cell = {"status": rec["status"], "case_id": case_id}
        if rec["status"] == "ok":
            main = rec["metrics"]["p_at_1"]
            cell.update(value=main["value"], stderr=main["stderr"], n=rec["n"],
                        mrr=rec["metrics"]["mrr"]["value"], bits=knowledge_bits(rec),
                        retention=None if preset_id == "none" else retention(rec, base),
                        verdict=rec["gate"]["verdict"], latency=rec["latency"]["ms_per_example"],
                        rss=rec["memory"]["peak_rss_bytes"], limit=rec["probe"]["limit"])
            row["weight_bytes"] = rec["memory"]["weight_bytes"]
        else:
            cell["error"] = rec.get("error", "failed")
        row["cells"][probe_id] = cell
    out = sorted(by_key.values(), key=lambda r: (r["model"], _preset_sort(r["preset"])))
    known = {p: i for i, p in enumerate(PROBE_ORDER)}
    probes.sort(key=lambda p: (known.get(p, len(known)), p))
    return out, probes, models


PROBE_ORDER = ("trex", "google-re", "conceptnet", "squad", "fact-trained", "fact-heldout")


def _preset_sort(pid: str):
    """Baseline first, then the sparsity sweep in order, then everything else by name."""
    if pid == "none":
        return (0, 0, "")
    if pid.startswith("sparse-") and pid[7:].isdigit():
        return (1, int(pid[7:]), "")
    return (2, 0, pid)


def _fmt_bytes(n):
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _ret_class(r):
    if r is None:
        return "na"
    return "good" if r >= 0.9 else "warn" if r >= 0.6 else "bad"


def build(folders: list[Path], out: Path) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    records = merge(folders)
    if not records:
        raise RecordError(f"no records in {', '.join(map(str, folders))}: run the benchmark first")
    table, probes, models = rows(records)
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["bytes"] = _fmt_bytes
    env.filters["retclass"] = _ret_class
    envs = {tuple(sorted((k, str(v)) for k, v in r["environment"].items() if k != "git_sha"))
            for r in records.values()}
    html = env.get_template("index.html").render(
        rows=table, probes=probes, models=models, n_records=len(records),
        environments=[dict(e) for e in sorted(envs)],
        git_shas=sorted({r["environment"]["git_sha"] for r in records.values()}))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".index.html.tmp"
    tmp.write_text(html)
    tmp.replace(out / "index.html")
    shutil.copy(HERE / "static" / "style.css", out / "style.css")
    return out / "index.html"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the knowledge-cost leaderboard from records.")
    ap.add_argument("results", nargs="+", type=Path, help="results folder(s) of JSON records")
    ap.add_argument("-o", "--out", type=Path, default=Path("results/site"))
    args = ap.parse_args(argv)
    try:
        path = build(args.results, args.out)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"leaderboard: {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
