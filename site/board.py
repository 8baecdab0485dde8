"""The leaderboard's numbers: records in, rows, cells, retention and flips out (stdlib only).

    table = Board(records)          # records: {case_id: record}, as merged by build.merge()

Generic over metrics: a probe's main metric is ``probe.main_metric`` (LAMA: p_at_1), its
direction is the metric's ``higher_is_better``. Retention is compressed / baseline for a
higher-is-better metric and baseline / compressed for a lower-is-better one (perplexity), so
1.0 always means "kept everything" and below 1 means "lost". Where both records carry per-fact
correctness (LAMA ranks, ability ``correct``), retention is paired on the facts both scored and
the facts lost and gained are counted, with a one-sided exact McNemar p.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import derive  # noqa: E402

KNOWLEDGE_KINDS = ("lama",)
ABILITY_KINDS = ("ability", "perplexity")
# Display order of known probes; unknown ones follow by name within their kind.
PROBE_ORDER = ("trex", "google-re", "conceptnet", "squad", "fact-trained", "fact-heldout",
               "wikitext-2", "lambada", "hellaswag", "arc-easy", "arc-challenge", "boolq", "piqa",
               "winogrande", "triviaqa", "nq-open")
# Method order in the default sort: the baseline, pruning, quantization, then anything else.
METHOD_ORDER = ("none", "global-magnitude")


def main_metric(rec: dict) -> str:
    return rec["probe"].get("main_metric") or ("p_at_1" if rec["probe"]["kind"] == "lama"
                                               else next(iter(rec["metrics"])))


def correctness(rec: dict) -> dict[str, bool] | None:
    """Per-fact correctness under the record's gate protocol (benchmarks/derive.py)."""
    return derive.correctness(rec, protocol_of(rec))


def protocol_of(rec: dict) -> str:
    return (rec.get("gate") or {}).get("protocol") or derive.DEFAULT_PROTOCOL


def error_text(rec: dict) -> str:
    """An error record's reason, whether ``error`` is {"type", "message"} or a string."""
    err = rec.get("error")
    if isinstance(err, dict):
        kind, msg = err.get("type"), err.get("message")
        return f"{kind}: {msg}" if kind and msg else str(kind or msg or "unknown error")
    return str(err) if err else "failed without a reason"


NO_COMPARISON = {"retention": None, "paired": False, "lost": None, "gained": None, "p": None,
                 "ci": None, "shared": None, "kept": None, "comparison": None}


def compare(base: dict | None, rec: dict) -> dict:
    """Retention of ``rec`` against its baseline record, with what supports it: one call to
    benchmarks/derive.py, the derivation the gate and the report use."""
    gate = rec.get("gate") or {}
    c = derive.compare(base, rec, gate.get("floor"), protocol_of(rec))
    return {"retention": c.retention, "paired": c.paired is not None, "lost": c.lost,
            "gained": c.gained, "p": c.p, "ci": c.ci, "shared": c.n_shared, "kept": c.kept,
            "derived_verdict": c.verdict, "reason": c.reason, "comparison": c}


def probe_sort(pid: str):
    known = {p: i for i, p in enumerate(PROBE_ORDER)}
    return (known.get(pid, len(known)), pid)


def preset_sort(preset: dict):
    """Baseline first, then methods in a sensible order, sparsity up, bits down, then by id."""
    pid, method = preset["id"], preset.get("method") or ""
    eff = preset.get("effect") or {}
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    bits = preset.get("bits") or eff.get("bits") or 0
    return (pid != "none", rank, method, eff.get("sparsity") or 0.0, -bits, pid)


def pooled_retention(cells):
    """Knowledge retention of a row: facts right after compression / facts right before, pooled
    over its rated LAMA cells (benchmarks/derive.py: pooled)."""
    return derive.pooled([c["comparison"] for c in cells if c.get("comparison")])[0]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


