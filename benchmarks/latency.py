"""The latency figure of a case: pytest-benchmark over a fixed, small forward pass of the probe's
own prompts.

    fn, shape = workload(model, tokenizer, family, texts)
    latency = measure(benchmark, fn, shape)     # the record's ``latency`` field (without wall)

The workload is one forward pass over up to ROWS of this probe's prompts (slot filled by the mask
/ sentinel, or cut there for a causal LM), each cut to its first WIDTH tokens and right-padded:
at most ROWS x WIDTH = TOKEN_BUDGET tokens whatever the probe, so measuring speed costs the same
small amount beside every probe (before, 5 rounds over 16 whole BoolQ passages cost 5 x 33 s
beside a 110 s probe: issue 19). It measures speed only: no score comes from it. What it ran
(rows, tokens, padding, the budget) is recorded with the figure.
"""
from __future__ import annotations

import time

import torch

ROWS = 4                     # prompts per pass
WIDTH = 16                   # tokens kept of each prompt: LAMA prompts (about 8-12 tokens) whole
TOKEN_BUDGET = ROWS * WIDTH  # tokens one timed pass may run, padding included
ROUNDS = 3                   # timed rounds, after one warm-up round


def workload(model, tokenizer, family, texts):
    """A fixed forward pass over the first ROWS of ``texts``: (fn, shape) where shape says what
    it runs."""
    if not texts:
        raise ValueError("the latency workload needs at least one prompt of the probe")
    dev = next(model.parameters()).device
    texts = list(texts[:ROWS])
    if family == "masked":
        texts = [t.replace("[Y]", tokenizer.mask_token) for t in texts]
    elif family == "seq2seq":
        texts = [t.replace("[Y]", "<extra_id_0>") for t in texts]
    else:
        texts = [t.split("[Y]")[0].rstrip() or (tokenizer.bos_token or "") for t in texts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                        max_length=WIDTH).to(dev)
    finally:
        tokenizer.padding_side = side
    kwargs = dict(enc)
    if family == "seq2seq":
        kwargs["decoder_input_ids"] = torch.full((len(texts), 1), model.config.decoder_start_token_id,
                                                 device=dev)

    def run():
        with torch.inference_mode():
            model(**kwargs)
    rows, width = enc["input_ids"].shape
    real = int(enc["attention_mask"].sum())
    return run, {"rows": int(rows), "tokens": real, "padded_tokens": int(rows * width) - real,
                 "max_tokens": int(width), "padding_side": "right", "attention_mask": True,
                 "max_tokens_per_prompt": WIDTH, "token_budget": TOKEN_BUDGET}


def measure(benchmark, fn, shape: dict) -> dict:
    """Time ``fn`` with pytest-benchmark (ROUNDS rounds after one warm-up); under
    --benchmark-disable pytest-benchmark runs it once untimed, so it is timed here instead."""
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if getattr(benchmark, "stats", None) is not None:
        mean_s, rounds = benchmark.stats.stats.mean, benchmark.stats.stats.rounds
    else:
        times = []
        for _ in range(ROUNDS):
            s0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s0)
        mean_s, rounds = sum(times) / len(times), len(times)
    return {"ms_per_example": 1000 * mean_s / shape["rows"], "tokens_per_s": shape["tokens"] / mean_s,
            "rounds": rounds, "workload": f"one forward pass over {shape['rows']} prompts of this "
            f"probe, each cut to {WIDTH} tokens (budget {TOKEN_BUDGET} tokens), right-padded",
            "workload_shape": shape}
