"""How fast the suite probes, against the model's own limit: pytest-benchmark, side by side.

    pytest perf --perf-model smollm2-135m --perf-limit 3      # prints facts/s and the ratios

Over the same facts (the causal prompt of each, cut at the slot), these workloads:
* bare:     batched forward passes (batch 64, file order, right padding), the vocabulary
            projected only at the slot: what one pass per fact costs at best (the issue's limit);
* per-fact: one forward pass per fact with the full logits, the way per-sentence probing
            scripts work;
* prompts-only: the prompts alone (each once, packed, head at the slot): what any exact scorer
            must run at least, so the bound on what ranking / per-fact can reach;
* ranking:  probes.lama.score_facts, the suite's exact ranking of every candidate (multi-token
            objects included) at batch 64: the lenient protocol's ranks;
* probe:    probes.lama.score_subset, what a case runs: the ranking plus the strict protocol's
            greedy answers (probes/lama_open.py).
Targets on T-REx for the default models (issue 7), on the ranking (the lenient protocol's exact
ranks, what issue 7 timed): ranking >= 0.8 x bare and >= 5 x per-fact. The probe as a case runs it
(ranking plus the strict protocol's answers, decoded on the ranking's prompt cache) is reported
beside it with no target. Every workload gets one untimed warm-up round (a process's first call
pays imports and the relations' candidate tries once). Met on both default models on 2026-12-02
(SmolLM2 ranking 1.06 x bare, 5.5 x per-fact; Gemma-3 1.19 x and 12.9 x; docs/scale-out.md).
Google-RE (dates and places: many multi-token candidates per fact) is reported with no target.
Peak RSS while probing is compared with the model's weight bytes (the bound stated in the README).
"""
from __future__ import annotations

import pytest
import torch

from benchmarks.environment import PeakRSS
from probes.lama import score_facts, score_subset
from probes.lama_exact import head_logp
from probes.lama_data import SLOT, load_subset

BATCH = 64
GiB = 2**30


def memory_bound(weight_bytes: int) -> float:
    """The stated bound on peak RSS while probing a dense model: 2 x weights (weights, plus
    activations and the head's rows at batch 64) + 1 GiB (interpreter, torch, tokenizer)."""
    return 2 * weight_bytes + 1 * GiB


@pytest.fixture(scope="module")
def prompts(perf_model, lama_root, request):
    """subset -> (facts, prompt token ids): the same facts the probe scores at --perf-limit."""
    _, tok = perf_model
    limit = request.config.getoption("--perf-limit")
    out = {}
    for name in ("trex", "google-re"):
        facts = load_subset(lama_root, name, limit=limit).facts
        ctxs = [tok((f.causal_text or f.text).split(SLOT, 1)[0].rstrip())["input_ids"] for f in facts]
        out[name] = (facts, ctxs)
    return out


