"""The leaderboard's table: records in, rows and cells out, every number from benchmarks/derive.py.

    board = Board(records, newer_errors)   # {case_id: record}, {case_id: newer error record}

A cell is one record: its verdict (derive.VERDICTS: pass, fail, recorded, too few facts, ...),
the preset's floor, the main metric with its stderr, retention against the model's baseline
with its paired interval, facts lost and gained with the McNemar p, and, for LAMA records that
carry it, the same under the strict (open-vocabulary) protocol. A row is one model under one
preset: its cells, knowledge and ability retention pooled over facts with their intervals
(derive.pooled), the latency of its main probe, true bits per weight, and flags for anything
a merge must not hide (mixed --limit, a newer failed run, a baseline that cannot be paired).
Records are validated (benchmarks/record.py) before they get here; free-form fields (preset
params, the measured effect) are read through ``num``/``text`` so a surprise never crashes.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import derive  # noqa: E402

KNOWLEDGE_KINDS = ("lama",)
# Display order of known probes; unknown ones follow by name within their kind.
PROBE_ORDER = ("trex", "google-re", "conceptnet", "squad", "fact-trained", "fact-heldout",
               "wikitext-2", "lambada", "hellaswag", "arc-easy", "arc-challenge", "boolq", "piqa",
               "winogrande", "triviaqa", "nq-open")
# The sweep order of methods: the baseline, unstructured pruning, structured pruning, then the
# quantizers; within a method by nominal amount (sparsity up), then bits down.
METHOD_ORDER = ("none", "global-magnitude", "magnitude", "wanda", "sparsegpt", "semi-structured",
                "structured-rows", "structured-heads", "dynamic-int8", "torchao", "bnb", "quanto",
                "gptq", "prune-quantize")
# A preset counts as faster only when its main probe's latency is at most this fraction of the
# baseline's: records hold the mean of 5 rounds with no spread (benchmarks/latency.py), and
# timings on a shared machine move by more than 10 % between runs.
FASTER = 0.8
# Stored within 1 % of the baseline's bytes, a preset runs the same dense matmuls (unstructured
# zeros are multiplied like any weight): a latency difference is timing noise, never a saving.
SAME_BYTES = 0.01


def num(x):
    """A finite number, or None (bool is not a number here)."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x \
        and abs(x) != float("inf") else None


def text(x, default=""):
    return x if isinstance(x, str) else default


def error_text(rec: dict) -> str:
    """An error record's reason, whether ``error`` is {"type", "message"} or a string."""
    err = rec.get("error")
    if isinstance(err, dict):
        kind, msg = text(err.get("type")), text(err.get("message"))
        return f"{kind}: {msg}" if kind and msg else kind or msg or "unknown error"
    return str(err) if err else "failed without a reason"


def protocol_of(rec: dict) -> str:
    p = (rec.get("gate") or {}).get("protocol")
    return p if p in derive.PROTOCOLS else derive.DEFAULT_PROTOCOL


def correctness(rec: dict, protocol: str | None = None) -> dict[str, bool] | None:
    """Per-fact correctness under the record's gate protocol (benchmarks/derive.py)."""
    return derive.correctness(rec, protocol or protocol_of(rec))


def probe_sort(pid: str):
    known = {p: i for i, p in enumerate(PROBE_ORDER)}
    return (known.get(pid, len(known)), pid)


PRUNING = METHOD_ORDER[:METHOD_ORDER.index("dynamic-int8")]


def preset_sort(preset: dict):
    """The sweep order: the baseline; pruning by method, then nominal amount up; quantization
    by bits down, then method; anything else (combinations, unknown methods) last, by id."""
    pid, method = text(preset.get("id")), text(preset.get("method"))
    params = preset.get("params") if isinstance(preset.get("params"), dict) else {}
    eff = preset.get("effect") if isinstance(preset.get("effect"), dict) else {}
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    amount = num(params.get("amount")) or num(eff.get("sparsity")) or 0.0
    bits = num(preset.get("bits")) or num(eff.get("bits")) or 0
    if pid == "none":
        return (0, 0, 0.0, 0, pid)
    if method in PRUNING:
        return (1, rank, amount, 0, pid)
    if rank < len(METHOD_ORDER) and method != "prune-quantize":
        return (2, -bits, rank, amount, pid)
    return (3, -bits, rank, amount, pid)


def _limit(value) -> str:
    return "all" if value is None else str(value)


def _comparison_fields(c: derive.Comparison) -> dict:
    return {"verdict": c.verdict, "floor": c.floor, "retention": c.retention, "ci": c.ci,
            "lost": c.lost, "gained": c.gained, "p": c.p, "shared": c.n_shared, "kept": c.kept,
            "reason": c.reason, "message": c.message, "paired": c.paired is not None,
            "comparison": c}


def _pooled(comparisons) -> dict:
    ret, ci, n = derive.pooled([c for c in comparisons if c is not None])
    return {"retention": ret, "ci": ci, "n": n}


