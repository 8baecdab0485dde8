"""The knowledge gate for anyone's repository: what action.yml runs, and the same command locally.

    python benchmarks/gate_action.py --models ./base --checkpoint ./base-gptq-w4 --probes trex \\
        --limit 20 --floor 0.9

Runs the cases (pytest benchmarks, in this checkout) on the given base model(s) and checkpoints,
prints a Markdown table of retention, its interval, McNemar p and the verdict (and appends it to
``$GITHUB_STEP_SUMMARY`` when that is set, or to ``--summary``), and exits non-zero when a case
fails its gate, errors, or when nothing was gated at all. Paths are relative to the folder it is
started from; a knowledge-cost.toml or [tool.knowledge-cost] there is used as settings file.
Every value may list several entries separated by commas or newlines (the action's inputs).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.analysis import knowledge_summary  # noqa: E402
from benchmarks.record import read_records  # noqa: E402

GATED = ("pass", "fail")


def _entries(values) -> list[str]:
    return [e.strip() for v in values or [] for e in v.replace("\n", ",").split(",") if e.strip()]


def _absolute(entry: str, here: Path) -> str:
    """NAME=PATH or PATH with PATH made absolute when it names something here (or looks like a
    path); registered ids and hub ids pass through."""
    name, sep, ref = entry.partition("=") if "=" in entry and not entry.startswith((".", "/", "~")) \
        else ("", "", entry)
    if ref.startswith((".", "~")) or (here / ref).exists():
        ref = str((here / Path(ref).expanduser()).resolve())
    return f"{name}{sep}{ref}"


def pytest_args(a, here: Path) -> list[str]:
    args = ["benchmarks", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
            "--results-dir", str(Path(a.results_dir).resolve())]
    models = [_absolute(m, here) for m in _entries(a.models)]
    if models:
        args += ["--models", ",".join(models)]
    for c in _entries(a.checkpoint):
        args += ["--checkpoint", _absolute(c, here)]
    for f in _entries(a.floor):
        args += ["--floor", f]
    if _entries(a.probes):
        args += ["--probes", ",".join(_entries(a.probes))]
    if a.limit:
        args += ["--limit", str(a.limit)]
    if a.lama_dir:
        args += ["--lama-dir", str((here / a.lama_dir).resolve())]
    config = str((here / a.config).resolve()) if a.config else None
    if config is None:   # pytest starts in this checkout: hand it the caller's settings file
        from benchmarks.user_config import find
        found = find(here)
        config = found and str(found[0])
    if config:
        args += ["--config", config]
    if str(a.trust_remote_code).lower() in ("1", "true", "yes"):
        args.append("--trust-remote-code")
    return args


def rows(records: dict[str, dict]) -> list[dict]:
    """One row per compressed knowledge case. The one place this script reads retention, its
    interval, McNemar p and the verdict: benchmarks.analysis.knowledge_summary and the record's
    gate (the verdict the case asserted)."""
    out = []
    for cid, rec in sorted(records.items()):
        model, preset, probe = cid.split("__")
        if rec["status"] != "ok":
            out.append({"model": model, "preset": preset, "probe": probe, "verdict": "error",
                        "note": rec["error"]["message"].splitlines()[0][:160]})
            continue
        if preset == "none" or rec["probe"]["kind"] != "lama":
            continue
        gate, base = rec["gate"], records.get(rec["gate"].get("baseline_case"))
        s = knowledge_summary(base, rec, relation_types_map={}) if base and base["status"] == "ok" else None
        out.append({"model": model, "preset": preset, "probe": probe, "verdict": gate["verdict"],
                    "floor": gate.get("floor"), "summary": s, "effect": rec["preset"]["effect"],
                    "note": gate.get("message", "")})
    return out


def _f(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def markdown(table: list[dict], passed: bool) -> str:
    lines = [f"### Knowledge gate: {'passed' if passed else 'FAILED'}", "",
             "| model | checkpoint | probe | facts | dense P@1 | P@1 | retention | 95% CI | lost / gained "
             "| McNemar p | floor | verdict |", "|" + "---|" * 12]
    for r in table:
        s = r.get("summary") or {}
        ci = s.get("retention_ci")
        lines.append(
            f"| {r['model']} | {r['preset']} | {r['probe']} | {s.get('n_shared', '–')} | "
            f"{_f(s.get('baseline_acc'))} | {_f(s.get('compressed_acc'))} | {_f(s.get('retention'))} | "
            f"{f'{ci[0]:.3f} – {ci[1]:.3f}' if ci else '–'} | "
            f"{s.get('facts_lost', '–')} / {s.get('facts_gained', '–')} | {_f(s.get('mcnemar_p'), '.2g')} | "
            f"{_f(r.get('floor'), '.2f')} | **{r['verdict']}** |")
    effects = {r["preset"]: r["effect"] for r in table if r.get("effect")}
    if effects:
        lines += ["", "| checkpoint | format | declared bits | bits per weight (measured) | bytes as "
                  "stored | sparsity | change vs base |", "|" + "---|" * 7]
        for pid, e in effects.items():
            lines.append(f"| {pid} | {e.get('format', e.get('backend', '–'))} | {e.get('bits') or '–'} | "
                         f"{_f(e.get('bits_per_weight'), '.2f')} | {e.get('weight_bytes', '–')} | "
                         f"{_f(e.get('sparsity'))} | {_f(e.get('relative_weight_change'))} |")
    notes = [f"- {r['model']} / {r['preset']} / {r['probe']}: {r['note']}" for r in table if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", action="append", help="base model(s): folder, .gguf, hub id or registered id")
    ap.add_argument("--checkpoint", action="append", help="[NAME=]PATH of a compressed checkpoint")
    ap.add_argument("--probes", action="append", default=None)
    ap.add_argument("--limit", default=None, help="facts per relation")
    ap.add_argument("--floor", action="append", help="[PRESET=]VALUE retention floor")
    ap.add_argument("--lama-dir", default="", help="LAMA-layout facts (default: $KCB_LAMA_DIR)")
    ap.add_argument("--config", default="", help="settings file (knowledge-cost.toml or pyproject.toml)")
    ap.add_argument("--results-dir", default="knowledge-records")
    ap.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY", ""))
    ap.add_argument("--trust-remote-code", default="false")
    a = ap.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cmd = [sys.executable, "-m", "pytest", *pytest_args(a, Path.cwd())]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    folder = Path(a.results_dir).resolve()
    records = {r["case_id"]: r for r in (read_records(folder) if folder.is_dir() else [])
               if r["timestamps"]["finished"] >= started}   # this run's, not an older run's
    table = rows(records)
    problems = []
    if rc == 5 or not records:
        problems.append("no case ran: check --models, --checkpoint and --probes")
    elif not any(r["verdict"] in GATED for r in table):
        problems.append("nothing was gated: give a floor (--floor) and probes the base model knows "
                        "(a retention needs facts the dense model gets right)")
    passed = rc == 0 and not problems
    text = markdown(table, passed) + "".join(f"\n**error:** {p}\n" for p in problems)
    print(text)
    if a.summary:
        with open(a.summary, "a") as f:
            f.write(text)
    return 0 if passed else (rc or 1)


if __name__ == "__main__":
    sys.exit(main())
