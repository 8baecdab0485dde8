"""Property-based tests (hypothesis): random and malformed records and LAMA lines either load
or raise the documented error (RecordError, LamaDataError), never anything else; the site
builder either builds or stops with one line naming the problem, never a traceback.

    pytest tests/test_properties.py -q
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.record import RecordError, read_record, read_records, validate, write_record
from probes.lama_data import LamaDataError, load_subset
from tests.helpers import REPO, json_paths, write_lama
from tests.test_record import make_record

# Modest and deterministic: these run in CI on every push.
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)




@st.composite
def mutated_records(draw, max_depth=None):
    """A valid record with one to three fields deleted or replaced by random JSON."""
    rec = make_record()
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in json_paths(rec) if max_depth is None or len(p) <= max_depth]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = rec
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return rec


@FAST
@given(json_values)
def test_validate_accepts_or_raises_record_error_on_any_json(value):
    try:
        validate(value, "x.json")
    except RecordError as exc:
        assert str(exc).startswith("x.json: ")


@FAST
@given(mutated_records())
def test_mutated_records_validate_or_raise_record_error(rec):
    try:
        validate(rec, "x.json")
    except RecordError as exc:
        assert str(exc).startswith("x.json: ")


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.builds(lambda r, cut: json.dumps(r).encode()[:cut], mutated_records(), st.integers(0, 4000)))
def test_any_file_content_reads_or_raises_record_error_naming_it(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "m__none__trex.json"
    path.write_bytes(data)
    try:
        read_record(path)
    except RecordError as exc:
        assert str(exc).startswith(str(path))


@FAST
@given(mutated_records())
def test_a_record_that_validates_round_trips_through_a_file(tmp_path_factory, rec):
    try:
        validate(copy.deepcopy(rec))
    except RecordError:
        return
    folder = tmp_path_factory.mktemp("w")
    write_record(folder, rec)
    assert read_records(folder) == [json.loads(json.dumps(rec))]


# ---------------------------------------------------------------------------- LAMA lines
lama_rows = st.fixed_dictionaries(
    {}, optional={"sub_label": json_values | st.text(max_size=12), "obj_label": json_values | st.text(max_size=12),
                  "uuid": json_values, "masked_sentences": json_values | st.lists(st.text(max_size=30), max_size=2),
                  "pred": json_values})
lama_lines = (st.binary(max_size=60) | st.text(max_size=60).map(str.encode)
              | lama_rows.map(lambda r: json.dumps(r).encode()))


@FAST
@given(st.lists(lama_lines, min_size=1, max_size=5))
def test_random_trex_lines_load_or_raise_lama_data_error(tmp_path_factory, lines):
    root = write_lama(tmp_path_factory.mktemp("lama"), [("Alice", "Paris")])
    with open(root / "TREx" / "P19.jsonl", "ab") as f:
        f.write(b"\n".join(lines) + b"\n")
    try:
        sub = load_subset(root, "trex")
    except LamaDataError as exc:
        assert "P19.jsonl" in str(exc)
        return
    # Loaded: every non-blank line is a fact (nothing dropped silently) with a one-slot cloze.
    n_lines = sum(1 for line in (root / "TREx" / "P19.jsonl").read_text().splitlines() if line.strip())
    assert len(sub.facts) == n_lines and not sub.excluded
    assert all(f.text.count("[Y]") == 1 and f.obj in sub.candidates["P19"] for f in sub.facts)


@FAST
@given(st.lists(lama_lines, min_size=1, max_size=5))
def test_random_squad_lines_load_or_raise_lama_data_error(tmp_path_factory, lines):
    root = tmp_path_factory.mktemp("lama")
    (root / "Squad").mkdir()
    (root / "Squad" / "test.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    try:
        sub = load_subset(root, "squad")
    except LamaDataError as exc:
        assert "test.jsonl" in str(exc)
        return
    n_lines = sum(1 for line in (root / "Squad" / "test.jsonl").read_text().splitlines() if line.strip())
    assert len(sub.facts) + len(sub.excluded) == n_lines             # every line counted
    assert all(f.text.count("[Y]") >= 1 for f in sub.facts)


# ---------------------------------------------------------------------------- the site builder
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_records(max_depth=2), min_size=1, max_size=3))
def test_site_builder_builds_or_names_the_bad_record(records):
    """Records mutated at the top two levels (what validate types): the builder either succeeds
    or exits with an error line naming the file; it never crashes with a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "records"
        folder.mkdir()
        for i, rec in enumerate(records):
            (folder / f"m{i}__none__trex.json").write_text(json.dumps(rec))
        out = subprocess.run([sys.executable, "site/build.py", str(folder), "-o", str(Path(tmp) / "site")],
                             cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        if out.returncode != 0:
            assert "error:" in out.stderr and ".json" in out.stderr, out.stderr