class Board:
    """All derived tables of one site build."""

    def __init__(self, records: dict[str, dict], newer_errors: dict[str, dict] | None = None):
        self.records = records
        self.newer_errors = newer_errors or {}
        self.probes = {"knowledge": [], "ability": []}
        self.models: dict[str, dict] = {}
        # A probe's column kind comes from its records that ran (an error record may be sparse).
        self.kinds: dict[str, str] = {}
        for case_id, rec in sorted(records.items(), key=lambda kv: kv[1]["status"] == "ok"):
            k = rec["probe"].get("kind")
            self.kinds[case_id.split("__")[2]] = "knowledge" if k in KNOWLEDGE_KINDS else "ability"
        rows: dict[tuple, dict] = {}
        for case_id, rec in sorted(records.items(), key=lambda kv: (kv[1]["status"] != "ok", kv[0])):
            model_key, preset_key, probe_key = case_id.split("__")
            kind = self.kinds[probe_key]
            if probe_key not in self.probes[kind]:
                self.probes[kind].append(probe_key)
            self.models.setdefault(model_key, {**rec["model"], "key": model_key})
            row = rows.setdefault((model_key, preset_key), self._row(model_key, preset_key, rec))
            row["cells"][probe_key] = self._cell(case_id, rec, kind)
        for kind in self.probes:
            self.probes[kind].sort(key=probe_sort)
        self.probe_order = self.probes["knowledge"] + self.probes["ability"]
        self.main_probe = next(iter(self.probe_order), None)
        # One rank per preset id across models (a preset's records agree on its method and
        # parameters; if a stray one does not, the earliest place wins).
        keys: dict[str, tuple] = {}
        for r in rows.values():
            k = preset_sort(r["preset_info"])
            keys[r["preset"]] = min(keys.get(r["preset"], k), k)
        self.preset_rank = {pid: i for i, pid in enumerate(sorted(keys, key=keys.get))}
        for row in rows.values():
            self._summarise(row)
        self.rows = sorted(rows.values(), key=lambda r: (r["model"], self.preset_rank[r["preset"]]))
        self.baselines = {r["model"]: r for r in self.rows if r["baseline"]}

    @staticmethod
    def _row(model_key, preset_key, rec):
        p = rec["preset"]
        params = p.get("params") if isinstance(p.get("params"), dict) else {}
        return {"model": model_key, "preset": preset_key, "model_info": rec["model"],
                "preset_info": p, "baseline": preset_key == "none", "cells": {},
                "family": text(rec["model"].get("family")), "arch": text(rec["model"].get("arch")),
                "method": text(p.get("method")), "scope": text(params.get("scope")) or None}

    def _cell(self, case_id, rec, kind):
        model_key, preset_key, probe_key = case_id.split("__")
        finished = text((rec.get("timestamps") or {}).get("finished"))
        cell = {"case_id": case_id, "status": rec["status"], "kind": kind, "probe": probe_key,
                "probe_kind": text(rec["probe"].get("kind")), "finished": finished,
                "limit": num(rec["probe"].get("limit")), "open": None}
        newer = self.newer_errors.get(case_id)
        if newer is not None:
            cell["newer_error"] = {"text": error_text(newer), "case_id": case_id,
                                   "finished": text(newer["timestamps"].get("finished"))}
        if rec["status"] != "ok":
            cell.update(verdict="error", error=error_text(rec))
            return cell
        base = None if preset_key == "none" else self.records.get(f"{model_key}__none__{probe_key}")
        gate = rec["gate"]
        c = derive.compare(base, rec, gate.get("floor"), protocol_of(rec))
        m = rec["metrics"].get(c.metric) or rec["metrics"][rec["probe"]["main_metric"]]
        cell.update(metric=c.metric, value=m["value"], stderr=num(m.get("stderr")), n=rec["n"],
                    higher_is_better=m.get("higher_is_better", True) is not False,
                    protocol=c.protocol, latency=rec["latency"]["ms_per_example"],
                    tokens_per_s=rec["latency"]["tokens_per_s"],
                    rss=rec["memory"]["peak_rss_bytes"], weight_bytes=rec["memory"]["weight_bytes"],
                    **_comparison_fields(c))
        if rec["probe"]["kind"] == "lama":
            cell["bits_shown"] = knowledge_bits(rec)
        if rec["probe"]["kind"] == "lama" and derive.correctness(rec, "open") is not None:
            # The strict protocol where the record has it (a baseline without it gives
            # too-few-facts, with the reason); records scored before it have no "open".
            o = derive.compare(base, rec, gate.get("floor"), "open")
            strict = rec["metrics"].get("open_p_at_1")
            cell["open"] = {"value": num(strict.get("value")) if isinstance(strict, dict) else None,
                            **_comparison_fields(o)}
        return cell

    def _summarise(self, row):
        cells = [row["cells"][p] for p in sorted(row["cells"], key=probe_sort)]
        ok = [c for c in cells if c["status"] == "ok"]
        eff = row["preset_info"].get("effect") if isinstance(row["preset_info"].get("effect"), dict) else {}
        # Measurements come from records that ran; an error record's preset is what was asked.
        row["weight_bytes"] = next((c["weight_bytes"] for c in ok if c["weight_bytes"]), None) \
            or (num(eff.get("weight_bytes")) if ok else None)
        params = num(row["model_info"].get("params"))
        # True bits per weight: every stored byte (embeddings, scales, the fp32 parts a
        # quantizer leaves) over every parameter, so an fp32 embedding is not hidden.
        row["bits_per_weight"] = (8 * row["weight_bytes"] / params
                                  if row["weight_bytes"] and params and params > 0 else None)
        row["bits"] = num(row["preset_info"].get("bits")) or num(eff.get("bits"))
        row["sparsity"] = num(eff.get("sparsity")) if ok else None
        main = row["cells"].get(self.main_probe)
        lat = main if main is not None and main["status"] == "ok" else next(iter(ok), None)
        row["latency"] = lat["latency"] if lat else None
        row["latency_probe"] = lat["probe"] if lat else None
        row["rss"] = max((c["rss"] for c in ok), default=None)
        know = [c for c in ok if c["kind"] == "knowledge"]
        row["knowledge"] = _pooled(c["comparison"] for c in know)
        opened = [c["open"] for c in know if c["open"]]
        row["knowledge_open"] = _pooled(o["comparison"] for o in opened) if opened else None
        row["ability"] = _pooled(c["comparison"] for c in ok if c["probe_kind"] == "ability")
        ppl = next((c for c in ok if c["probe_kind"] == "perplexity"), None)
        row["perplexity"] = {"retention": ppl["retention"], "ci": ppl["ci"], "probe": ppl["probe"]} \
            if ppl else None
        row["knowledge_retention"] = row["knowledge"]["retention"]
        row["failed"] = sum(c["status"] != "ok" for c in cells)
        row["fails"] = [c["probe"] for c in ok if c["verdict"] == "fail"]
        row["verdict"] = ("baseline" if row["baseline"] else "fail" if row["fails"] else
                          "pass" if any(c["verdict"] == "pass" for c in ok) else
                          "recorded" if any(c["verdict"] == "recorded" for c in ok) else
                          "error" if not ok else ok[0]["verdict"])
        row["limits"] = sorted({c["limit"] for c in cells if c["limit"] is not None})
        flags = []
        for c in ok:
            limits = c["comparison"].extra.get("limits") if c.get("comparison") else None
            if limits:   # nested selections: paired on the examples both scored (derive.py)
                flags.append(f"{c['probe']} at --limit {_limit(limits[0])}, its baseline at "
                             f"{_limit(limits[1])}: paired on the {c['comparison'].n_shared} "
                             "examples both scored")
        flags += [f"{c['probe']}: a newer run failed on {c['newer_error']['finished']}"
                  for c in cells if c.get("newer_error")]
        flags += [f"{c['probe']}: {c['reason']}" for c in ok if c["verdict"] == "mismatched-baseline"]
        row["flags"] = flags

    # -- per-model views --------------------------------------------------------------------
    def model_rows(self, model_key):
        return [r for r in self.rows if r["model"] == model_key]

    def cell(self, case_id):
        model_key, preset_key, probe_key = case_id.split("__")
        row = next(r for r in self.rows if (r["model"], r["preset"]) == (model_key, preset_key))
        return row, row["cells"][probe_key]

    def faster(self, row) -> float | None:
        """Baseline latency / this row's, when both were timed on the same probe on the same
        kind of machine (device, CPU count, threads, platform); None otherwise."""
        base = self.baselines.get(row["model"])
        if not base or row["baseline"] or not row["latency"] or not base["latency"] \
                or base["latency_probe"] != row["latency_probe"]:
            return None
        machine = [self._machine(r["cells"][r["latency_probe"]]["case_id"]) for r in (base, row)]
        return base["latency"] / row["latency"] if machine[0] == machine[1] else None

    def _machine(self, case_id):
        env = self.records[case_id].get("environment") or {}
        return tuple(str(env.get(k)) for k in ("device", "cpu_count", "torch_threads", "platform"))


def _channel_bits(acc: float, k: int) -> float:
    """Information (bits) per fact of a K-ary symmetric channel with accuracy ``acc``: what a
    model answering from K candidates with that P@1 reveals about the gold. 0 at chance."""
    if k < 2 or acc <= 1 / k:
        return 0.0
    acc = min(acc, 1.0)
    bits = math.log2(k) + acc * math.log2(acc)
    if acc < 1:
        bits += (1 - acc) * math.log2((1 - acc) / (k - 1))
    return bits


def knowledge_bits(rec: dict) -> float | None:
    """Bits of knowledge a record shows: sum over relations of n * I(P@1, candidate count)."""
    counts = rec.get("probe", {}).get("candidate_counts")
    groups = rec.get("groups")
    if not isinstance(counts, dict) or not counts or not isinstance(groups, dict):
        return None
    total, seen = 0.0, False
    for name, g in groups.items():
        k, acc, n = num(counts.get(name)), num(g.get("p_at_1")), num(g.get("n"))
        if k is None or acc is None or n is None:
            continue
        total += n * _channel_bits(acc, int(k))
        seen = True
    return total if seen else None