class Board:
    """All derived tables of one site build."""

    def __init__(self, records: dict[str, dict]):
        self.records = records
        self.probes = {"knowledge": [], "ability": []}
        self.models: dict[str, dict] = {}
        rows: dict[tuple, dict] = {}
        # A probe's column kind comes from its records that ran (an error record may be sparse).
        kinds = {}
        for case_id, rec in sorted(records.items(), key=lambda kv: kv[1]["status"] == "ok"):
            kinds[case_id.split("__")[2]] = ("knowledge" if rec["probe"].get("kind") in KNOWLEDGE_KINDS
                                             else "ability")
        for case_id, rec in sorted(records.items()):
            model_key, preset_key, probe_key = case_id.split("__")
            kind = kinds[probe_key]
            if probe_key not in self.probes[kind]:
                self.probes[kind].append(probe_key)
            self.models.setdefault(model_key, {"key": model_key, **rec["model"]})
            row = rows.setdefault((model_key, preset_key), self._row(model_key, preset_key, rec))
            if row["preset_info"].get("effect") is None and rec.get("status") == "ok":
                row["preset_info"] = rec["preset"]
            row["cells"][probe_key] = self._cell(case_id, rec, kind)
        for kind in self.probes:
            self.probes[kind].sort(key=probe_sort)
        for row in rows.values():
            self._summarise(row)
        self.rows = sorted(rows.values(), key=lambda r: (r["model"], preset_sort(r["preset_info"])))

    @staticmethod
    def _row(model_key, preset_key, rec):
        p = rec["preset"]
        eff = p.get("effect") or {}
        return {"model": model_key, "preset": preset_key, "model_info": rec["model"],
                "preset_info": p, "baseline": preset_key == "none", "cells": {},
                "family": rec["model"].get("family"), "arch": rec["model"].get("arch"),
                "method": p.get("method") or "", "bits": p.get("bits") or eff.get("bits"),
                "sparsity": eff.get("sparsity"), "scope": (p.get("params") or {}).get("scope")}

    def _cell(self, case_id, rec, kind):
        model_key, preset_key, probe_key = case_id.split("__")
        cell = {"case_id": case_id, "status": rec["status"], "kind": kind,
                "probe_kind": rec["probe"].get("kind")}
        if rec["status"] != "ok":
            cell["error"] = error_text(rec)
            return cell
        metric = main_metric(rec)
        m = rec["metrics"][metric]
        cell.update(metric=metric, value=m["value"], stderr=m.get("stderr"), n=rec["n"],
                    higher_is_better=m.get("higher_is_better", True),
                    limit=rec["probe"].get("limit"), verdict=(rec.get("gate") or {}).get("verdict"),
                    latency=rec["latency"]["ms_per_example"], tokens_per_s=rec["latency"]["tokens_per_s"],
                    rss=rec["memory"]["peak_rss_bytes"], weight_bytes=rec["memory"]["weight_bytes"])
        if rec["probe"]["kind"] == "lama" and metric == "p_at_1":
            cell["bits"] = knowledge_bits(rec)
        base = None if preset_key == "none" else self.records.get(f"{model_key}__none__{probe_key}")
        cell.update(compare(base, rec) if base is not None else NO_COMPARISON)
        if preset_key != "none" and base is None:
            cell["no_baseline"] = True
        return cell

    @staticmethod
    def _summarise(row):
        ok = [c for c in row["cells"].values() if c["status"] == "ok"]
        row["weight_bytes"] = next((c["weight_bytes"] for c in ok), None)
        if row["weight_bytes"] is None:
            row["weight_bytes"] = (row["preset_info"].get("effect") or {}).get("weight_bytes")
        know = [c for c in ok if c["kind"] == "knowledge"]
        row["latency"] = next((c["latency"] for c in know or ok), None)
        row["rss"] = max((c["rss"] for c in ok), default=None)
        row["knowledge_retention"] = pooled_retention([c for c in ok if c["kind"] == "knowledge"])
        row["ability_retention"] = mean(c["retention"] for c in ok if c["kind"] == "ability")
        row["failed"] = sum(c["status"] != "ok" for c in row["cells"].values())

    def glance(self, threshold=0.9):
        """Per model: the most compressed preset keeping >= threshold of its facts (fewest weight
        bytes, then most sparsity), and the smallest preset tried with what it keeps."""
        out = []
        for key in self.models:
            rows = [r for r in self.model_rows(key) if not r["baseline"]
                    and r["knowledge_retention"] is not None and r["weight_bytes"]]
            squeeze = lambda r: (r["weight_bytes"], -(r["sparsity"] or 0), -r["knowledge_retention"])
            keeps = sorted((r for r in rows if r["knowledge_retention"] >= threshold), key=squeeze)
            base = next((r for r in self.model_rows(key) if r["baseline"]), None)
            out.append({"model": key, "name": self.models[key].get("id", key), "base": base,
                        "keeps": keeps[0] if keeps else None,
                        "smallest": min(rows, key=squeeze) if rows else None})
        return out

    # -- per-model and per-case views -------------------------------------------------------
    def model_rows(self, model_key):
        return [r for r in self.rows if r["model"] == model_key]

    def relation_heat(self, model_key, probe_key):
        """{relation: {preset: (retention, n)}} from per-fact correctness, paired per relation."""
        base = self.records.get(f"{model_key}__none__{probe_key}")
        if base is None or base.get("status") != "ok" or not correctness(base):
            return None, []
        b_c = correctness(base)
        groups = {e["uid"]: e.get("group") for e in base["examples"]}
        presets, heat = [], {}
        for row in self.model_rows(model_key):
            rec = self.records.get(f"{model_key}__{row['preset']}__{probe_key}")
            if row["baseline"] or rec is None or rec["status"] != "ok" or not correctness(rec):
                continue
            presets.append(row["preset"])
            r_c = correctness(rec)
            for rel in sorted({g for g in groups.values() if g}):
                keys = {u for u, g in groups.items() if g == rel} & r_c.keys()
                if not keys:
                    continue
                b = sum(b_c[k] for k in keys)
                c = sum(r_c[k] for k in keys)
                heat.setdefault(rel, {"base": b / len(keys), "n": len(keys)})[row["preset"]] = (
                    c / b if b else None)
        return heat, presets

    def facts(self, case_id):
        """Facts the compressed model lost and gained against its baseline, with both answers."""
        model_key, preset_key, probe_key = case_id.split("__")
        rec, base = self.records[case_id], self.records.get(f"{model_key}__none__{probe_key}")
        if preset_key == "none" or base is None or base["status"] != "ok" or rec["status"] != "ok":
            return None
        b_c, r_c = correctness(base), correctness(rec)
        if not b_c or not r_c:
            return None
        b_ex = {e["uid"]: e for e in base["examples"]}
        out = []
        for e in rec["examples"]:
            u = e["uid"]
            if u in b_c and u in r_c and b_c[u] != r_c[u]:
                be = b_ex[u]
                out.append({"uid": u, "group": e.get("group"), "text": e.get("text", ""),
                            "gold": e.get("gold", ""), "change": "lost" if b_c[u] else "gained",
                            "base_pred": be.get("prediction", ""), "base_rank": be.get("rank"),
                            "pred": e.get("prediction", ""), "rank": e.get("rank")})
        out.sort(key=lambda f: (f["change"] != "lost", f["group"] or "", f["uid"]))
        return out


