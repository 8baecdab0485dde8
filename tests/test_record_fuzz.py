"""Deep random edits of valid records (issue 17 item 3): any record that passes
``record.validate`` is read by every consumer without an exception; any other is refused with a
message naming the file. Consumers: the site build (site/build.py), ``derive.compare``,
``analysis.knowledge_summary`` and the report CLI (``benchmarks.report``).

    pytest tests/test_record_fuzz.py -q            # 1,000 examples, derandomized (CI)
    KCB_FUZZ_EXAMPLES=20000 pytest tests/test_record_fuzz.py -q   # a longer hunt
    python -m tests.test_record_fuzz 400           # tally distinct crash sites, no shrinking

Time is bounded two ways that change no code path: bootstrap intervals use 50 resamples instead
of 2,000 (the same functions run), and in the 1,000-example test matplotlib does not rasterise
the figures into SVG (every plotting call with the board's numbers still runs; an SVG stub is
written). A second test draws the real SVGs for 100 edited boards, and ``hunt`` always does.

An edit picks any node of a record at any depth (a metric's stderr, one example's rank, a
group's count, a field of the measured effect) and deletes it, replaces it with random JSON, or
retypes it (a number as text, a list as an object, a value wrapped in a list, ...). The set of
records is a board in miniature: a LAMA baseline and a compressed case (enough facts to be
rated), an ability pair with multiple-choice examples, a perplexity pair, and an error record.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import analysis, derive, report
from benchmarks.record import RecordError, validate
from tests.helpers import json_paths
from tests.site_records import ability, error, lama, perplexity

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "site"))
import build as site_build  # noqa: E402

EXAMPLES = int(os.environ.get("KCB_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
DRAWN = settings(FUZZ, max_examples=max(EXAMPLES // 10, 1))
RESAMPLES = 50


@contextlib.contextmanager
def fast_intervals():
    """Fewer bootstrap resamples in derive and analysis (the same code, a smaller loop)."""
    from benchmarks import stats
    saved = derive.bootstrap_kinds, derive.BOOTSTRAP_RESAMPLES, analysis.knowledge_summary.__defaults__
    derive.bootstrap_kinds = lambda kinds, level=0.95, *a, **k: stats.bootstrap_kinds(kinds, level, RESAMPLES)
    derive.BOOTSTRAP_RESAMPLES = RESAMPLES
    d = list(saved[2])
    d[-2] = RESAMPLES            # knowledge_summary(..., resamples=..., seed=...)
    analysis.knowledge_summary.__defaults__ = tuple(d)
    try:
        yield
    finally:
        derive.bootstrap_kinds, derive.BOOTSTRAP_RESAMPLES, analysis.knowledge_summary.__defaults__ = saved


@contextlib.contextmanager
def no_rasterising():
    """Plots build every figure and artist from the board, then write a stub instead of the SVG."""
    import plots
    saved = plots._save

    def stub(fig, *args):
        plots._plt().close(fig)
        next(a for a in args if isinstance(a, Path)).write_text("<svg/>")
    plots._save = stub
    try:
        yield
    finally:
        plots._save = saved


def board_in_miniature() -> list[dict]:
    """Valid records of every shape, small enough that a site build takes a fraction of a second."""
    base = [1] * 24 + [2] * 8 + [1] * 8
    comp = [1] * 14 + [2] * 18 + [1] * 6 + [3] * 2
    recs = [lama("m", "none", base), lama("m", "sparse-50", comp, sparsity=0.5, weight_bytes=600),
            ability("m", "none", [True] * 30 + [False] * 10, probe="piqa"),
            ability("m", "sparse-50", [True] * 20 + [False] * 20, probe="piqa", sparsity=0.5),
            perplexity("m", "none", 20.0), perplexity("m", "sparse-50", 25.0, sparsity=0.5),
            error("m", "int8-x", "trex", {"type": "MemoryError", "message": "killed", "phase": "probe"}),
            # a newer failed rerun of a measured case: shown beside the last good result
            error("m", "sparse-50", "piqa", {"type": "RuntimeError", "message": "oom", "phase": "probe"},
                  kind="ability", finished="2026-02-01T00:00:00+00:00", method="global-magnitude",
                  bits=None)]
    recs[1]["gate"].update(floor=0.8, verdict="fail", protocol="lenient")
    for r in recs:
        validate(r)
    return recs


BASE = board_in_miniature()

json_leaf = (st.none() | st.booleans() | st.integers(-3, 3) | st.integers(-2**63, 2**63)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
             | st.sampled_from(["", "none", "lama", "ok", "error", "p_at_1", "trex", "P19", "0"]))
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)




def _retype(value, how: int):
    """The same content in another JSON type."""
    return [lambda v: json.dumps(v), lambda v: [v], lambda v: {"value": v}, lambda v: None,
            lambda v: True, lambda v: 0, lambda v: -1, lambda v: 1e300, lambda v: "",
            lambda v: list(v.values()) if isinstance(v, dict) else {str(i): x for i, x in
                                                                    enumerate(v)} if isinstance(v, list) else v
            ][how % 10](value)


@st.composite
def edits(draw):
    """Which record to edit and one to four edits (path, operation, value), applied by
    ``apply``. Drawn as data, not as the edited board, so a failure prints a short example."""
    target = draw(st.integers(0, len(BASE) - 1))
    rec = copy.deepcopy(BASE[target])
    out = []
    for _ in range(draw(st.integers(1, 4))):
        paths = json_paths(rec)
        if not paths:
            break
        # Deep nodes (examples, groups, metrics, effect) outnumber the top ones, so a path is
        # drawn by depth first, then among the nodes at that depth.
        depth = draw(st.integers(1, max(len(p) for p in paths)))
        path = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        op = draw(st.sampled_from(["delete", "replace", "retype", "add"]))
        arg = (draw(json_values) if op in ("replace", "add") else
               draw(st.integers(0, 9)) if op == "retype" else None)
        key = draw(st.text(max_size=6)) if op == "add" else None
        out.append((path, op, copy.deepcopy(arg), key))
        _apply_one(rec, path, op, arg, key)
    return target, out


def _apply_one(rec, path, op, arg, key):
    arg = copy.deepcopy(arg)      # never the same object twice: no aliasing, no cycles
    parent = rec
    for k in path[:-1]:
        parent = parent[k]
    if op == "delete":
        del parent[path[-1]]
    elif op == "replace":
        parent[path[-1]] = arg
    elif op == "retype":
        parent[path[-1]] = _retype(parent[path[-1]], arg)
    elif isinstance(parent[path[-1]], dict):
        parent[path[-1]][key] = arg
    elif isinstance(parent[path[-1]], list):
        parent[path[-1]].append(arg)
    else:
        parent[path[-1]] = arg


def apply(target, edit_list) -> list[dict]:
    recs = copy.deepcopy(BASE)
    for path, op, arg, key in edit_list:
        _apply_one(recs[target], path, op, arg, key)
    return recs


def _consumers(records: list[dict], tmp: Path) -> list[Exception]:
    """Run every reader of records on a board of valid ones; return what each raised (each
    reader runs even when another failed, so one crash does not hide the next)."""
    by_id = {r["case_id"]: r for r in sorted(records, key=lambda r: r["status"] == "ok")}
    raised = []

    def run(fn):
        try:
            fn()
        except Exception as exc:   # noqa: BLE001 - the property: nothing may escape a reader
            raised.append(exc)

    def compare_all():
        for r in records:
            m, p, probe = r["case_id"].split("__")
            for protocol in derive.PROTOCOLS:
                derive.compare(by_id.get(f"{m}__none__{probe}"), r,
                               (r.get("gate") or {}).get("floor"), protocol)

    def summaries():
        for base, comp in analysis.pair_records(by_id, "m", "sparse-50"):
            if base["probe"]["kind"] == comp["probe"]["kind"] == "lama":
                analysis.knowledge_summary(base, comp, {})

    folder = tmp / "records"
    folder.mkdir()
    for r in records:
        (folder / (r["case_id"] + (".error.json" if r["status"] == "error" else ".json"))
         ).write_text(json.dumps(r))

    def report_cli():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = report.main([str(folder), "--model", "m", "--preset", "sparse-50"])
        assert code in (0, 2), f"report exited {code}"

    for fn in (lambda: site_build.build([folder], tmp / "site"), report_cli, compare_all, summaries):
        run(fn)
    return raised


def check(target, edit_list) -> None:
    """The property, for one edited board; raises on a violation."""
    records = apply(target, edit_list)
    try:
        validate(records[target], "edited.json")
    except RecordError as exc:
        msg = str(exc)
        assert msg.startswith("edited.json: ") and len(msg) > len("edited.json: ") + 8, msg
        records = records[:target] + records[target + 1:]     # the others still build
    with tempfile.TemporaryDirectory() as tmp:
        raised = _consumers(records, Path(tmp))
    if raised:
        raise raised[0]


@FUZZ
@given(edits())
def test_a_deep_edit_is_refused_naming_the_field_or_read_by_every_consumer(case):
    with fast_intervals(), no_rasterising():
        check(*case)


@DRAWN
@given(edits())
def test_a_deep_edit_never_breaks_drawing_the_plots(case):
    with fast_intervals():
        check(*case)


def hunt(n: int) -> dict[str, int]:
    """Distinct crash sites (innermost project frame and exception type) over ``n`` edited
    boards, generated but never shrunk: ``python -m tests.test_record_fuzz 400``."""
    import traceback
    from hypothesis import Phase
    found: dict[str, int] = {}

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(edits())
    def tally(case):
        with fast_intervals():
            tally_one(case)

    def tally_one(case):
        records = apply(*case)
        try:
            validate(records[case[0]])
        except RecordError:
            records.pop(case[0])
        with tempfile.TemporaryDirectory() as tmp:
            raised = _consumers(records, Path(tmp))
        for exc in raised:
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if f.filename.startswith(str(REPO)) and "/tests/" not in f.filename]
            where = (f"{Path(frames[-1].filename).relative_to(REPO)}:{frames[-1].lineno}"
                     if frames else "tests (property)")
            key = f"{where} {type(exc).__name__}"
            found[key] = found.get(key, 0) + 1
    tally()
    return found


def test_the_miniature_board_is_rated_so_edits_reach_every_derivation():
    by_id = {r["case_id"]: r for r in BASE if r["status"] == "ok"}
    c = derive.compare(by_id["m__none__trex"], by_id["m__sparse-50__trex"], 0.8)
    assert c.verdict == "fail" and c.n_shared == 40 and c.retention == pytest.approx(20 / 32)
    a = derive.compare(by_id["m__none__piqa"], by_id["m__sparse-50__piqa"])
    assert a.verdict == "recorded" and a.retention == pytest.approx(20 / 30)


def test_the_unedited_board_passes_every_consumer_and_shows_every_path(tmp_path):
    assert _consumers(copy.deepcopy(BASE), tmp_path) == []
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'class="v v-fail"' in index and "newer run failed 2026-02-01" in index
    assert 'class="vd">failed<' in index


if __name__ == "__main__":
    crashes = hunt(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
    for where, count in sorted(crashes.items(), key=lambda kv: -kv[1]):
        print(f"{count:5d}  {where}")
    print(f"{len(crashes)} distinct crash sites")
