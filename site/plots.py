"""Static SVG plots of the leaderboard, drawn at build time with matplotlib (Agg, no display).

    figures = render_all(board, out_dir / "plots")   # [{"file", "title"} or {"title", "note"}]

Every point carries its 95 % interval as an error bar (knowledge and ability retention: the
paired bootstrap of benchmarks/derive.py; a P@1 value: ±1.96 standard errors), and a point
whose case failed its gate is drawn hollow. Legends sit inside the axes so they scale with the
picture on a phone. SVG text stays text (svg.fonttype none) and matplotlib escapes it, so a
name with markup is drawn as characters; mathtext is off so a '$' in a name is not parsed.
Output is deterministic (fixed hash salt, no date): the same records give the same files.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from pareto import pareto_front

STYLE = {"svg.fonttype": "none", "svg.hashsalt": "knowledge-cost", "text.parse_math": False,
         "font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
MARKERS = "osD^vP*Xh<>"
SIZE = (5.6, 4.0)   # one size for all, so the page shows them at one scale (and legible on a phone)
Z95 = 1.96          # a P@1 stderr to a 95 % normal interval
_GIDS = itertools.count()


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, ax, path: Path, hollow_note: bool):
    from matplotlib.lines import Line2D
    handles, labels = ax.get_legend_handles_labels()
    if hollow_note:
        handles.append(Line2D([], [], marker="o", ls="none", color="0.3", markerfacecolor="none"))
        labels.append("hollow: a gate failed")
    ax.legend(handles, labels, fontsize=7.5, loc="best", framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    _plt().close(fig)


def _err(value, ci):
    """(lower, upper) error-bar lengths for one point; zero without an interval."""
    if not ci:
        return 0.0, 0.0
    return max(value - ci[0], 0.0), max(ci[1] - value, 0.0)


def _points(ax, pts, label, marker, color=None):
    """Draw (x, y, xci, yci, failed) points with error bars; failed ones hollow."""
    if not pts:
        return None
    line = None
    for filled in (True, False):
        mine = [p for p in pts if (not p[4]) == filled]
        if not mine:
            continue
        xe = [list(v) for v in zip(*[_err(p[0], p[2]) for p in mine])]
        ye = [list(v) for v in zip(*[_err(p[1], p[3]) for p in mine])]
        drawn = ax.errorbar([p[0] for p in mine], [p[1] for p in mine], xerr=xe, yerr=ye,
                            fmt=marker, ms=5, capsize=2, elinewidth=0.8,
                            color=color if line is None else line[0].get_color(),
                            markerfacecolor=None if filled else "none",
                            label=label if line is None else None)
        if not filled:      # an id in the SVG, so a reader (and a test) can find them
            drawn[0].set_gid(f"failed-gate-{next(_GIDS)}")
        line = line or drawn
    return line


def _name(board, key):
    return str(board.models[key].get("id", key))


def _failed(row):
    return bool(row["fails"])


def retention_vs_sparsity(board, path):
    plt = _plt()
    series = {}
    for r in board.rows:
        k = r["knowledge"]
        if r["baseline"] or not r["sparsity"] or r["bits"] or k["retention"] is None:
            continue   # pure pruning only: a sparse+quantized combo belongs to the bits plot
        series.setdefault((r["model"], r["scope"] or r["method"]), []).append(
            (r["sparsity"], k["retention"], None, k["ci"], _failed(r)))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, ((model, scope), pts) in enumerate(sorted(series.items())):
        pts = sorted(pts + ([(0.0, 1.0, None, None, False)] if model in board.baselines else []))
        line = _points(ax, pts, f"{_name(board, model)} · {scope}", MARKERS[i % len(MARKERS)])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=0.8, color=line[0].get_color())
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("measured sparsity (fraction of weights in scope that are zero)")
    ax.set_ylabel("knowledge retention, 95% interval\n(LAMA facts pooled)")
    ax.set_ylim(bottom=0)
    _save(fig, ax, path, any(p[4] for pts in series.values() for p in pts))
    return path


def retention_vs_bits(board, path):
    """Every quantized row (and each model's baseline) at its true bits per weight: bytes as
    stored x 8 / parameters, embeddings and unquantized parts included."""
    plt = _plt()
    series = {}
    for r in board.rows:
        k = r["knowledge"]
        if r["bits_per_weight"] is None or not (r["bits"] or r["baseline"]):
            continue
        y = 1.0 if r["baseline"] else k["retention"]
        if y is None:
            continue
        series.setdefault((r["method"] or "none", r["model"]), []).append(
            (r["bits_per_weight"], y, None, None if r["baseline"] else k["ci"], _failed(r)))
    if not any(m != "none" for m, _ in series):
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    methods = sorted({m for m, _ in series if m != "none"})
    models = sorted({m for _, m in series})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    multi = len(models) > 1
    for (method, model), pts in sorted(series.items()):
        if method == "none":
            continue
        _points(ax, sorted(pts), f"{method} · {_name(board, model)}" if multi else method,
                MARKERS[models.index(model) % len(MARKERS)], colors[method])
    bases = [(p, model) for (method, model), pts in series.items() if method == "none" for p in pts]
    for p, model in bases:   # each model's dense baseline: one grey legend entry for all
        ax.plot([p[0]], [p[1]], MARKERS[models.index(model) % len(MARKERS)], color="0.45", ms=5,
                label="uncompressed baseline" if (p, model) == bases[0] else None)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    xs = [p[0] for pts in series.values() for p in pts]
    ax.set_xlim(max(xs) * 1.05 + 0.5, 0)          # fewer bits to the right: more compression
    ax.set_xlabel("true bits per weight (weights as stored × 8 / parameters, embeddings included)")
    ax.set_ylabel("knowledge retention, 95% interval\n(LAMA facts pooled)")
    ax.set_ylim(bottom=0)
    _save(fig, ax, path, any(p[4] for pts in series.values() for p in pts))
    return path


def knowledge_vs_bytes(board, path, probe):
    plt = _plt()
    by_model, every = {}, []
    for r in board.rows:
        c = r["cells"].get(probe)
        if not c or c["status"] != "ok" or not r["weight_bytes"]:
            continue
        se = c["stderr"] or 0.0
        ci = (c["value"] - Z95 * se, c["value"] + Z95 * se)
        by_model.setdefault(r["model"], []).append(
            (r["weight_bytes"] / 2**20, c["value"], None, ci, c["verdict"] == "fail"))
        every.append({"x": r["weight_bytes"], "y": c["value"], "lo": ci[0],
                      "rank": board.preset_rank[r["preset"]],
                      "name": f"{_name(board, r['model'])} {r['preset']}"})
    if not by_model:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, (model, pts) in enumerate(sorted(by_model.items())):
        _points(ax, pts, _name(board, model), MARKERS[i % len(MARKERS)])
    front = pareto_front(every)
    for p in front:   # name only the points worth choosing: each beats its smaller neighbour
        ax.annotate(p["name"], (p["x"] / 2**20, p["y"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=6.5, color="0.25")
    ax.step([p["x"] / 2**20 for p in front], [p["y"] for p in front], where="post", color="k",
            lw=1, label="Pareto front: each step beyond noise")
    xs = [p["x"] / 2**20 for p in every]
    if min(xs) > 0 and max(xs) / min(xs) > 3:
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, NullFormatter
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weights as stored (MiB)")
    ax.set_ylabel(f"{probe} P@1, ±1.96 standard errors")
    _save(fig, ax, path, any(p[4] for pts in by_model.values() for p in pts))
    return path


def _diagonal(board, path, rows, xy, xlabel, ylabel):
    """Rows as points (x, y from ``xy``) against the line of equal retention."""
    plt = _plt()
    pts = []
    for r in rows:
        (x, xc), (y, yc) = xy(r)
        if x is not None and y is not None:
            pts.append((r["model"], x, y, xc, yc, _failed(r)))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, model in enumerate(sorted({p[0] for p in pts})):
        _points(ax, [(x, y, xc, yc, f) for m, x, y, xc, yc, f in pts if m == model],
                _name(board, model), MARKERS[i % len(MARKERS)])
    hi = max(1.05, max(max(p[1], p[2], (p[3] or (0, 0))[1], (p[4] or (0, 0))[1]) for p in pts) * 1.05)
    ax.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--", label="equal retention")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _save(fig, ax, path, any(p[5] for p in pts))
    return path


def _pair(d):
    return (d["retention"], d["ci"]) if d else (None, None)


def knowledge_vs_ability(board, path):
    rows = [r for r in board.rows if not r["baseline"]]
    return _diagonal(board, path, rows, lambda r: (_pair(r["ability"]), _pair(r["knowledge"])),
                     "ability retention (lm-eval examples pooled)",
                     "knowledge retention (LAMA facts pooled)")


def protocols(board, path):
    rows = [r for r in board.rows if not r["baseline"] and r["knowledge_open"]]
    return _diagonal(board, path, rows, lambda r: (_pair(r["knowledge"]), _pair(r["knowledge_open"])),
                     "knowledge retention, lenient protocol (gold ranked first among candidates)",
                     "knowledge retention, strict protocol\n(open-vocabulary answer)")


def render_all(board, out: Path) -> list[dict]:
    """Every plot the records allow; a plot without data becomes a note saying what is missing."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    main = next(iter(board.probes["knowledge"]), None)
    specs = [
        ("retention-vs-sparsity.svg", "Knowledge retention vs sparsity, per model and pruning scope",
         lambda p: retention_vs_sparsity(board, p), "no pruned (sparse, unquantized) presets"),
        ("retention-vs-bits.svg", "Knowledge retention vs true bits per weight, every quantizer",
         lambda p: retention_vs_bits(board, p),
         "no quantized presets with their weight bytes and the model's parameter count"),
        ("knowledge-vs-bytes.svg", f"Knowledge ({main} P@1) vs weights as stored, with the Pareto front",
         lambda p: knowledge_vs_bytes(board, p, main) if main else None, "no knowledge records"),
        ("knowledge-vs-ability.svg", "Knowledge vs ability retention: does knowledge fall faster?",
         lambda p: knowledge_vs_ability(board, p),
         "no compressed preset has both rated knowledge and rated ability (lm-eval) records"),
        ("protocols.svg", "Knowledge retention under both LAMA protocols",
         lambda p: protocols(board, p),
         "no LAMA record carries the strict (open-vocabulary) protocol"),
    ]
    global _GIDS
    figures = []
    with plt.rc_context(STYLE):
        for name, title, draw, missing in specs:
            _GIDS = itertools.count()     # ids restart per file: the same records, the same SVG
            made = draw(out / name)
            figures.append({"file": f"plots/{name}", "title": title, "id": name[:-4]} if made else
                           {"title": title, "id": name[:-4],
                            "note": f"Not drawn: {missing} in these results."})
    return figures
