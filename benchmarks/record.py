"""One JSON record per case: the schema, its validation, and atomic writing and reading.

    path = write_record(results_dir, record)      # <results_dir>/<case_id>.json, atomically
    records = read_records(results_dir)           # validated; a bad file raises naming it
    key = config_key(record)                      # same key = same measurement (--resume)

This module imports only the standard library: the site builder uses it without torch.
Derived numbers (retention, ranks across cases) are never stored; readers compute them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

SCHEMA = "knowledge-cost/record"
SCHEMA_VERSION = 1
PART = r"[a-z0-9][a-z0-9.-]*"
CASE_ID = re.compile(rf"^{PART}__{PART}__{PART}$")

# key -> required sub-keys; every record of this version has all of them.
REQUIRED = {
    "schema": None, "schema_version": None, "case_id": None, "status": None,
    "model": ("id", "family", "arch", "source", "ref", "revision", "baseline"),
    "preset": ("id", "method", "params", "effect"),
    "probe": ("id", "kind", "version", "data_checksum", "limit"),
    "metrics": None, "n": None, "groups": None, "examples": None,
    "latency": ("ms_per_example", "tokens_per_s", "rounds", "probe_wall_s"),
    "memory": ("peak_rss_bytes", "weight_bytes"),
    "gate": ("floor", "verdict"),
    "environment": ("python", "torch", "transformers", "device", "git_sha"),
    "timestamps": ("started", "finished"),
}
# An error record says what failed; it has no measurements.
REQUIRED_ERROR = ("schema", "schema_version", "case_id", "status", "error", "model", "preset",
                  "probe", "environment", "timestamps")


TMP_PREFIX = ".tmp-"   # write_record's temp files; readers skip every hidden file


# Types of the fields readers compute with (the site, --resume): a record whose fields have
# other types is refused here, naming the field, instead of failing later in a reader.
_NUM, _TEXT, _OBJ = (int, float), str, dict
OK_TYPES = {
    "n": int, "metrics": _OBJ, "groups": _OBJ, "examples": list, "model.id": _TEXT,
    "model.revision": _TEXT, "preset.id": _TEXT, "preset.params": _OBJ, "preset.effect": _OBJ,
    "probe.id": _TEXT, "probe.version": _TEXT, "probe.data_checksum": _TEXT,
    "probe.limit": (int, type(None)), "latency.ms_per_example": _NUM, "memory.peak_rss_bytes": _NUM,
    "memory.weight_bytes": (*_NUM, type(None)), "gate.verdict": _TEXT, "gate.floor": (*_NUM, type(None)),
    "timestamps.started": _TEXT, "timestamps.finished": _TEXT, "environment": _OBJ,
}
ERROR_TYPES = {"error": _OBJ, "error.type": _TEXT, "error.message": _TEXT, "error.phase": _TEXT,
               "model": _OBJ, "model.id": _TEXT, "preset": _OBJ, "probe": _OBJ,
               "environment": _OBJ, "timestamps": _OBJ, "timestamps.finished": _TEXT}


def _check_types(record: dict, types: dict, source: str) -> None:
    for dotted, want in types.items():
        value = record
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise RecordError(f"{source}: missing field(s) {dotted}")
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, want):
            raise RecordError(f"{source}: field {dotted} has the wrong type ({type(value).__name__})")
    if record["status"] == "ok":
        if record["n"] < 1 or record["n"] != len(record["examples"]):
            raise RecordError(f"{source}: n={record['n']} but {len(record['examples'])} examples")
        for name, m in record["metrics"].items():
            if not (isinstance(m, dict) and isinstance(m.get("value"), _NUM)
                    and not isinstance(m.get("value"), bool)):
                raise RecordError(f"{source}: metric {name} has no numeric value")
        for i, e in enumerate(record["examples"]):
            if not isinstance(e, dict) or not isinstance(e.get("uid"), str):
                raise RecordError(f"{source}: example {i} has no text uid")


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and the problem."""


