"""Options and shared fixtures of the suite's own speed benchmarks (perf/, not run by default).

    pytest perf --perf-model smollm2-135m --perf-limit 3
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    g = parser.getgroup("knowledge-cost perf")
    g.addoption("--perf-model", default="smollm2-135m",
                help="model id to time (default smollm2-135m; tiny-causal for a quick check)")
    g.addoption("--perf-limit", type=int, default=3,
                help="facts per relation for the timed workloads (default 3: 123 T-REx facts)")
    g.addoption("--perf-rounds", type=int, default=3, help="timed rounds per workload (default 3)")


@pytest.fixture(scope="session")
def perf_model(request):
    from benchmarks.models import MODELS, load
    model, tok, _ = load(MODELS[request.config.getoption("--perf-model")], "cpu")
    return model.eval(), tok


@pytest.fixture(scope="session")
def lama_root():
    from probes.lama_data import lama_dir
    return lama_dir()


_FIGURES = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def figures(request) -> dict:
    """(subset, workload) -> facts/s, filled by the benchmarks and printed at the end."""
    return request.config.stash.setdefault(_FIGURES, {})


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    FIGURES = config.stash.get(_FIGURES, {})
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("knowledge-cost: probing throughput (facts/s) and ratios")
    for subset in sorted({s for s, _ in FIGURES}):
        f = {w: v for (s, w), v in FIGURES.items() if s == subset}
        line = "  ".join(f"{w} {v:.2f}" for w, v in sorted(f.items()) if isinstance(v, float))
        tr.write_line(f"{subset:10} {line}")
        target = subset == "trex"
        if {"ranking", "bare"} <= f.keys():
            tr.write_line(f"{'':10} ranking / bare batched = {f['ranking'] / f['bare']:.2f}"
                          + (" (target >= 0.8)" if target else ""))
        if {"ranking", "prompts-only"} <= f.keys():
            tr.write_line(f"{'':10} ranking / prompts alone = {f['ranking'] / f['prompts-only']:.2f}")
        if {"ranking", "per-fact"} <= f.keys():
            tr.write_line(f"{'':10} ranking / per-fact loop = {f['ranking'] / f['per-fact']:.2f}"
                          + (" (target >= 5)" if target else ""))
        if {"prompts-only", "per-fact"} <= f.keys():
            tr.write_line(f"{'':10} prompts alone / per-fact loop = {f['prompts-only'] / f['per-fact']:.2f} "
                          "(the most any exact scorer reaches)")
        if {"probe", "per-fact"} <= f.keys():
            tr.write_line(f"{'':10} probe (ranking + strict answers) / per-fact loop = "
                          f"{f['probe'] / f['per-fact']:.2f}")
    mem = FIGURES.get(("memory", "factor"))
    if mem:
        tr.write_line(f"peak RSS while probing / weight bytes = {mem:.2f} "
                      f"(stated bound: {FIGURES[('memory', 'bound')]:.2f} for this model)")
