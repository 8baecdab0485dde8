"""--resume: which cases are already done, decided before anything is loaded.

    key = planned_key(runner, case)          # the key the case's record will have, or None
    record = finished_record(runner, case)   # its ok record of the same configuration, or None

A case is done when ``<results>/<case>.json`` is an ok record whose configuration key
(benchmarks/record.py: config_key: case, model revision, preset parameters, scorer version,
data checksum, limit, and the scoring request: batch size, dtype, threads, device) equals the
key this run would give it. Every probe kind knows its data checksum and scorer version in
advance (probes/__init__.py), so every kind resumes. An unreadable record is reported and the
case runs again; so does an error record (kept beside, until the rerun succeeds).
"""
from __future__ import annotations

import warnings

from benchmarks import models as model_registry
from benchmarks.record import RecordError, config_key, make_config_key, read_record

_checksums: dict = {}


def planned_key(runner, case) -> str | None:
    """None when it cannot be known in advance (then the case runs)."""
    revision = model_registry.expected_revision(case.model)
    if revision is None:
        return None
    where = (case.probe.id, str(runner.lama_root))
    if where not in _checksums:
        try:
            _checksums[where] = case.probe.data_checksum(runner.lama_root)
        except Exception as exc:   # unreadable data: run the case, which reports it properly
            warnings.warn(f"--resume: cannot checksum {case.probe.id}'s data ({exc}); running it")
            _checksums[where] = None
    if _checksums[where] is None:
        return None
    return make_config_key(case.id, revision, case.preset.params, case.probe.scorer_version(),
                           _checksums[where], runner.limit_for(case.probe, case.preset), runner.request())


def finished_record(runner, case) -> dict | None:
    path = runner.results_dir / f"{case.id}.json"
    if not path.is_file():
        return None
    try:
        record = read_record(path)
    except RecordError as exc:
        warnings.warn(f"--resume: {exc}; running the case again")
        return None
    if record["status"] != "ok" or config_key(record) != planned_key(runner, case):
        return None
    return record


def stored_baseline(runner, case) -> dict | None:
    """The ok record of ``<model>__none__<probe>`` in the results folder, if readable."""
    path = runner.results_dir / f"{case.model.id}__none__{case.probe.id}.json"
    try:
        record = read_record(path) if path.is_file() else None
    except RecordError:
        return None
    return record if record and record["status"] == "ok" else None