def bare_batched(model, ctxs):
    base = model.base_model
    with torch.inference_mode():
        for s in range(0, len(ctxs), BATCH):
            chunk = ctxs[s:s + BATCH]
            width = max(map(len, chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, c in enumerate(chunk):
                ids[i, :len(c)], mask[i, :len(c)] = torch.tensor(c), 1
            hidden = base(input_ids=ids, attention_mask=mask).last_hidden_state      # (B, T, H)
            head_logp(model, hidden[torch.arange(len(chunk)), mask.sum(1) - 1])          # (B, V)


def prompts_only(model, ctxs):
    """The probe's first pass alone: every prompt once, packed without padding, the head at the
    slot. Any exact scorer runs at least this; it bounds what probe / per-fact can reach."""
    from probes.lama_cache import PromptCache
    with torch.inference_mode():
        for s in range(0, len(ctxs), BATCH):
            PromptCache(model, ctxs[s:s + BATCH])


def per_fact(model, ctxs):
    with torch.inference_mode():
        for c in ctxs:
            torch.log_softmax(model(input_ids=torch.tensor([c])).logits[0, -1].float(), -1)


def _timed(benchmark, fn, n_facts, figures, key, rounds):
    benchmark.group = key[0]
    # one untimed round first, for every workload: a process's first call pays one-time costs
    # (imports, the relations' candidate tries, allocator growth) that a run amortises over
    # thousands of facts; they made the first of three timed rounds up to 1.5 x the others
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    facts_per_s = n_facts / benchmark.stats.stats.mean
    benchmark.extra_info.update({"facts": n_facts, "facts_per_s": round(facts_per_s, 3)})
    figures[key] = facts_per_s
    return facts_per_s


BATCHED = {"bare": bare_batched, "prompts-only": prompts_only}


@pytest.mark.parametrize("subset", ["trex", "google-re"])
@pytest.mark.parametrize("workload", list(BATCHED))
def test_batched(benchmark, perf_model, prompts, figures, subset, workload, request):
    model, _ = perf_model
    facts, ctxs = prompts[subset]
    _timed(benchmark, lambda: BATCHED[workload](model, ctxs), len(facts), figures, (subset, workload),
           request.config.getoption("--perf-rounds"))


@pytest.mark.parametrize("subset", ["trex", "google-re"])
def test_per_fact_loop(benchmark, perf_model, prompts, figures, subset):
    model, _ = perf_model
    facts, ctxs = prompts[subset]
    _timed(benchmark, lambda: per_fact(model, ctxs), len(facts), figures, (subset, "per-fact"), 1)


@pytest.mark.parametrize("subset", ["trex", "google-re"])
def test_ranking(benchmark, perf_model, prompts, lama_root, figures, subset, request):
    model, tok = perf_model
    limit = request.config.getoption("--perf-limit")
    data = load_subset(lama_root, subset, limit=limit)
    rate = _timed(benchmark, lambda: score_facts(model, tok, "causal", data.facts, data.candidates,
                                                 batch_size=BATCH),
                  len(data.facts), figures, (subset, "ranking"), request.config.getoption("--perf-rounds"))
    from benchmarks.models import MODELS
    # the targets are for the default models (a tiny model built in code only checks that the
    # suite runs: its forward pass is too cheap for the ratios to mean anything)
    if subset == "trex" and MODELS[request.config.getoption("--perf-model")].default:
        need = [("trex", w) for w in ("bare", "prompts-only", "per-fact")]
        assert all(k in figures for k in need), \
            "run the whole perf module so the bare, prompts-only and per-fact workloads are measured too"
        assert rate >= 0.8 * figures[("trex", "bare")], (
            f"ranking {rate:.1f} facts/s is below 0.8 x bare batched {figures[('trex', 'bare')]:.1f}")
        bound = figures[("trex", "prompts-only")]
        assert rate >= 5 * figures[("trex", "per-fact")], (
            f"ranking {rate:.1f} facts/s is below 5 x the per-fact loop {figures[('trex', 'per-fact')]:.1f}; "
            f"the prompts alone, packed, run at {bound:.1f} facts/s = "
            f"{bound / figures[('trex', 'per-fact')]:.2f} x the per-fact loop")


@pytest.mark.parametrize("subset", ["trex", "google-re"])
def test_probe(benchmark, perf_model, prompts, lama_root, figures, subset, request):
    model, tok = perf_model
    facts, _ = prompts[subset]
    limit = request.config.getoption("--perf-limit")
    with PeakRSS() as mem:
        _timed(benchmark, lambda: score_subset(model, tok, "causal", lama_root, subset,
                                               limit=limit, batch_size=BATCH),
               len(facts), figures, (subset, "probe"), request.config.getoption("--perf-rounds"))
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    figures[("memory", "factor")] = max(figures.get(("memory", "factor"), 0), mem.peak / weights)
    figures[("memory", "bound")] = memory_bound(weights) / weights
    benchmark.extra_info.update({"peak_rss_bytes": mem.peak, "weight_bytes": weights})
    assert mem.peak <= memory_bound(weights), (
        f"peak RSS {mem.peak / GiB:.2f} GiB exceeds the stated bound "
        f"{memory_bound(weights) / GiB:.2f} GiB (2 x {weights / GiB:.2f} GiB weights + 1 GiB)")
