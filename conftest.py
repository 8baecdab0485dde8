"""The pytest plugin: options, case generation and marks, ordering, the runner, the summary.

    pytest benchmarks -k "smollm2 and sparse-50 and trex" --limit 20
    pytest benchmarks --tiny          # every family through the same path on tiny models
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# The plan after collection and a progress line per finished case (benchmarks/live.py); the
# xdist scheduler that keeps a model's cases on one worker (benchmarks/scaleout.py).
pytest_plugins = ["benchmarks.live", "benchmarks.scaleout"]


def pytest_addoption(parser):
    g = parser.getgroup("knowledge-cost")
    g.addoption("--models", default=None,
                help="default | tiny | all | comma-separated model ids, folders, .gguf files or hub "
                     "ids (org/name[@revision]); NAME=PATH names one (default: default)")
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
    g.addoption("--limits", default=None, metavar="PROBE=N,...",
                help="per-probe limits over --limit, e.g. trex=10,piqa=100,conceptnet=all; "
                     "per-call:trex=1 applies to presets scored one call per sequence only "
                     "(int8-dyn, bnb-int8, ao-w8a8: slow on CPU), bnb-int8:trex=skip to one "
                     "preset (skip: not collected); `main`: the main job's "
                     "(benchmarks/matrix.py MAIN_LIMITS)")
    g.addoption("--batch-size", type=int, default=None, metavar="N",
                help="facts per LAMA chunk and lm-eval's batch size (default: each probe's own: "
                     "LAMA 64, lm-eval by vocabulary size). Scores do not depend on it; models "
                     "whose quantizer takes a statistic over the whole call run one sequence per "
                     "call whatever it is")
    g.addoption("--gate-protocol", default=None, choices=("lenient", "open"),
                help="which LAMA protocol the knowledge gate judges (default: lenient, the "
                     "candidate-ranked P@1; open: the open-vocabulary answer)")
    _add_user_options(g)


def _add_user_options(g):
    """A user's own models, checkpoints and settings file (benchmarks/user_config.py)."""
    g.addoption("--checkpoint", action="append", default=None, metavar="[NAME=]PATH",
                help="a compressed checkpoint folder made from a --models base (GPTQ, bitsandbytes, "
                     "torchao, compressed-tensors, or dense): preset ckpt-<name>; repeatable")
    g.addoption("--floor", action="append", default=None, metavar="[PRESET=]VALUE",
                help="retention floor for this run: PRESET=VALUE, or VALUE for every --checkpoint "
                     "without its own; repeatable; overrides benchmarks/matrix.py")
    g.addoption("--trust-remote-code", action="store_true",
                help="let models given by path or hub id run their own code (off by default)")
    g.addoption("--config", default=None, metavar="FILE",
                help="settings file (default: knowledge-cost.toml, else [tool.knowledge-cost] in "
                     "pyproject.toml, in the folder pytest starts from)")


def pytest_configure(config):
    _configure_user_matrix(config)
    from benchmarks.matrix import all_marks
    for mark in sorted(all_marks()):
        config.addinivalue_line("markers", f"{mark}: knowledge-cost case selector")
    config.addinivalue_line("markers", "regression: case with a committed baseline record")
    # pytest-xdist registers it too; declared here so a run without xdist does not warn.
    config.addinivalue_line("markers", "xdist_group(name): cases that share one xdist worker")
    _check_options(config)


def _configure_user_matrix(config):
    """The settings file, models given by path or hub id, checkpoints, floors: before anything
    reads the options (benchmarks/user_config.py). Their errors are usage errors."""
    from benchmarks.models import UnsafeCheckpoint
    from benchmarks.user_config import configure
    try:
        config._kcb_user_lines = configure(config)
    except (ValueError, UnsafeCheckpoint) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config):
    return [f"knowledge-cost: {line}" for line in getattr(config, "_kcb_user_lines", [])]


def _check_options(config):
    """Usage errors are caught once, here, in one line each (pytest exits 4), instead of as a
    traceback in every case: bad --models/--presets/--probes ids, --limit and --batch-size below
    1, an unknown --device or one this machine lacks, a --shard that is not K/N."""
    from benchmarks.matrix import select_models, select_presets, select_probes
    for opt, select in (("--models", lambda: select_models(_which_models(config))),
                        ("--presets", lambda: select_presets(config.getoption("--presets"))),
                        ("--probes", lambda: select_probes(config.getoption("--probes")))):
        try:
            select()
        except KeyError as exc:
            raise pytest.UsageError(f"{opt}: {exc.args[0]}") from None
    for opt in ("--limit", "--batch-size"):
        value = config.getoption(opt)
        if value is not None and value < 1:
            raise pytest.UsageError(f"{opt} {value}: must be a positive whole number "
                                    f"({'facts per relation, examples or windows' if opt == '--limit' else 'rows per pass'})")
    _check_limits(config)
    _forced_floors()
    device = config.getoption("--device")
    import re
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        raise pytest.UsageError(f"--device {device!r}: expected cpu, cuda, cuda:N or auto")
    from benchmarks.scaleout import ShardError, parse_shard
    try:
        parse_shard(config.getoption("--shard"))
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_limits(config):
    from benchmarks.matrix import parse_limits
    try:
        parse_limits(config.getoption("--limits"))
    except (KeyError, ValueError) as exc:
        raise pytest.UsageError(f"--limits: {exc.args[0]}") from None


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
    from benchmarks.matrix import SKIP, case_limit, parse_limits
    limits = parse_limits(metafunc.config.getoption("--limits"))   # checked at configure
    limit = metafunc.config.getoption("--limit")
    chosen, skipped = [], []
    for c in cases(select_models(_which_models(metafunc.config)), presets, probes):
        (skipped if case_limit(limits, limit, c.probe.id, c.preset) == SKIP else chosen).append(c)
    from benchmarks.live import LIMITS_SKIPPED
    metafunc.config.stash[LIMITS_SKIPPED] = [c.id for c in skipped]
    # xdist_group: with `-n W --dist loadgroup` a model's cases share one worker (loaded once).
    params = [pytest.param(c, id=c.id, marks=[*(getattr(pytest.mark, m) for m in c.marks),
                                              pytest.mark.xdist_group(xdist_group(c))])
              for c in chosen]
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


