"""Render the leaderboard: JSON records in, a static HTML site out (Jinja2, autoescaped).

    python site/build.py results/records [more/records ...] -o results/site [--strict]

Reads records only (never imports torch, compressors or probes). Several results folders merge
(benchmarks/record.py: merge_folders): the latest ok record of a case wins, a newer failed run
is shown beside it with both dates, and a file that fails validation is refused, listed on the
front page and on stderr; the rest still build. With --strict the build still happens but the
exit status is 3 when any file was refused (the Pages workflow uses it). The site is built in a
temporary folder beside OUT and swapped in only when every page was written, so a failed build
never leaves a partial site over a good one. OUT is replaced only if it is new, empty, or a
site this tool built (marker file).
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

from benchmarks.record import Merged, RecordError, merge_folders  # noqa: E402
from board import Board, _channel_bits, error_text, knowledge_bits  # noqa: E402,F401
from pages import context, model_links, reproduce  # noqa: E402,F401
import filters  # noqa: E402

MARKER = ".knowledge-cost-site"
EXIT_REFUSED = 3


class SiteError(ValueError):
    """The site cannot be written where asked; the message says why and what to do."""


def merge(folders: list[Path]) -> dict[str, dict]:
    """Latest record per case over several folders; a bad file raises (merge_all lists it)."""
    return merge_folders([Path(f) for f in folders], strict=True).records


def merge_all(folders: list[Path]) -> Merged:
    return merge_folders([Path(f) for f in folders], strict=False)


_ENV = []


def _environment():
    """One Jinja environment per process: templates compile once (it reloads a changed file)."""
    if not _ENV:
        from jinja2 import Environment, FileSystemLoader, select_autoescape
        env = Environment(loader=FileSystemLoader(HERE / "templates"),
                          autoescape=select_autoescape(default=True, default_for_string=True))
        filters.install(env)
        _ENV.append(env)
    return _ENV[0]


def render(merged: Merged | dict, out: Path) -> None:
    """Write every page, plot, download and static file of the site into ``out``."""
    import export
    import plots
    import relations

    if not isinstance(merged, Merged):
        merged = Merged(records=dict(merged))
    records = merged.records
    board = Board(records, merged.newer_errors)
    env = _environment()
    common = context(board, merged)

    def page(name, template, root, **kw):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(root=root, **common, **kw))

    figures = plots.render_all(board, out / "plots")
    downloads = export.write(board, out)
    page("index.html", "index.html", "", figures=figures, downloads=downloads)
    page("about.html", "about.html", "")
    for key in board.models:
        probes = [p for p in board.probes["knowledge"]
                  if any(r["cells"].get(p) for r in board.model_rows(key))]
        heats = {p: relations.relation_heat(board, key, p) for p in probes}
        info = {p: relations.relation_info(
            board.records[r["cells"][p]["case_id"]] for r in board.model_rows(key)
            if p in r["cells"]) for p in probes}
        page(f"models/{key}.html", "model.html", "../", model=board.models[key],
             rows=board.model_rows(key), heats=heats, rel_info=info)
    for case_id, rec in records.items():
        row, cell = board.cell(case_id)
        page(f"cases/{case_id}.html", "case.html", "../", rec=rec, row=row, cell=cell,
             facts=relations.facts(board, case_id), rel_info=relations.relation_info([rec]),
             error=error_text(rec) if rec["status"] != "ok" else None,
             newer=merged.newer_errors.get(case_id), command=reproduce(rec),
             bits=knowledge_bits(rec) if rec["status"] == "ok" else None)
    for f in (HERE / "static").iterdir():
        shutil.copy(f, out / f.name)


OLD_SITE = {"index.html", "style.css"}   # what the first builder wrote (before the marker)


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    ours = out.is_dir() and ((out / MARKER).exists() or {p.name for p in out.iterdir()} <= OLD_SITE)
    if not ours:
        raise SiteError(f"{out} exists and is not a site built by this tool (no {MARKER} in it): "
                        "nothing was changed. Give -o a new or empty folder.")


def build(folders: list[Path], out: Path, merged: Merged | None = None) -> Path:
    merged = merged or merge_all(folders)
    if not merged.records:
        why = f" ({len(merged.refused)} refused: {merged.refused[0]})" if merged.refused else ""
        raise RecordError(f"no usable records in {', '.join(map(str, folders))}{why}: run the "
                          "benchmark first")
    out = Path(out).absolute()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        render(merged, tmp)
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
    ap.add_argument("--strict", action="store_true",
                    help=f"exit {EXIT_REFUSED} when any record file was refused (the site is "
                         "still built, listing them)")
    args = ap.parse_args(argv)
    try:
        merged = merge_all(args.results)
        for why in merged.refused:
            print(f"refused: {why}", file=sys.stderr)
        path = build(args.results, args.out, merged)
    except (RecordError, SiteError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"leaderboard: {path}")
    if merged.refused:
        print(f"{len(merged.refused)} record file(s) refused (listed above and on the front page)",
              file=sys.stderr)
        if args.strict:
            return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
