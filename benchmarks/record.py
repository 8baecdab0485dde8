"""One JSON record per case: its layout, the one validator every reader trusts, atomic writing,
and merging results folders. Standard library only: the site builder uses it without torch.

    record = ok_record(case_id=..., model=..., ...)   # the layout, built in one place
    path = write_record(results_dir, record)          # <results_dir>/<case_id>.json, atomically
    merged = merge_folders([folder, ...])             # latest ok record per case, newer failures,
                                                      # refused files named with their reason
    key = config_key(record)                          # same key = same measurement (--resume)

Files: an ok record is ``<case_id>.json``; an error record is ``<case_id>.error.json``, beside
the last good one, so a failed rerun never destroys a measurement (a later ok run removes it).
A record that passes ``validate`` can be read by every consumer (the runner's --resume, the gate,
the report, the site) without an exception; one that fails is refused naming the file and the
field. Derived numbers (retention, intervals, verdicts) are computed by benchmarks/derive.py.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from probes.storage import atomic_write   # standard library only, like this module

SCHEMA = "knowledge-cost/record"
SCHEMA_VERSION = 2   # 2: scorer fields (`scoring`), per-kind scorer versions, error files
PART = r"[a-z0-9][a-z0-9.-]*"
CASE_ID = re.compile(rf"^{PART}__{PART}__{PART}$")
ERROR_SUFFIX = ".error.json"
KINDS = ("lama", "ability", "perplexity")
VERDICTS = ("baseline", "pass", "fail", "recorded", "too-few-facts", "degenerate-baseline",
            "no-baseline", "mismatched-baseline", "error", "no-signal")
PROTOCOLS = ("lenient", "open")


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and the problem."""


def check_case_id(case_id: str) -> str:
    """Case ids become file names: only [a-z0-9.-] parts joined by '__', so no path can escape."""
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):   # `$` allows a final \n
        raise RecordError(f"invalid case id {case_id!r}: expected <model>__<preset>__<probe> "
                          "with parts of [a-z0-9.-]")
    return case_id


# -- the layout --------------------------------------------------------------------------------
def ok_record(*, case_id: str, model: dict, preset: dict, effect: dict, probe: dict, result,
              scoring: dict, latency: dict, memory: dict, gate: dict, environment: dict,
              started: str, finished: str) -> dict:
    """The record of a case that ran. ``result`` is the probe's ProbeResult; ``probe`` has the
    probe spec's id, kind, main metric and the run's limit; ``result.meta`` adds the scorer's
    version, data checksum and what the probe says about its data."""
    meta = dict(result.meta)
    meta.pop("scoring", None)
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": case_id, "status": "ok",
        "model": model, "preset": {**preset, "effect": effect},
        "probe": {**{k: v for k, v in meta.items() if k not in ("limit",)}, **probe},
        "scoring": scoring, "metrics": result.metrics, "n": result.n, "groups": result.groups,
        "examples": result.examples, "latency": latency, "memory": memory, "gate": gate,
        "environment": environment, "timestamps": {"started": started, "finished": finished},
    }


