"""The pytest plugin: options, case generation and marks, ordering, the runner, the summary.

    pytest benchmarks -k "smollm2 and sparse-50 and trex" --limit 20
    pytest benchmarks --tiny          # every family through the same path on tiny models
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    g = parser.getgroup("knowledge-cost")
    g.addoption("--models", default=None,
                help="default | tiny | all | comma-separated model ids (default: default)")
    g.addoption("--tiny", action="store_true", help="run the tiny built-in models (= --models tiny)")
    g.addoption("--limit", type=int, default=None,
                help="at most N facts per relation, chosen deterministically (default: all)")
    g.addoption("--lama-dir", default=None,
                help="LAMA data folder (default: $KCB_LAMA_DIR, else the download cache)")
    g.addoption("--results-dir", default=os.environ.get("KCB_RESULTS_DIR", "results/records"),
                help="where one JSON record per case is written (default: results/records)")
    g.addoption("--device", default="cpu", help="cpu | cuda (default: cpu)")
    g.addoption("--presets", default="all",
                help="all | default (the main job's subset) | comma-separated preset ids "
                     "(default: all)")


def pytest_configure(config):
    from benchmarks.matrix import all_marks
    for mark in sorted(all_marks()):
        config.addinivalue_line("markers", f"{mark}: knowledge-cost case selector")


def _which_models(config) -> str:
    if config.getoption("--tiny"):
        return "tiny"
    return config.getoption("--models") or "default"


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    from benchmarks.matrix import cases, select_models, select_presets
    try:
        presets = select_presets(metafunc.config.getoption("--presets"))
    except KeyError as exc:
        raise pytest.UsageError(f"--presets: {exc.args[0]}") from None
    params = [pytest.param(c, id=c.id, marks=[getattr(pytest.mark, m) for m in c.marks])
              for c in cases(select_models(_which_models(metafunc.config)), presets)]
    metafunc.parametrize("case", params)


@pytest.fixture(scope="session")
def runner(request):
    from benchmarks.runner import Runner
    from probes.lama_data import LamaDataError, lama_dir
    config = request.config
    limit = config.getoption("--limit")
    if limit is not None and limit < 1:
        raise pytest.UsageError("--limit must be a positive number of facts per relation")
    try:
        root = lama_dir(config.getoption("--lama-dir"))
    except LamaDataError as exc:
        raise pytest.UsageError(str(exc)) from None
    device = config.getoption("--device")
    if device != "cpu":
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: CUDA is not available on this machine")
    r = Runner(root, Path(config.getoption("--results-dir")), limit, device)
    config._kcb_runner = r
    return r


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    r = getattr(config, "_kcb_runner", None)
    if r is None or not r.summary:
        return
    tr = terminalreporter
    tr.section("knowledge retention")
    tr.write_line(f"{'case':58} {'metric':>16} {'retention':>9}  verdict")
    for row in r.summary:
        ret = "" if row["retention"] is None else f"{row['retention']:.3f}"
        tr.write_line(f"{row['case_id']:58} {row['value']:.3f} ± {row['stderr']:.3f} "
                      f"{ret:>9}  {row['verdict']}  (n={row['n']})")
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux -> GiB
    tr.write_line(f"records: {r.results_dir.resolve()}   peak RSS of this run: {peak:.2f} GiB")
