"""Static SVG plots of the leaderboard, drawn at build time with matplotlib (Agg, no display).

    figures = render_all(board, out_dir / "plots")   # [{"file", "title", "caption"} or "note"]

SVG text stays text (svg.fonttype none) and matplotlib escapes it, so a name with markup is drawn
as characters; mathtext is off so a '$' in a name is not parsed. Output is deterministic (fixed
hash salt, no date), so rebuilding the same records gives the same files.
"""
from __future__ import annotations

from pathlib import Path

STYLE = {"svg.fonttype": "none", "svg.hashsalt": "knowledge-cost", "text.parse_math": False,
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
MARKERS = "osD^vP*Xh<>"
SIZE = (6.4, 4.0)   # one size for all, so the page shows them at one scale


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path):
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    _plt().close(fig)


def _plain_ticks(axis, lo, hi):
    """Log-axis labels as plain numbers (mathtext is off, so the default 10^k would show raw);
    1-2-5 steps over a narrow range, decades over a wide one."""
    import math
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    narrow = math.log10(hi / lo) <= 2
    axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if narrow else (1,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _series(points):
    """Sort (x, y) points by x for a line."""
    pts = sorted(points)
    return [p[0] for p in pts], [p[1] for p in pts]


def _model_name(board, key):
    return str(board.models[key].get("id", key))


def retention_vs_sparsity(board, path):
    plt = _plt()
    dense = {r["model"]: (0.0, 1.0) for r in board.rows if r["baseline"]}   # every line starts here
    series = {}
    for r in board.rows:
        if r["baseline"] or not r["sparsity"] or r["bits"] or r["knowledge_retention"] is None:
            continue   # pure pruning only: a sparse+quantized combo belongs to the bits plot
        series.setdefault((r["model"], r["scope"] or r["method"]), []).append(
            (r["sparsity"], r["knowledge_retention"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, ((model, scope), pts) in enumerate(sorted(series.items())):
        pts = pts + ([dense[model]] if model in dense else [])
        x, y = _series(pts)
        ax.plot(x, y, marker=MARKERS[i % len(MARKERS)], label=f"{_model_name(board, model)} · {scope}")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("measured sparsity (fraction of weights in scope that are zero)")
    ax.set_ylabel("knowledge retention\n(LAMA facts pooled)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)
    return path


def retention_vs_bits(board, path):
    plt = _plt()
    series = {}
    for r in board.rows:
        if r["bits"] and r["knowledge_retention"] is not None:
            series.setdefault((r["method"], r["model"]), []).append((r["bits"], r["knowledge_retention"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, ((method, model), pts) in enumerate(sorted(series.items())):
        x, y = _series(pts)
        ax.plot(x, y, marker=MARKERS[i % len(MARKERS)], ls="-" if len(x) > 1 else "none",
                label=f"{method} · {_model_name(board, model)}")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("bits per weight (quantizer setting)")
    ax.set_ylabel("knowledge retention\n(LAMA facts pooled)")
    ax.set_ylim(bottom=0)
    bits = sorted({x for pts in series.values() for x, _ in pts})
    ax.set_xticks(bits)
    ax.set_xlim(max(bits) + 1, min(bits) - 1)   # fewer bits to the right: more compression
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)
    return path


def pareto_front(points):
    """Points not beaten by a smaller-or-equal-size point with more knowledge: (bytes, value)."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def knowledge_vs_bytes(board, path, probe):
    plt = _plt()
    by_model = {}
    for r in board.rows:
        c = r["cells"].get(probe)
        if c and c["status"] == "ok" and r["weight_bytes"]:
            by_model.setdefault(r["model"], []).append((r["weight_bytes"], c["value"], r["preset"]))
    if not by_model:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    every, names = [], {}
    for i, (model, pts) in enumerate(sorted(by_model.items())):
        ax.scatter([p[0] / 2**20 for p in pts], [p[1] for p in pts], marker=MARKERS[i % len(MARKERS)],
                   label=_model_name(board, model), alpha=0.8)
        every += [(p[0], p[1]) for p in pts]
        names.update({(p[0], p[1]): f"{_model_name(board, model)} {p[2]}" for p in pts})
    front = pareto_front(every)
    for x, y in front:   # name the points worth choosing
        ax.annotate(names[(x, y)], (x / 2**20, y), textcoords="offset points", xytext=(4, -10),
                    fontsize=6.5, color="0.25")
    ax.step([p[0] / 2**20 for p in front], [p[1] for p in front], where="post", color="k", lw=1,
            label="Pareto front (all models)")
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis, min(p[0] for p in every) / 2**20, max(p[0] for p in every) / 2**20)
    ax.set_xlabel("weights as stored (MiB, log scale)")
    ax.set_ylabel(f"{probe} P@1")
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)
    return path


def knowledge_vs_ability(board, path):
    plt = _plt()
    pts = [(r["ability_retention"], r["knowledge_retention"], r["model"]) for r in board.rows
           if not r["baseline"] and r["ability_retention"] is not None
           and r["knowledge_retention"] is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for i, model in enumerate(sorted({p[2] for p in pts})):
        mine = [p for p in pts if p[2] == model]
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], marker=MARKERS[i % len(MARKERS)],
                   label=_model_name(board, model))
    hi = max(1.05, max(max(p[0], p[1]) for p in pts) * 1.05)
    ax.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--", label="equal loss")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("ability retention (mean over tasks)")
    ax.set_ylabel("knowledge retention (LAMA facts pooled)")
    ax.legend(fontsize=7, frameon=False)
    _save(fig, path)
    return path


def render_all(board, out: Path) -> list[dict]:
    """Every plot the records allow; a plot without data becomes a note saying what is missing."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    main = next(iter(board.probes["knowledge"]), None)
    specs = [
        ("retention-vs-sparsity.svg", "Knowledge retention vs sparsity, per model and pruning scope",
         lambda p: retention_vs_sparsity(board, p), "no pruned (sparse, unquantized) presets"),
        ("retention-vs-bits.svg", "Knowledge retention vs bits, per quantizer",
         lambda p: retention_vs_bits(board, p), "no quantized presets"),
        ("knowledge-vs-bytes.svg", f"Knowledge ({main} P@1) vs weight bytes, with the Pareto front",
         lambda p: knowledge_vs_bytes(board, p, main) if main else None, "no knowledge records"),
        ("knowledge-vs-ability.svg", "Knowledge retention vs ability retention: does knowledge fall faster?",
         lambda p: knowledge_vs_ability(board, p),
         "no case has both knowledge and ability (lm-eval task or perplexity) records"),
    ]
    figures = []
    with plt.rc_context(STYLE):
        for name, title, draw, missing in specs:
            made = draw(out / name)
            figures.append({"file": f"plots/{name}", "title": title} if made else
                           {"title": title, "note": f"Not drawn: {missing} in these results."})
    return figures