def error_record(*, case_id: str, model: dict, preset: dict, probe: dict, error: dict,
                 environment: dict, started: str, finished: str) -> dict:
    """The record of a case that failed for a reason other than its gate: what failed, where."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": case_id,
            "status": "error", "error": error, "model": model, "preset": preset, "probe": probe,
            "environment": environment, "timestamps": {"started": started, "finished": finished}}


# -- the validator -----------------------------------------------------------------------------
_NUM, _TEXT, _INT, _NONE = (int, float), str, int, type(None)


def _get(record, dotted):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _is(value, want) -> bool:
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool):     # bool is an int to Python, never a count or a number here
        return bool in wants
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, want)


# Every field a reader uses, with its type. Nested dicts of free content (params, effect,
# environment) are checked where readers look inside them.
OK_FIELDS = {
    "model": dict, "model.id": _TEXT, "model.family": _TEXT, "model.arch": _TEXT,
    "model.source": _TEXT, "model.ref": _TEXT, "model.revision": _TEXT, "model.baseline": _TEXT,
    "preset": dict, "preset.id": _TEXT, "preset.method": _TEXT, "preset.params": dict,
    "preset.bits": (_INT, _NONE), "preset.effect": dict,
    "probe": dict, "probe.id": _TEXT, "probe.kind": _TEXT, "probe.version": _TEXT,
    "probe.data_checksum": _TEXT, "probe.limit": (_INT, _NONE), "probe.main_metric": _TEXT,
    "scoring": dict, "scoring.batch_size": _INT, "scoring.requested_batch_size": (_INT, _NONE),
    "scoring.policy": _TEXT, "scoring.device": _TEXT,
    "scoring.padding_side": _TEXT, "scoring.dtype": _TEXT, "scoring.torch_threads": _INT,
    "scoring.attn_implementation": (_TEXT, _NONE),
    "metrics": dict, "n": _INT, "groups": dict, "examples": list,
    "latency": dict, "latency.ms_per_example": _NUM, "latency.tokens_per_s": _NUM,
    "latency.rounds": _INT, "latency.probe_wall_s": _NUM,
    "memory": dict, "memory.peak_rss_bytes": _NUM, "memory.weight_bytes": (*_NUM, _NONE),
    "gate": dict, "gate.floor": (*_NUM, _NONE), "gate.verdict": _TEXT,
    "environment": dict, "environment.python": _TEXT, "environment.torch": _TEXT,
    "environment.device": _TEXT, "environment.git_sha": _TEXT,
    "timestamps": dict, "timestamps.started": _TEXT, "timestamps.finished": _TEXT,
}
# Optional fields: when present, of this type.
OK_OPTIONAL = {
    "preset.effect.weight_bytes": (*_NUM, _NONE), "preset.effect.sparsity": (*_NUM, _NONE),
    "preset.effect.bits": (*_NUM, _NONE), "preset.effect.bits_per_weight": (*_NUM, _NONE),
    "preset.effect.compression_seconds": (*_NUM, _NONE), "preset.params.scope": (_TEXT, _NONE),
    "latency.facts_per_s": _NUM, "latency.workload": _TEXT, "memory.cuda_peak_bytes": (*_NUM, _NONE),
    "gate.retention": (*_NUM, _NONE), "gate.message": _TEXT, "gate.protocol": _TEXT,
    "gate.mcnemar_p": (*_NUM, _NONE), "gate.facts_lost": (_INT, _NONE),
    "gate.facts_gained": (_INT, _NONE), "gate.baseline_case": (_TEXT, _NONE),
    "gate.n_shared": (_INT, _NONE), "gate.baseline_limit": (_INT, _NONE),
    "probe.candidate_counts": dict, "probe.templates": dict, "model.params": (_INT, _NONE),
    "environment.transformers": (_TEXT, _NONE),
}
ERROR_FIELDS = {
    "error": dict, "error.type": _TEXT, "error.message": _TEXT, "error.phase": _TEXT,
    "model": dict, "model.id": _TEXT, "preset": dict, "preset.id": _TEXT, "probe": dict,
    "probe.id": _TEXT, "environment": dict, "timestamps": dict, "timestamps.started": _TEXT,
    "timestamps.finished": _TEXT,
}
ERROR_OPTIONAL = {"probe.kind": _TEXT, "probe.limit": (_INT, _NONE), "preset.method": _TEXT,
                  "model.revision": _TEXT}


def _check_fields(record, required: dict, optional: dict, source: str) -> None:
    missing = []
    for dotted, want in required.items():
        try:
            value = _get(record, dotted)
        except KeyError:
            missing.append(dotted)
            continue
        if not _is(value, want):
            raise RecordError(f"{source}: field {dotted} has the wrong type ({type(value).__name__})")
    if missing:
        raise RecordError(f"{source}: missing field(s) {', '.join(missing)}")
    for dotted, want in optional.items():
        try:
            value = _get(record, dotted)
        except KeyError:
            continue
        if not _is(value, want):
            raise RecordError(f"{source}: field {dotted} has the wrong type ({type(value).__name__})")


def _check_metric(name, m, source) -> None:
    if not (isinstance(m, dict) and _is(m.get("value"), _NUM)):
        raise RecordError(f"{source}: metric {name} has no numeric value")
    if "stderr" in m and not _is(m["stderr"], (*_NUM, _NONE)):
        raise RecordError(f"{source}: metric {name} has a non-numeric stderr")
    if "higher_is_better" in m and not isinstance(m["higher_is_better"], bool):
        raise RecordError(f"{source}: metric {name}.higher_is_better must be true or false")


# What each probe kind's examples must carry for the readers (paired statistics, case pages).
EXAMPLE_FIELDS = {
    "lama": {"uid": _TEXT, "group": _TEXT, "rank": _INT},
    "ability": {"uid": _TEXT},
    "perplexity": {"uid": _TEXT, "nll": _NUM, "tokens": _INT},
}
EXAMPLE_OPTIONAL = {"gold": (_TEXT, _NONE), "prediction": (_TEXT, _NONE), "text": (_TEXT, _NONE),
                    "correct": bool, "choice": _INT, "choices": list, "negated_rank": _INT,
                    "open": (dict, _NONE), "group": _TEXT, "mode": _TEXT, "nll": _NUM,
                    "tokens": _INT, "fact": _TEXT, "pattern": _INT}
# A window's mean NLL per token beyond this overflows its perplexity (e^709.8 is the largest
# float): such a value is not a measurement, and ratios of perplexities could not be taken.
MAX_NLL = 700.0
OPEN_FIELDS = {"correct": bool, "answer": (_TEXT, _NONE), "rank": (_INT, _NONE)}
# probe.templates: relation -> what the probe asked with (the site shows labels and types).
TEMPLATE_FIELDS = {"template": (_TEXT, _NONE), "causal_template": (_TEXT, _NONE),
                   "type": (_TEXT, _NONE), "label": (_TEXT, _NONE)}


def _check_probe_extras(probe: dict, source: str) -> None:
    for rel, t in (probe.get("templates") or {}).items():
        if not isinstance(t, dict):
            raise RecordError(f"{source}: probe.templates.{rel} is not an object")
        for key, want in TEMPLATE_FIELDS.items():
            if key in t and not _is(t[key], want):
                raise RecordError(f"{source}: field probe.templates.{rel}.{key} has the wrong type")
    for rel, k in (probe.get("candidate_counts") or {}).items():
        if not _is(k, _INT) or k < 1:
            raise RecordError(f"{source}: probe.candidate_counts.{rel} must be a positive count")


def _check_example(e: dict, i: int, kind: str, source: str) -> None:
    for key, t in EXAMPLE_FIELDS[kind].items():
        if key not in e or not _is(e[key], t):
            raise RecordError(f"{source}: example {i} lacks a valid {key}")
    for key, t in EXAMPLE_OPTIONAL.items():
        if key in e and not _is(e[key], t):
            raise RecordError(f"{source}: example {i} field {key} has the wrong type")
    if "nll" in e and "tokens" in e and not (e["tokens"] >= 1 and 0 <= e["nll"] <= MAX_NLL * e["tokens"]):
        raise RecordError(f"{source}: example {i} has nll {e['nll']!r} over {e['tokens']!r} tokens: "
                          f"a window's NLL is 0 to {MAX_NLL} nats per token")
    if "rank" in e and (not _is(e["rank"], _INT) or e["rank"] < 1):
        raise RecordError(f"{source}: example {i} has rank {e['rank']!r} (ranks start at 1)")
    if isinstance(e.get("open"), dict):
        for key, want in OPEN_FIELDS.items():
            if (key == "correct" and key not in e["open"]) or (key in e["open"] and not _is(e["open"][key], want)):
                raise RecordError(f"{source}: example {i} field open.{key} has the wrong type or is missing")
    # ParaRel (fact, pattern) and negated LAMA (negated_rank) examples are read per relation and
    # per outcome: they carry a relation and a rank or a correct flag.
    if ("fact" in e or "pattern" in e or "negated_rank" in e) and not (
            "group" in e and ("rank" in e or "correct" in e)):
        raise RecordError(f"{source}: example {i} has fact/pattern or negated_rank fields but "
                          "lacks its group and rank")


def _check_ok(record: dict, source: str) -> None:
    _check_fields(record, OK_FIELDS, OK_OPTIONAL, source)
    kind = record["probe"]["kind"]
    if kind not in KINDS:
        raise RecordError(f"{source}: probe.kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if record["gate"]["verdict"] not in VERDICTS:
        raise RecordError(f"{source}: gate.verdict {record['gate']['verdict']!r} is not one of "
                          f"{', '.join(VERDICTS)}")
    if record["n"] < 1:
        raise RecordError(f"{source}: n is {record['n']}: the probe scored nothing")
    if record["n"] != len(record["examples"]):
        raise RecordError(f"{source}: n={record['n']} but {len(record['examples'])} examples")
    if record["scoring"]["batch_size"] < 1 or record["scoring"]["torch_threads"] < 1:
        raise RecordError(f"{source}: scoring.batch_size and scoring.torch_threads must be positive")
    for name, m in record["metrics"].items():
        _check_metric(name, m, source)
    main = record["probe"]["main_metric"]
    if main not in record["metrics"]:
        raise RecordError(f"{source}: the main metric {main} is not among the metrics")
    if "stderr" not in record["metrics"][main]:
        raise RecordError(f"{source}: the main metric {main} has no stderr (null if undefined)")
    for g, row in record["groups"].items():
        if not (isinstance(row, dict) and _is(row.get("n"), _INT)):
            raise RecordError(f"{source}: group {g} has no count n")
        for k, v in row.items():
            if k != "n" and not _is(v, (*_NUM, _NONE)):
                raise RecordError(f"{source}: group {g}.{k} is not a number")
    _check_probe_extras(record["probe"], source)
    seen = set()
    for i, e in enumerate(record["examples"]):
        if not isinstance(e, dict):
            raise RecordError(f"{source}: example {i} is not an object")
        _check_example(e, i, kind, source)
        if e["uid"] in seen:
            raise RecordError(f"{source}: example uid {e['uid']!r} repeats")
        seen.add(e["uid"])


def validate(record: dict, source: str = "<record>") -> dict:
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record must be a JSON object")
    if record.get("schema") != SCHEMA:
        raise RecordError(f"{source}: not a knowledge-cost record (schema={record.get('schema')!r})")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(f"{source}: unknown schema_version {record.get('schema_version')!r}; this "
                          f"version reads {SCHEMA_VERSION} (older records come from an older "
                          "scorer: re-run the case)")
    try:
        check_case_id(record.get("case_id"))
    except RecordError as exc:
        raise RecordError(f"{source}: {exc}") from None
    status = record.get("status")
    if status == "ok":
        _check_ok(record, source)
    elif status == "error":
        _check_fields(record, ERROR_FIELDS, ERROR_OPTIONAL, source)
    else:
        raise RecordError(f"{source}: status must be 'ok' or 'error', not {status!r}")
    model, preset, probe = record["case_id"].split("__")
    ids = (record["model"]["id"], record["preset"]["id"], record["probe"]["id"])
    if (preset, probe) != ids[1:]:
        raise RecordError(f"{source}: case id {record['case_id']} does not match its preset "
                          f"{ids[1]!r} and probe {ids[2]!r}")
    return record


# -- files -------------------------------------------------------------------------------------
def record_path(results_dir: Path, record: dict) -> Path:
    name = check_case_id(record["case_id"])
    return Path(results_dir) / (name + (ERROR_SUFFIX if record.get("status") == "error" else ".json"))


def write_record(results_dir: Path, record: dict) -> Path:
    """Validate, then write atomically. An ok record replaces ``<case>.json`` and removes an
    older ``<case>.error.json``; an error record goes beside the ok one, never over it."""
    validate(record)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = atomic_write(record_path(results_dir, record),
                            json.dumps(record, indent=1, sort_keys=True, allow_nan=False))
    except PermissionError as exc:
        raise RecordError(f"{results_dir}: cannot write records there ({exc.strerror}); choose "
                          "a writable folder with --results-dir") from None
    if record["status"] == "ok":
        (results_dir / (record["case_id"] + ERROR_SUFFIX)).unlink(missing_ok=True)
    return path


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"{path}: unreadable record ({exc})") from None
    record = validate(record, str(path))
    stem = Path(path).name
    expected = record["case_id"] + (ERROR_SUFFIX if record["status"] == "error" else ".json")
    if stem != expected:
        raise RecordError(f"{path}: holds {record['case_id']} ({record['status']}); its file must "
                          f"be named {expected}")
    return record


def record_files(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RecordError(f"{results_dir}: no such results folder")
    return [p for p in sorted(results_dir.glob("*.json")) if not p.name.startswith(".")]


def read_records(results_dir: Path) -> list[dict]:
    """Every record of one folder, validated; the first bad file raises naming it."""
    return [read_record(p) for p in record_files(results_dir)]


# -- merging folders ---------------------------------------------------------------------------
@dataclass
class Merged:
    """Several results folders (one per machine, shard or sitting) merged."""
    records: dict[str, dict] = field(default_factory=dict)      # case -> latest ok, else error
    newer_errors: dict[str, dict] = field(default_factory=dict)  # case -> error newer than its ok
    refused: list[str] = field(default_factory=list)            # "file: why" for each bad file
    replaced: dict[str, list[dict]] = field(default_factory=dict)  # case -> older ok records


def merge_folders(folders, strict: bool = False) -> Merged:
    """Latest ok record per case (by ``timestamps.finished``); an error record newer than it is
    kept beside it, never in its place. A bad file is refused and listed (or raises if strict)."""
    out = Merged()
    errors: dict[str, dict] = {}
    for folder in folders:
        for path in record_files(folder):
            try:
                rec = read_record(path)
            except RecordError as exc:
                if strict:
                    raise
                out.refused.append(str(exc))
                continue
            cid = rec["case_id"]
            if rec["status"] == "error":
                if cid not in errors or rec["timestamps"]["finished"] >= errors[cid]["timestamps"]["finished"]:
                    errors[cid] = rec
                continue
            cur = out.records.get(cid)
            if cur is None or rec["timestamps"]["finished"] >= cur["timestamps"]["finished"]:
                if cur is not None:
                    out.replaced.setdefault(cid, []).append(cur)
                out.records[cid] = rec
            else:
                out.replaced.setdefault(cid, []).append(rec)
    for cid, err in errors.items():
        ok = out.records.get(cid)
        if ok is None:
            out.records[cid] = err
        elif err["timestamps"]["finished"] > ok["timestamps"]["finished"]:
            out.newer_errors[cid] = err
    return out


def read_latest(folders) -> dict[str, dict]:
    """case id -> its latest ok record (else its latest error record); a bad file raises."""
    return merge_folders(folders, strict=True).records


# -- resume ------------------------------------------------------------------------------------
def make_config_key(case_id: str, model_revision: str, preset_params, probe_version: str,
                    data_checksum: str, limit: int | None, request: dict) -> str:
    """What makes two runs of a case the same measurement: the case (model, preset and probe
    ids), the model's weights (revision or checksum), the preset's parameters, the probe's
    scorer version, the exact data (checksum of the files read), the limit, and how it was asked
    to score (``request``: batch size, dtype, torch threads, device). What the scorer then chose
    (policy, padding) follows from these and the scorer version. Timings are not part of it."""
    blob = json.dumps([case_id, model_revision, preset_params, probe_version, data_checksum, limit,
                       request], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


REQUEST_KEYS = ("requested_batch_size", "dtype", "torch_threads", "device")


def config_key(record: dict) -> str:
    """The configuration key of a validated ok record (computed from its fields, not stored)."""
    request = {k: record["scoring"][k] for k in REQUEST_KEYS}
    return make_config_key(record["case_id"], record["model"]["revision"],
                           record["preset"]["params"], record["probe"]["version"],
                           record["probe"]["data_checksum"], record["probe"]["limit"], request)