def check_case_id(case_id: str) -> str:
    """Case ids become file names: only [a-z0-9.-] parts joined by '__', so no path can escape."""
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):   # `$` allows a final \n
        raise RecordError(f"invalid case id {case_id!r}: expected <model>__<preset>__<probe> "
                          "with parts of [a-z0-9.-]")
    return case_id


def validate(record: dict, source: str = "<record>") -> dict:
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record must be a JSON object")
    if record.get("schema") != SCHEMA:
        raise RecordError(f"{source}: not a knowledge-cost record (schema={record.get('schema')!r})")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(f"{source}: unknown schema_version {record.get('schema_version')!r}; this "
                          f"version reads {SCHEMA_VERSION}. Re-run the case or upgrade the tool.")
    try:
        check_case_id(record.get("case_id"))
    except RecordError as exc:
        raise RecordError(f"{source}: {exc}") from None
    if record.get("status") == "error":
        missing = [k for k in REQUIRED_ERROR if k not in record]
        if not missing:
            _check_types(record, ERROR_TYPES, source)
    elif record.get("status") == "ok":
        missing = []
        for key, subkeys in REQUIRED.items():
            if key not in record:
                missing.append(key)
            elif subkeys:
                if not isinstance(record[key], dict):
                    missing.append(key)
                else:
                    missing += [f"{key}.{s}" for s in subkeys if s not in record[key]]
        if not missing and not record["n"]:
            raise RecordError(f"{source}: n is 0: the probe scored nothing")
        if not missing:
            _check_types(record, OK_TYPES, source)
    else:
        raise RecordError(f"{source}: status must be 'ok' or 'error', not {record.get('status')!r}")
    if missing:
        raise RecordError(f"{source}: missing field(s) {', '.join(missing)}")
    return record


def write_record(results_dir: Path, record: dict) -> Path:
    """Validate, then write atomically (temp file in the same folder, fsync, rename)."""
    validate(record)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{check_case_id(record['case_id'])}.json"
    # Unique per writer (pid + random), hidden and not *.json: a temp file left by a killed
    # process is never read as a record, and two workers writing one case never share a temp.
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=f"{TMP_PREFIX}{path.stem}.{os.getpid()}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: unreadable record ({exc})") from None
    return validate(record, str(path))


def read_records(results_dir: Path) -> list[dict]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RecordError(f"{results_dir}: no such results folder")
    return [read_record(p) for p in sorted(results_dir.glob("*.json")) if not p.name.startswith(".")]


# -- resume ---------------------------------------------------------------------------------
def make_config_key(case_id: str, model_revision: str, preset_params, probe_version: str,
                    data_checksum: str, limit: int | None) -> str:
    """What makes two runs of a case the same measurement: the case (model, preset and probe
    ids), the model's weights (revision or checksum), the preset's parameters, the probe's
    scoring version, the exact data (checksum of the files read) and the per-relation limit.
    Environment and timings are not part of it: a rerun elsewhere measures the same thing."""
    blob = json.dumps([case_id, model_revision, preset_params, probe_version, data_checksum, limit],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_key(record: dict) -> str:
    """The configuration key of a validated record (schema v1: computed from its fields, not stored)."""
    return make_config_key(record["case_id"], record["model"].get("revision"),
                           record["preset"].get("params"), record["probe"].get("version"),
                           record["probe"].get("data_checksum"), record["probe"].get("limit"))


def read_latest(folders) -> dict[str, dict]:
    """Several results folders (e.g. one per machine or shard) merged: case id -> its latest
    record by ``timestamps.finished``. Every file is validated; a bad one raises naming it."""
    latest: dict[str, dict] = {}
    for folder in folders:
        for rec in read_records(folder):
            cur = latest.get(rec["case_id"])
            if cur is None or rec["timestamps"]["finished"] >= cur["timestamps"]["finished"]:
                latest[rec["case_id"]] = rec
    return latest
