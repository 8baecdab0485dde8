"""Records for the site tests: every shape the leaderboard must render, written in code.

    folder = write_site_records(tmp_path)   # LAMA, ability, perplexity, error and markup records

LAMA records follow benchmarks/record.py; ability and perplexity records follow the contract of
the lm-eval probes (probe.main_metric, metrics without "macro", examples with "correct" or none).
"""
from __future__ import annotations

import copy

from benchmarks.record import SCHEMA, SCHEMA_VERSION, write_record
from tests.test_record import make_record

XSS = "<script>window.__xss = 1</script>"


def lama(model, preset, ranks, *, probe="trex", method=None, sparsity=None, bits=None,
         weight_bytes=1000, name=None, finished="2026-01-01T00:00:01+00:00"):
    ex = [{"uid": f"{probe}/P19/{i}", "group": "P19" if i % 2 else "P20", "gold": f"gold{i}",
           "prediction": f"gold{i}" if r == 1 else f"other{i}", "rank": r,
           "text": f"Person {i} was born in [Y] .", "mode": "slot-last"} for i, r in enumerate(ranks)]
    n = len(ranks)
    p1 = sum(r == 1 for r in ranks) / n
    rec = make_record(f"{model}__{preset}__{probe}", examples=ex, n=n,
                      groups={"P19": {"n": n // 2, "p_at_1": p1}, "P20": {"n": n - n // 2, "p_at_1": p1}})
    rec["model"]["id"] = name or model
    rec["probe"]["id"] = probe
    rec["metrics"]["p_at_1"] = {"value": p1, "stderr": (p1 * (1 - p1) / n) ** 0.5,
                                "higher_is_better": True}
    rec["preset"].update(id=preset, method=method or ("none" if preset == "none" else "global-magnitude"),
                         bits=bits, params={"scope": "linear"} if sparsity else {})
    rec["preset"]["effect"].update(sparsity=sparsity, bits=bits, weight_bytes=weight_bytes)
    rec["memory"]["weight_bytes"] = weight_bytes
    rec["timestamps"]["finished"] = finished
    return rec


def ability(model, preset, correct, *, probe="boolq", name=None, **preset_kw):
    rec = lama(model, preset, [1] * len(correct), probe=probe, name=name, **preset_kw)
    acc = sum(correct) / len(correct)
    rec["probe"].update(kind="ability", main_metric="acc")
    rec["metrics"] = {"acc": {"value": acc, "stderr": (acc * (1 - acc) / len(correct)) ** 0.5,
                              "higher_is_better": True}}
    rec["groups"] = {}
    rec["examples"] = [{"uid": f"{probe}/{i}", "correct": c, "text": f"question {i}",
                        "gold": "yes", "prediction": "yes" if c else "no"} for i, c in enumerate(correct)]
    return rec


def perplexity(model, preset, ppl, *, name=None, **preset_kw):
    rec = lama(model, preset, [1, 1], probe="wikitext-2", name=name, **preset_kw)
    rec["probe"].update(kind="perplexity", main_metric="word_perplexity")
    rec["metrics"] = {"word_perplexity": {"value": ppl, "stderr": None, "higher_is_better": False},
                      "perplexity": {"value": ppl / 2, "stderr": None, "higher_is_better": False}}
    # as probes/perplexity.py writes them: n = windows scored, one example per window
    rec["groups"], rec["n"] = {}, 4
    rec["examples"] = [{"uid": f"wikitext-2/window-{i}", "nll": 250.0, "tokens": 100} for i in range(4)]
    return rec


def error(model, preset, probe, err, kind="lama"):
    ok = lama(model, preset, [1, 2], probe=probe, method="gptq", bits=4)
    ok["probe"]["kind"] = kind
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": ok["case_id"],
            "status": "error", "error": err, "model": ok["model"], "preset": ok["preset"],
            "probe": ok["probe"], "environment": ok["environment"], "timestamps": ok["timestamps"]}


def all_records():
    """A small board: a model with knowledge and ability sweeps, a failed case, a markup name."""
    base = [1, 1, 1, 1, 1, 1, 2, 3, 1, 1]
    recs = [
        lama("toy", "none", base, weight_bytes=4000),
        lama("toy", "sparse-50", [1, 2, 1, 2, 1, 2, 2, 3, 1, 1], sparsity=0.5, weight_bytes=4000),
        lama("toy", "sparse-90", [2, 2, 2, 2, 1, 2, 2, 1, 2, 2], sparsity=0.9, weight_bytes=4000),
        lama("toy", "int8-dyn", [1, 1, 1, 2, 1, 1, 2, 3, 1, 1], method="dynamic-int8", bits=8,
             weight_bytes=1500),
        lama("toy", "none", [1, 1, 2, 2], probe="squad", weight_bytes=4000),
        lama("toy", "sparse-50", [1, 2, 2, 2], probe="squad", sparsity=0.5, weight_bytes=4000),
        ability("toy", "none", [True] * 8 + [False] * 2, weight_bytes=4000),
        ability("toy", "sparse-50", [True] * 6 + [False] * 4, sparsity=0.5, weight_bytes=4000),
        ability("toy", "int8-dyn", [True] * 8 + [False] * 2, method="dynamic-int8", bits=8,
                weight_bytes=1500),
        perplexity("toy", "none", 20.0, weight_bytes=4000),
        perplexity("toy", "sparse-50", 25.0, sparsity=0.5, weight_bytes=4000),
        error("toy", "gptq-int4", "trex", {"type": "MissingBackend",
                                           "message": "gptqmodel is not installed: pip install gptqmodel",
                                           "phase": "compress"}),
        error("toy", "gptq-int4", "boolq", {"type": "OutOfMemoryError", "message": "CUDA out of memory",
                                            "phase": "probe"}, kind="ability"),
        lama("xss", "none", base, name=XSS, weight_bytes=900),
        lama("xss", "sparse-50", [1, 2, 1, 1, 1, 1, 2, 3, 1, 1], name=XSS, sparsity=0.5, weight_bytes=900),
    ]
    recs[-1]["preset"]["id"] = "<b>sparse</b>-50"
    return recs


def write_site_records(folder, records=None):
    for rec in records if records is not None else all_records():
        write_record(folder, copy.deepcopy(rec))
    return folder
