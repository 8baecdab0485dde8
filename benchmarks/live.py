"""pytest plugin (registered by conftest.py): the plan right after collection, and one progress
line per finished case while the run goes.

    plan: 196 case(s), about 17 min on this machine
      calibrated from 196 earlier record(s) (timings.json, results/records); ...
      narrow it: --limit N, -k "smollm2 and trex", --presets ..., --probes ...
    [####................] 41/196 3:12 ETA 13:40  smollm2-135m__sparse-30__trex  52.1 facts/s  retention 0.912  pass

The plan is benchmarks/plan.py's, the line benchmarks/progress.py's. Under pytest-xdist both are
printed by the controller (it sees every worker's collection and reports; the runner's summary
row travels in the report's user_properties). Case items get no pytest progress letter: their
line says what the letter would.
"""
from __future__ import annotations

from pathlib import Path

import pytest

_STATE = pytest.StashKey[dict]()


def case_id(nodeid: str) -> str | None:
    from benchmarks.scaleout import case_of_node
    return case_of_node(nodeid)


def _state(config) -> dict:
    return config.stash.setdefault(_STATE, {})


def selected_cases(config, ids) -> list:
    """The Case objects of the collected case ids, rebuilt from the options (the controller of
    an xdist run has ids only)."""
    from benchmarks.matrix import cases, select_models, select_presets, select_probes
    models = "tiny" if config.getoption("--tiny") else config.getoption("--models") or "default"
    known = {c.id: c for c in cases(select_models(models), select_presets(config.getoption("--presets")),
                                    select_probes(config.getoption("--probes")))}
    return [known[i] for i in ids if i in known]


LIMITS_SKIPPED = pytest.StashKey[list]()   # case ids --limits left out (probe=skip), for the plan


def show_plan(config, ids) -> None:
    """Print the plan once (the controller, or a run without xdist), and keep its estimates for
    the progress lines."""
    st = _state(config)
    if st.get("plan_shown") or hasattr(config, "workerinput") or not ids:
        return
    st["plan_shown"] = True
    from benchmarks.matrix import parse_limits
    from benchmarks.plan import make
    from benchmarks.progress import Progress
    from probes.lama_data import LamaDataError, lama_dir
    chosen = selected_cases(config, ids)
    try:
        root = lama_dir(config.getoption("--lama-dir"))
    except LamaDataError:
        root = None   # LAMA cases then count as unknown; conftest reports the missing folder
    device = config.getoption("--device")
    workers = getattr(config.option, "numprocesses", None) or 1
    workers = workers if isinstance(workers, int) else 1   # "auto" and the like: not known here
    grouped = getattr(config.option, "dist", "no") == "loadgroup"
    plan = make(chosen, parse_limits(config.getoption("--limits")), config.getoption("--limit"),
                root, "cpu" if device == "cpu" else "cuda",
                Path(config.getoption("--results-dir")), workers, grouped)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        for line in plan.lines(len(ids), workers, grouped):
            tr.write_line(line)
        left = config.stash.get(LIMITS_SKIPPED, [])
        if left:
            tr.write_line(f"  left out by --limits (skip): {len(left)} case(s), e.g. {left[0]}")
    st["progress"] = Progress(plan.seconds, plan.total)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    ids = [i for i in map(case_id, (item.nodeid for item in session.items)) if i]
    show_plan(session.config, ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    show_plan(node.config, [i for i in map(case_id, ids) if i])


def _finished(report) -> bool:
    """A case is finished after its call, or at a setup that did not pass (skip, error)."""
    return report.when == "call" or (report.when == "setup" and not report.passed)


_config: list = []   # this process's config (pytest_runtest_logreport is given the report only)


def pytest_configure(config):
    _config[:] = [config]


def pytest_runtest_logreport(report):
    cid = case_id(report.nodeid)
    if cid is None or not _config or not _finished(report):
        return
    config = _config[0]
    progress = _state(config).get("progress")
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if progress is None or tr is None:
        return
    row = dict(report.user_properties).get("kcb_row")
    outcome = report.outcome
    if report.failed and row is None:
        outcome = "error (traceback below)" if report.when == "call" else "setup error"
    elif report.skipped and row is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        outcome = f"skipped: {reason.removeprefix('Skipped: ')}"[:160]
    tr.write_line(progress.finished(cid, row, outcome))


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    """No progress letter for a case that prints its own line (pytest's categories are kept, so
    its summary still counts passed, failed and skipped cases)."""
    if case_id(report.nodeid) is None or _state(config).get("progress") is None \
            or config.option.verbose > 0:
        return None
    if report.when == "call" or (report.when == "setup" and report.skipped):
        return report.outcome, "", report.outcome.upper()
    return None
