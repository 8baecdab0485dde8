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
    g.addoption("--device", default="cpu",
                help="cpu | cuda | cuda:N | auto (default: cpu). auto spreads a model too large "
                     "for one GPU over all GPUs with accelerate's device_map='auto'")
    g.addoption("--resume", action="store_true",
                help="skip cases whose ok record in --results-dir has the same configuration "
                     "(model revision, preset params, probe version and data, limit)")
    g.addoption("--update-baselines", action="store_true",
                help="rewrite benchmarks/baselines/<case>.json from this run instead of comparing")
    g.addoption("--baselines-dir", default=None,
                help="committed baselines (default: $KCB_BASELINES_DIR, else benchmarks/baselines)")
    g.addoption("--shard", default=None, metavar="K/N",
                help="run shard K of N: whole models (or model+preset units when there are fewer "
                     "models than shards), deterministic; merge the record folders with site/build.py")
    g.addoption("--probes", default="all",
                help="all | default (the main job's probes) | comma-separated probe ids (default: all)")
    g.addoption("--presets", default="all",
                help="all | default (the main job's subset) | comma-separated preset ids "
                     "(default: all)")
    g.addoption("--batch-size", type=int, default=None, metavar="N",
                help="facts per LAMA chunk and lm-eval's batch size (default: each probe's own: "
                     "LAMA 64, lm-eval by vocabulary size). Scores do not depend on it; models "
                     "whose quantizer takes a statistic over the whole call run one sequence per "
                     "call whatever it is")


def pytest_configure(config):
    from benchmarks.matrix import all_marks
    for mark in sorted(all_marks()):
        config.addinivalue_line("markers", f"{mark}: knowledge-cost case selector")
    config.addinivalue_line("markers", "regression: case with a committed baseline record")
    # pytest-xdist registers it too; declared here so a run without xdist does not warn.
    config.addinivalue_line("markers", "xdist_group(name): cases that share one xdist worker")
    _check_models_option(config)


def _check_models_option(config):
    """An unknown --models id is a usage error naming the near misses, not a collection traceback."""
    from benchmarks.matrix import select_models
    try:
        select_models(_which_models(config))
    except KeyError as exc:
        raise pytest.UsageError(f"--models: {exc.args[0]}") from None


@pytest.hookimpl(tryfirst=True)   # before -m deselects
def pytest_collection_modifyitems(config, items):
    _mark_regression(config, items)
    _keep_shard(config, items)


def _mark_regression(config, items):
    """Cases with a committed baseline record are marked `regression` (benchmarks/regression.py)."""
    from benchmarks.regression import baseline_path
    for item in items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if case is not None and baseline_path(case.id, config.getoption("--baselines-dir")).is_file():
            item.add_marker(pytest.mark.regression)


def _which_models(config) -> str:
    if config.getoption("--tiny"):
        return "tiny"
    return config.getoption("--models") or "default"


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    from benchmarks.matrix import cases, select_models, select_presets, select_probes
    from benchmarks.scaleout import xdist_group
    try:
        presets = select_presets(metafunc.config.getoption("--presets"))
    except KeyError as exc:
        raise pytest.UsageError(f"--presets: {exc.args[0]}") from None
    try:
        probes = select_probes(metafunc.config.getoption("--probes"))
    except KeyError as exc:
        raise pytest.UsageError(f"--probes: {exc.args[0]}") from None
    # xdist_group: with `-n W --dist loadgroup` a model's cases share one worker (loaded once).
    params = [pytest.param(c, id=c.id, marks=[*(getattr(pytest.mark, m) for m in c.marks),
                                              pytest.mark.xdist_group(xdist_group(c))])
              for c in cases(select_models(_which_models(metafunc.config)), presets, probes)]
    metafunc.parametrize("case", params)


def _keep_shard(config, items):
    """--shard K/N: keep this shard's cases, report the others as deselected."""
    from benchmarks.scaleout import ShardError, assign, parse_shard
    try:
        shard = parse_shard(config.getoption("--shard"))
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None
    if shard is None:
        return
    from benchmarks.matrix import cases, select_models, select_presets, select_probes
    where = assign(cases(select_models(_which_models(config)),
                         select_presets(config.getoption("--presets")),
                         select_probes(config.getoption("--probes"))), shard[1])
    keep, drop = [], []
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        (keep if case is None or where[case.id] == shard[0] else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
    from benchmarks.scaleout import worker_device
    device = worker_device(config.getoption("--device"))   # xdist worker gwN -> its own GPU
    if device not in ("cpu", "auto"):
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: CUDA is not available on this machine")
    batch_size = config.getoption("--batch-size")
    if batch_size is not None and batch_size < 1:
        raise pytest.UsageError("--batch-size must be a positive number")
    r = Runner(root, Path(config.getoption("--results-dir")), limit, device, batch_size=batch_size)
    r.resume = config.getoption("--resume")
    r.update_baselines = config.getoption("--update-baselines")
    r.baselines_dir = config.getoption("--baselines-dir")
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