def _channel_bits(acc: float, k: int) -> float:
    """Information (bits) per fact of a K-ary symmetric channel with accuracy ``acc``: what a
    model answering from K candidates with that P@1 reveals about the gold. 0 at chance."""
    if k < 2 or acc <= 1 / k:
        return 0.0
    bits = math.log2(k) + acc * math.log2(acc)
    if acc < 1:
        bits += (1 - acc) * math.log2((1 - acc) / (k - 1))
    return bits


def knowledge_bits(rec: dict) -> float | None:
    """Bits of knowledge a record shows: sum over relations of n * I(P@1, candidate count)."""
    counts = rec["probe"].get("candidate_counts")
    if not counts:
        return None
    return sum(g["n"] * _channel_bits(g["p_at_1"], counts[name])
               for name, g in rec["groups"].items() if name in counts)


def relation_types(lama_dir: str | None = None) -> dict[str, dict] | None:
    """LAMA relation labels and types (1-1, N-1, N-M) from $KCB_LAMA_DIR/relations.jsonl."""
    root = lama_dir or os.environ.get("KCB_LAMA_DIR")
    path = Path(root) / "relations.jsonl" if root else None
    if path is None or not path.is_file():
        return None
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["relation"]] = {"label": r.get("label", ""), "type": r.get("type", ""),
                                  "template": r.get("template", "")}
    return out
