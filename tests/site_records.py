"""Records for the site tests: every shape the leaderboard must render, written in code.

    folder = write_site_records(tmp_path)   # LAMA, ability, perplexity, error and markup records

LAMA records follow benchmarks/record.py; ability and perplexity records follow the contract of
the lm-eval probes (probe.main_metric, metrics without "macro", examples with "correct" or none).
Rated cells need at least derive.MIN_FACTS paired facts, derive.MIN_BASELINE_CORRECT of them
right at the baseline; ``squad`` here is deliberately smaller (too few facts).
"""
from __future__ import annotations

import copy
import math

from benchmarks.record import SCHEMA, SCHEMA_VERSION, write_record
from tests.test_record import make_record

XSS = "<script>window.__xss = 1</script>"


def lama(model, preset, ranks, *, probe="trex", method=None, sparsity=None, bits=None,
         weight_bytes=1000, name=None, finished="2026-01-01T00:00:01+00:00", floor=None,
         limit=2, params=None, opened=None):
    """A LAMA record: ``ranks`` per fact (1 = right), alternating relations P19/P20. ``opened``:
    per-fact strict-protocol correctness (the open-vocabulary answer), or None (older records)."""
    ex = [{"uid": f"{probe}/P19/{i}", "group": "P19" if i % 2 else "P20", "gold": f"gold{i}",
           "prediction": f"gold{i}" if r == 1 else f"other{i}", "rank": r,
           "text": f"Person {i} was born in [Y] .", "mode": "slot-last"} for i, r in enumerate(ranks)]
    n = len(ranks)
    p1 = sum(r == 1 for r in ranks) / n
    rec = make_record(f"{model}__{preset}__{probe}", examples=ex, n=n,
                      groups={"P19": {"n": n // 2, "p_at_1": p1}, "P20": {"n": n - n // 2, "p_at_1": p1}})
    rec["model"].update(id=name or model, params=250 if weight_bytes is None else 250)
    rec["probe"].update(id=probe, limit=limit, candidate_counts={"P19": 8, "P20": 4},
                        templates={"P19": {"template": "[X] was born in [Y] .", "type": "N-1",
                                           "label": "place of birth"},
                                   "P20": {"template": "[X] died in [Y] .", "type": "N-1"}})
    rec["metrics"]["p_at_1"] = {"value": p1, "stderr": (p1 * (1 - p1) / n) ** 0.5,
                                "higher_is_better": True}
    if opened is not None:
        for e, ok in zip(ex, opened):
            e["open"] = {"answer": e["gold"] if ok else "x", "correct": ok, "rank": 1 if ok else 5}
        o = sum(opened) / n
        rec["metrics"]["open_p_at_1"] = {"value": o, "stderr": (o * (1 - o) / n) ** 0.5,
                                         "higher_is_better": True}
    rec["preset"].update(id=preset, method=method or ("none" if preset == "none" else "global-magnitude"),
                         bits=bits, params=params if params is not None else
                         ({"amount": sparsity, "scope": "linear"} if sparsity else {}))
    rec["preset"]["effect"].update(sparsity=sparsity, bits=bits, weight_bytes=weight_bytes)
    if sparsity:
        rec["preset"]["effect"].update(zeros=int(200 * sparsity), params_in_scope=200)
    rec["memory"]["weight_bytes"] = weight_bytes
    rec["timestamps"]["finished"] = finished
    rec["environment"]["git_sha"] = "7762415e7a99"
    if preset != "none":
        rec["gate"] = {"floor": floor, "verdict": "recorded" if floor is None else "pass",
                       "protocol": "lenient"}
    return rec


def ranks(right: int, wrong: int, then_right: int = 0) -> list[int]:
    return [1] * right + [2] * wrong + [1] * then_right


def ability(model, preset, correct, *, probe="boolq", name=None, **preset_kw):
    rec = lama(model, preset, [1] * len(correct), probe=probe, name=name, **preset_kw)
    acc = sum(correct) / len(correct)
    rec["probe"].update(kind="ability", main_metric="acc", version="harness-1")
    for key in ("candidate_counts", "templates"):
        rec["probe"].pop(key)
    rec["metrics"] = {"acc": {"value": acc, "stderr": (acc * (1 - acc) / len(correct)) ** 0.5,
                              "higher_is_better": True}}
    rec["groups"] = {}
    rec["examples"] = [{"uid": f"{probe}/{i}", "correct": c, "text": f"question {i}",
                        "gold": "yes", "prediction": "yes" if c else "no"} for i, c in enumerate(correct)]
    if preset != "none":
        rec["gate"]["floor"] = None
    return rec


def perplexity(model, preset, ppl, *, name=None, **preset_kw):
    """Four windows of 100 tokens whose token perplexity is ppl / 2 (word perplexity ppl)."""
    rec = lama(model, preset, [1, 1], probe="wikitext-2", name=name, **preset_kw)
    rec["probe"].update(kind="perplexity", main_metric="word_perplexity", version="ppl-1")
    for key in ("candidate_counts", "templates"):
        rec["probe"].pop(key)
    rec["metrics"] = {"word_perplexity": {"value": ppl, "stderr": None, "higher_is_better": False},
                      "perplexity": {"value": ppl / 2, "stderr": None, "higher_is_better": False}}
    # as probes/perplexity.py writes them: n = windows scored, one example per window
    rec["groups"], rec["n"] = {}, 4
    rec["examples"] = [{"uid": f"wikitext-2/window-{i}", "nll": 100 * math.log(ppl / 2), "tokens": 100}
                       for i in range(4)]
    if preset != "none":
        rec["gate"]["floor"] = None
    return rec


def error(model, preset, probe, err, kind="lama", finished="2026-01-01T00:00:01+00:00",
          method="gptq", bits=4):
    """An error record as the runner writes it: what was asked (no measured effect) and why."""
    ok = lama(model, preset, [1, 2], probe=probe, method=method, bits=bits, finished=finished)
    ok["probe"]["kind"] = kind
    preset = {k: ok["preset"][k] for k in ("id", "method", "params", "bits")}
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": ok["case_id"],
            "status": "error", "error": err, "model": ok["model"], "preset": preset,
            "probe": ok["probe"], "environment": ok["environment"], "timestamps": ok["timestamps"]}


BASE = ranks(30, 10)      # 40 facts, 30 right at the baseline


def all_records():
    """A small board: a model with knowledge and ability sweeps, a failed gate, a case with too
    few facts, failed cases, and a model whose every free-text field carries markup."""
    recs = [
        lama("toy", "none", BASE, weight_bytes=4000, opened=[True] * 20 + [False] * 20),
        lama("toy", "sparse-50", ranks(26, 14), sparsity=0.5, weight_bytes=4000, floor=0.6,
             opened=[True] * 15 + [False] * 25),
        lama("toy", "sparse-90", ranks(8, 32), sparsity=0.9, weight_bytes=4000, floor=0.6,
             opened=[True] * 4 + [False] * 36),
        lama("toy", "int8-dyn", ranks(29, 11), method="dynamic-int8", bits=8, weight_bytes=1500,
             floor=0.8, params={"dtype": "qint8", "scope": "linear"},
             opened=[True] * 19 + [False] * 21),
        lama("toy", "none", [1, 1, 2, 2], probe="squad", weight_bytes=4000),
        lama("toy", "sparse-50", [1, 2, 2, 2], probe="squad", sparsity=0.5, weight_bytes=4000, floor=0.6),
        ability("toy", "none", [True] * 32 + [False] * 8, weight_bytes=4000),
        ability("toy", "sparse-50", [True] * 28 + [False] * 12, sparsity=0.5, weight_bytes=4000),
        ability("toy", "int8-dyn", [True] * 32 + [False] * 8, method="dynamic-int8", bits=8,
                weight_bytes=1500, params={"dtype": "qint8", "scope": "linear"}),
        perplexity("toy", "none", 20.0, weight_bytes=4000),
        perplexity("toy", "sparse-50", 25.0, sparsity=0.5, weight_bytes=4000),
        error("toy", "gptq-int4", "trex", {"type": "MissingBackend",
                                           "message": "gptqmodel is not installed: pip install gptqmodel",
                                           "phase": "compress"}),
        error("toy", "gptq-int4", "boolq", {"type": "OutOfMemoryError", "message": "CUDA out of memory",
                                            "phase": "probe"}, kind="ability"),
        lama("xss", "none", BASE, name=XSS, weight_bytes=900),
        lama("xss", "sparse-50", ranks(28, 12), name=XSS, sparsity=0.5, weight_bytes=900, floor=0.5),
        error("xss", "int8-dyn", "trex", {"type": "RuntimeError", "message": XSS, "phase": "compress"},
              method="dynamic-int8", bits=8),
    ]
    # Markup in every free-text field a record may carry (ids must match the case id).
    x = recs[-2]
    x["preset"].update(method="<b>sparse</b>", params={"amount": 0.5, "scope": XSS})
    x["preset"]["effect"]["backend"] = XSS
    x["examples"][0]["text"] = XSS
    x["examples"][0]["prediction"] = XSS
    x["probe"]["templates"]["P19"]["label"] = XSS
    return gated(recs)


def gated(records):
    """Set each ok record's stored ``gate`` to what the runner writes: derive.compare's."""
    from benchmarks import derive
    by_id = {r["case_id"]: r for r in records}
    for r in records:
        if r["status"] != "ok":
            continue
        m, _, probe = r["case_id"].split("__")
        r["gate"] = derive.compare(by_id.get(f"{m}__none__{probe}"), r, r["gate"]["floor"],
                                   r["gate"].get("protocol", "lenient")).gate()
    return records


def write_site_records(folder, records=None):
    for rec in records if records is not None else all_records():
        write_record(folder, copy.deepcopy(rec))
    return folder
