"""Render the leaderboard: JSON records in, a static HTML site out (Jinja2, autoescaped).

    python site/build.py results/records [more/records ...] -o results/site

Reads records only (never imports torch, compressors or probes). Several results folders
merge; the latest record of a case (by timestamps.finished) wins. A record of an unknown schema
stops the build with its file name. The site is built in a temporary folder beside OUT and swapped
in only when every page and plot was written, so a failed build never leaves a partial site over
a good one. OUT is replaced only if it is new, empty, or a site this tool built (marker file).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # `site` is not a package (the stdlib owns that name)
sys.path.insert(0, str(HERE))

from benchmarks.record import RecordError, read_latest  # noqa: E402
from board import (Board, _channel_bits, error_text, knowledge_bits,  # noqa: E402,F401
                   relation_types)

MARKER = ".knowledge-cost-site"


class SiteError(ValueError):
    """The site cannot be written where asked; the message says why and what to do."""


def merge(folders: list[Path]) -> dict[str, dict]:
    """Latest record per case over several folders (benchmarks/record.py: read_latest)."""
    return read_latest(folders)


# -- formatting filters -------------------------------------------------------------------
def fmt_bytes(n):
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def fmt_num(x):
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.3f}"


def fmt_p(p):
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def ret_class(r):
    if r is None:
        return "na"
    return "good" if r >= 0.9 else "warn" if r >= 0.6 else "bad"


def fmt_sort(x, missing=-1.0):
    """A data-sort value: numbers as text, missing ones at a fixed end of the order."""
    return f"{missing if x is None else x:.6g}"


# -- the build ------------------------------------------------------------------------------
def _environments(records):
    envs = {}
    for r in records.values():
        key = tuple(sorted((k, str(v)) for k, v in r["environment"].items()))
        envs.setdefault(key, []).append(r["case_id"])
    return [{"env": dict(k), "n": len(v)} for k, v in sorted(envs.items())]


def render(records: dict[str, dict], out: Path) -> None:
    """Write every page, plot and static file of the site into ``out`` (an empty folder)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    import plots

    board = Board(records)
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(bytes=fmt_bytes, num=fmt_num, pval=fmt_p, retclass=ret_class,
                       sortkey=fmt_sort, as_json=lambda v: json.dumps(v, sort_keys=True))
    types = relation_types()
    common = {"board": board, "n_records": len(records), "relation_types": types}

    def page(name, template, root, **kw):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(root=root, **common, **kw))

    figures = plots.render_all(board, out / "plots")
    filters = {f: sorted({str(r[f]) for r in board.rows if r[f] is not None}, key=_natural)
               for f in ("family", "arch", "method", "bits")}
    page("index.html", "index.html", "", figures=figures, filters=filters)
    has_ci = any(c.get("ci") for r in board.rows for c in r["cells"].values())
    page("about.html", "about.html", "", has_ci=has_ci, environments=_environments(records),
         git_shas=sorted({r["environment"].get("git_sha", "?") for r in records.values()}))
    for key in board.models:
        heats = {p: board.relation_heat(key, p) for p in board.probes["knowledge"]
                 if any(r["cells"].get(p) for r in board.model_rows(key))}
        page(f"models/{key}.html", "model.html", "../", model=board.models[key],
             rows=board.model_rows(key), heats=heats)
    for case_id, rec in records.items():
        row = next(r for r in board.rows
                   if (r["model"], r["preset"]) == tuple(case_id.split("__")[:2]))
        cell = row["cells"][case_id.split("__")[2]]
        page(f"cases/{case_id}.html", "case.html", "../", rec=rec, row=row, cell=cell,
             facts=board.facts(case_id), error=error_text(rec) if rec["status"] != "ok" else None)
    for f in (HERE / "static").iterdir():
        shutil.copy(f, out / f.name)


def _natural(s):
    return (0, float(s), s) if s.replace(".", "", 1).isdigit() else (1, 0.0, s)


OLD_SITE = {"index.html", "style.css"}   # what the first builder wrote (before the marker)


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    ours = out.is_dir() and ((out / MARKER).exists() or {p.name for p in out.iterdir()} <= OLD_SITE)
    if not ours:
        raise SiteError(f"{out} exists and is not a site built by this tool (no {MARKER} in it): "
                        "nothing was changed. Give -o a new or empty folder.")


def build(folders: list[Path], out: Path) -> Path:
    records = merge([Path(f) for f in folders])
    if not records:
        raise RecordError(f"no records in {', '.join(map(str, folders))}: run the benchmark first")
    out = Path(out).absolute()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        render(records, tmp)
        (tmp / MARKER).write_text("built by site/build.py; safe to replace\n")
        os.chmod(tmp, 0o755)   # mkdtemp makes it private; a site is for reading
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"


def _swap(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``. Two renames on one filesystem: a reader sees the old site or the
    new one, and if the second rename fails the old site is put back."""
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the knowledge-cost leaderboard from records.")
    ap.add_argument("results", nargs="+", type=Path, help="results folder(s) of JSON records")
    ap.add_argument("-o", "--out", type=Path, default=Path("results/site"))
    args = ap.parse_args(argv)
    try:
        path = build(args.results, args.out)
    except (RecordError, SiteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"leaderboard: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