def _needs_lama(items) -> bool:
    return any(getattr(getattr(i, "callspec", None), "params", {}).get("case") is not None
               and i.callspec.params["case"].probe.data == "lama" for i in items)


def pytest_collection_finish(session):
    """After -k/-m: say clearly when no case is left, and ask for the LAMA folder only when a
    selected case reads it (a testbed-only or ability-only run never does)."""
    config = session.config
    cases = [i for i in session.items if "case" in getattr(getattr(i, "callspec", None), "params", {})]
    targeted = any("benchmarks" in str(a) for a in config.args)
    if targeted and not cases and not config.getoption("collectonly"):
        from benchmarks.matrix import cases as all_cases, select_models, select_presets, select_probes
        models = select_models(_which_models(config))
        presets = select_presets(config.getoption("--presets"))
        probes = select_probes(config.getoption("--probes"))
        n = len(all_cases(models, presets, probes))
        why = (f"{len(models)} model(s) x {len(presets)} preset(s) x {len(probes)} probe(s) give "
               f"{n} compatible case(s)")
        if n and (config.getoption("keyword") or config.getoption("markexpr")):
            why += ", and -k/-m deselected all of them"
        elif not n and models and probes:
            why += f" (probes {', '.join(p.id for p in probes)} do not apply to " \
                   f"{', '.join(m.id for m in models)}: see `probes/__init__.py` families/sources)"
        session.config._kcb_no_cases = f"no cases selected: {why}"
    if _needs_lama(cases):
        from probes.lama_data import LamaDataError, lama_dir
        try:
            config._kcb_lama_root = lama_dir(config.getoption("--lama-dir"))
        except LamaDataError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def runner(request):
    from benchmarks.runner import Runner
    config = request.config
    from benchmarks.scaleout import worker_device
    device = worker_device(config.getoption("--device"))   # xdist worker gwN -> its own GPU
    if device not in ("cpu", "auto"):
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: CUDA is not available on this machine")
    results = Path(config.getoption("--results-dir"))
    _check_writable(results)
    r = Runner(getattr(config, "_kcb_lama_root", None), results, config.getoption("--limit"),
               device, batch_size=config.getoption("--batch-size"),
               protocol=config.getoption("--gate-protocol") or "lenient", floors=_forced_floors())
    from benchmarks.matrix import parse_limits
    r.limits = parse_limits(config.getoption("--limits"))
    r.resume = config.getoption("--resume")
    r.update_baselines = config.getoption("--update-baselines")
    r.baselines_dir = config.getoption("--baselines-dir")
    config._kcb_runner = r
    return r


def _forced_floors() -> dict | None:
    """$KCB_FLOORS, e.g. "sparse-90=0.9": floors replacing benchmarks/matrix.py's for these presets
    in this run (tests force a gate failure with it; not for results you publish)."""
    text = os.environ.get("KCB_FLOORS")
    if not text:
        return None
    try:
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise pytest.UsageError(f"KCB_FLOORS={text!r}: expected preset=floor,...") from None


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise pytest.UsageError(f"--results-dir {folder}: cannot write there ({exc.strerror}); "
                                "choose a writable folder") from None


# Exit codes the scripts tell apart (scripts/bench.sh): 0 every case passed or recorded;
# 1 a case failed its knowledge gate (a finding); 4 a usage error (pytest's own); 5 no case
# collected; 6 a case could not run (an error record names why).
EXIT_CASE_ERROR = 6


def pytest_runtest_logreport(report):
    """Count cases that could not run from their reports: under xdist the controller has no
    runner, only the reports its workers send (benchmarks/test_matrix.py marks them)."""
    if report.failed and dict(report.user_properties).get("kcb_case_error"):
        _CASE_ERRORS.add(report.nodeid)


_CASE_ERRORS: set[str] = set()


def pytest_sessionfinish(session, exitstatus):
    r = getattr(session.config, "_kcb_runner", None)
    if exitstatus == 1 and (_CASE_ERRORS or (r is not None and r.case_errors)):
        session.exitstatus = EXIT_CASE_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    if getattr(config, "_kcb_no_cases", None):
        tr.write_line(config._kcb_no_cases, red=True)
    r = getattr(config, "_kcb_runner", None)
    if r is None or not r.summary:
        return
    tr.section("knowledge retention")
    for line in getattr(config, "_kcb_user_lines", []):   # what each path given became
        tr.write_line(line)
    tr.write_line(f"{'case':58} {'metric':>16} {'retention':>9}  verdict")
    for row in r.summary:
        ret = "" if row["retention"] is None else f"{row['retention']:.3f}"
        tr.write_line(f"{row['case_id']:58} {row['value']:.3f} ± {row['stderr']:.3f} "
                      f"{ret:>9}  {row['verdict']}  (n={row['n']})")
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux -> GiB
    tr.write_line(f"records: {r.results_dir.resolve()}   peak RSS of this run: {peak:.2f} GiB")
