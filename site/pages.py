"""What every page shares: the results' date, limits and scorer versions, the legend, the
per-model answer and findings, model source links, and each case's reproduce command.

    common = context(board, merged)
"""
from __future__ import annotations

import re
import shlex

from answer import answers
from board import FASTER, num, text   # board puts the repository on sys.path for benchmarks/
from benchmarks import derive
from findings import findings

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Legend order: the verdicts a reader meets most first.
LEGEND = ("pass", "fail", "recorded", "too-few-facts", "baseline", "degenerate-baseline",
          "mismatched-baseline", "no-baseline", "error")


def model_links(model: dict) -> list[tuple[str, str]]:
    """(label, https URL) for a model's source: its own ``url`` when the record has one, the
    Hugging Face page of a hub model, and for a converted model the original weights its
    baseline names (e.g. "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF ..." -> that hub page)."""
    out = []
    url = text(model.get("url"))
    if url.startswith("https://") and not any(ch in url for ch in " \"'<>"):
        out.append(("source", url))
    ref, source = text(model.get("ref")), text(model.get("source"))
    if source == "hub" and HUB_ID.match(ref):
        out.append(("Hugging Face", f"https://huggingface.co/{ref}"))
    first = re.split(r"[\s,(]", text(model.get("baseline")), maxsplit=1)[0]
    if source != "hub" and HUB_ID.match(first):
        out.append(("original weights", f"https://huggingface.co/{first}"))
    return out


def reproduce(rec: dict) -> str:
    """The command that measures this case again (at the code version the record names)."""
    model, preset, probe = rec["case_id"].split("__")
    parts = ["pytest", "benchmarks", "--models", model, "--presets", preset, "--probes", probe]
    limit = num(rec["probe"].get("limit"))
    if limit:
        parts += ["--limit", str(int(limit))]
    scoring = rec.get("scoring") if isinstance(rec.get("scoring"), dict) else {}
    device = text(scoring.get("device"))
    if device and device != "cpu":
        parts += ["--device", device]
    batch = num(scoring.get("requested_batch_size"))
    if batch and batch != 64:
        parts += ["--batch-size", str(int(batch))]
    protocol = text((rec.get("gate") or {}).get("protocol"))
    if protocol and protocol != derive.DEFAULT_PROTOCOL:
        parts += ["--gate-protocol", protocol]
    parts += ["--results-dir", "results/records"]
    cmd = " ".join(shlex.quote(p) for p in parts)
    sha = text((rec.get("environment") or {}).get("git_sha"))
    if re.fullmatch(r"[0-9a-f]{7,40}", sha):
        cmd = f"git checkout {sha} && {cmd}"
    return cmd


def _environments(records):
    envs = {}
    for r in records.values():
        env = r.get("environment") if isinstance(r.get("environment"), dict) else {}
        key = tuple(sorted((str(k), str(v)) for k, v in env.items()))
        envs.setdefault(key, []).append(r["case_id"])
    return [{"env": dict(k), "n": len(v)} for k, v in sorted(envs.items())]


def results_meta(records) -> dict:
    """Front-page facts: when the records were measured, at which --limit, by which scorer."""
    finished = sorted(text(r["timestamps"].get("finished")) for r in records.values()
                      if text(r["timestamps"].get("finished")))
    limits, versions, per_probe = {}, {}, {}
    for r in records.values():
        if r["status"] != "ok":
            continue
        limits.setdefault(r["probe"]["limit"], 0)
        limits[r["probe"]["limit"]] += 1
        per_probe.setdefault(r["probe"]["id"], set()).add(r["probe"]["limit"])
        versions.setdefault(r["probe"]["kind"], set()).add(r["probe"]["version"])
    return {"first": finished[0][:10] if finished else "", "last": finished[-1][:10] if finished else "",
            "limits": sorted(limits.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)),
            # probes sized differently from each other are fine; one probe at two limits is not
            "mixed": sorted(p for p, ls in per_probe.items() if len(ls) > 1),
            "versions": {k: sorted(v) for k, v in sorted(versions.items())},
            "git_shas": sorted({text((r.get("environment") or {}).get("git_sha"), "?")[:12]
                                for r in records.values()})}


def _filters(board) -> dict:
    def natural(s):
        return (0, float(s), s) if s.replace(".", "", 1).isdigit() else (1, 0.0, s)
    out = {f: sorted({str(r[f]) for r in board.rows if r[f] not in (None, "")}, key=natural)
           for f in ("family", "arch", "method", "bits", "verdict")}
    out = {"model": sorted(board.models), **out}
    return {k: v for k, v in out.items() if len(v) > 1 or k == "verdict"}


def context(board, merged) -> dict:
    return {"filters": _filters(board), "has_open": any(r["knowledge_open"] for r in board.rows),
            "faster_pct": round(100 / FASTER - 100),"board": board, "n_records": len(merged.records), "refused": merged.refused,
            "replaced": sum(len(v) for v in merged.replaced.values()),
            "newer_errors": merged.newer_errors, "meta": results_meta(merged.records),
            "environments": _environments(merged.records), "answers": answers(board),
            "findings": findings(board), "meaning": derive.MEANING, "legend_order": LEGEND,
            "model_links": model_links, "min_facts": derive.MIN_FACTS,
            "min_correct": derive.MIN_BASELINE_CORRECT}
