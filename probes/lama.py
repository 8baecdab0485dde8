"""LAMA cloze probing for all three model families, ranked over a typed candidate set.

    result = score_subset(model, tokenizer, "causal", lama_root, "trex", limit=20)

Each fact is ranked among its candidate objects (probes/lama_data.py) by the log-probability
the model gives to the object string, however many tokens it has:

* masked LM: the slot becomes k mask tokens for a k-token candidate (right context kept);
  score = sum of the candidate's token log-probs at the k masks, one pass per distinct k.
* encoder-decoder: the slot becomes the first sentinel; the decoder target is
  ``<extra_id_0> object <extra_id_1>``; score = log P(object tokens + closing sentinel).
* causal LM: the prompt is cut at the slot (a template with the slot last, see lama_data);
  score = log P(object tokens | prompt). Facts whose only sentence has the slot mid-sentence
  (some SQuAD/ConceptNet) are scored on the whole sentence: log P(object + rest | prefix).

Exact ranks at nearly the cost of one forward pass per fact: a candidate's score can never
exceed the log-prob of its first token, which one pass gives for every candidate at once
(B = the distribution at the slot). Only candidates whose bound beats the gold's exact score
can outrank it, so only those are scored in full (a second, batched pass). The rank of the gold
and the top-1 prediction are therefore exact, not first-token approximations. For causal LMs the
prompts run once per chunk of facts (sorted by length, so little padding) and are kept as a KV
cache: a candidate path then costs only its own tokens (tests/test_lama_cache.py checks that
this gives the same ranks as scoring each candidate alone).

This file builds each fact's candidate plan, runs the family's scorer and ranks; the causal
forward passes (packed prompt cache, padded batch) are probes/lama_cache.py, and the search over
candidate token paths, shared by the causal and encoder-decoder scorers, is probes/lama_trie.py.

None of that sharing holds for a model whose quantizer takes a statistic over the whole call
(probes/callscope.py: torch's dynamic int8, LLM.int8): there a candidate's score is defined as one
call over exactly prompt + candidate, every candidate is scored, and nothing is shared between
candidates (causal: probes/lama_exact.py; seq2seq: one decoder call per candidate; masked: one
sentence per call). ``scoring(model, family, batch_size)`` says which path a model takes.
"""
from __future__ import annotations

import os
import sys

import torch

from probes.callscope import call_scoped
from probes.lama_cache import PromptCache, causal_logp, length_batches
from probes.lama_data import SLOT, Fact, load_subset
from probes.lama_open import PackedOpener, open_answers
from probes.lama_trie import trie_search
from probes.result import ProbeResult, run_fields

# Bump when scoring, candidates or templates change: records carry it. lama-2 (from lama-1):
# models whose quantizer takes a statistic over the whole call are scored one call per prompt +
# candidate (probes/lama_exact.py; lama-1 scored them in padded batches, whose ranks changed with
# the batch size), and every record also carries the strict protocol (probes/lama_open.py).
VERSION = "lama-2"
BATCH_SIZE = 64      # the suite's default facts per chunk (conftest --batch-size)
SCORING = {
    "masked": "k masks for a k-token candidate, sum of token log-probs",
    "seq2seq": "sentinel span, log P(object tokens + closing sentinel)",
    "causal": "prompt cut at the slot (slot-last template), log P(object tokens | prompt); "
              "whole-sentence log P(object + rest | prefix) where no slot-last sentence exists",
}


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm
    # On long work only, on a terminal only (not in CI logs: stdout not a TTY), and never under
    # pytest-xdist (workers' bars would interleave). Written to the real stderr, past pytest's capture.
    tty = all(getattr(f, "isatty", lambda: False)() for f in (sys.__stdout__, sys.__stderr__))
    quiet = total < 200 or not tty or bool(os.environ.get("PYTEST_XDIST_WORKER"))
    return tqdm(total=total, desc=desc, file=sys.__stderr__, leave=False, disable=quiet)


def _device(model) -> torch.device:
    return next(model.parameters()).device


class _Plan:
    """One fact prepared for scoring: token ids of context and every candidate."""

    def __init__(self, fact: Fact, cands: list[str], gold: int):
        self.fact, self.cands, self.gold = fact, cands, gold
        self.scores: dict[int, float] = {}    # candidate index -> exact score
        self.mode = ""
        self.text = ""
        self.trie = None


def _tok(tokenizer, text: str, cache: dict) -> list[int]:
    if text not in cache:
        cache[text] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return cache[text]


def _tok_all(tokenizer, texts, cache: dict) -> None:
    """Fill ``cache`` with the ids of every text not in it, in one batched tokenizer call (the
    same ids as one call per text; a call per candidate cost 0.1 s of a 2 s T-REx ranking)."""
    new = [t for t in dict.fromkeys(texts) if t not in cache]
    if new:
        cache.update(zip(new, tokenizer(new, add_special_tokens=False)["input_ids"]))


def _split(text: str) -> tuple[str, str, str]:
    """(prompt, separator before the slot, text after the slot)."""
    left, right = text.split(SLOT, 1)
    prompt = left.rstrip()
    return prompt, left[len(prompt):], right


# ------------------------------------------------------------------------------ causal LMs
def _score_causal(model, tokenizer, plans, batch_size, bar, opener=None):
    cache: dict = {}
    start_ids = [t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None][:1]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = []   # per plan: (prompt, what precedes a candidate, the text after the slot or None)
    for plan in plans:
        whole = plan.fact.causal_text is None
        plan.text = plan.fact.text if whole else plan.fact.causal_text
        plan.mode = "whole-sentence" if whole else "slot-last"
        prompt, sep, right = _split(plan.text)
        parts.append((prompt, sep if prompt else "", right if whole and right.strip() else None))
    _tok_all(tokenizer, [lead + c for plan, (_, lead, _) in zip(plans, parts) for c in plan.cands]
             + [tail for *_, tail in parts if tail is not None], cache)
    for plan, (prompt, lead, tail) in zip(plans, parts):
        ctx = tokenizer(prompt)["input_ids"] if prompt else []
        if not prompt or not ctx:
            ctx = start_ids + ctx   # something must predict the first object token
        if not ctx:
            raise ValueError("tokenizer has no BOS/EOS token to start a prompt with an empty prefix")
        plan.ctx = ctx
        suffix = cache[tail] if tail is not None else []
        plan.seqs = [cache[lead + c] + suffix for c in plan.cands]

    scoped = call_scoped(model)
    if scoped:   # a statistic over the whole call: one call per prompt + candidate, by definition
        from probes.lama_exact import score_causal_exact
        return score_causal_exact(model, plans, scoped, bar)
    # Facts in chunks of batch_size, relation by relation; within a chunk the gold paths first,
    # then only the paths that could beat them (trie_search). Packed prompts need no length
    # bucketing; the plain path groups facts by length so its padded batches pad little.
    order = sorted(range(len(plans)), key=lambda i: plans[i].fact.group)
    cached = PromptCache.supported(model)
    chunks = ([order[s:s + batch_size] for s in range(0, len(order), batch_size)] if cached else
              [[order[i] for i in b] for b in length_batches([len(plans[i].ctx) for i in order], batch_size)])
    with torch.inference_mode():
        for members in chunks:
            chunk = [plans[i] for i in members]
            steps = None
            if cached:
                prompts = PromptCache(model, [p.ctx for p in chunk], [p.seqs[p.gold][:-1] for p in chunk])
                where = {id(p): i for i, p in enumerate(chunk)}
                # the strict protocol's greedy answers (lama_open.PackedOpener) take a step in
                # each of the search's passes, and finish alone after it
                if opener is not None:
                    steps = opener.start([(p.fact, p.ctx) for p in chunk], prompts)

                def path_rows(items):
                    extra = steps.items() if steps is not None else []
                    rows = prompts.rows([(where[id(p)], p.seqs[c][:-1], first) for p, c, first in items]
                                        + extra, call_tokens=4 * batch_size)
                    if extra:
                        steps.advance(rows[len(items):])
                    return rows[:len(items)]
            else:
                def path_rows(items):
                    out = [None] * len(items)
                    lengths = [len(p.ctx) + len(p.seqs[c]) for p, c, _ in items]
                    for batch in length_batches(lengths, batch_size):
                        part = [items[b] for b in batch]
                        seqs = [p.ctx + p.seqs[c] for p, c, _ in part]
                        positions = [list(range(len(p.ctx) - 1 + first, len(s) - 1))
                                     for (p, _, first), s in zip(part, seqs)]
                        for b, rows in zip(batch, causal_logp(model, seqs, positions, pad)):
                            out[b] = rows
                    return out
            trie_search(chunk, path_rows, rows_budget=4 * batch_size)
            if steps is not None:
                steps.finish()
            bar.update(len(chunk))


# ------------------------------------------------------------------------ encoder-decoders
def _score_seq2seq(model, tokenizer, plans, batch_size, bar):
    cache: dict = {}
    open_id = tokenizer.convert_tokens_to_ids("<extra_id_0>")
    close_id = tokenizer.convert_tokens_to_ids("<extra_id_1>")
    if open_id is None or open_id == tokenizer.unk_token_id:
        raise ValueError("encoder-decoder tokenizer has no <extra_id_0> sentinel: not a T5-style model")
    start_id = model.config.decoder_start_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = _device(model)
    _tok_all(tokenizer, [c for plan in plans for c in plan.cands], cache)
    for plan in plans:
        left, right = plan.fact.text.split(SLOT, 1)
        plan.mode, plan.text = "sentinel", plan.fact.text
        plan.enc = tokenizer(left + "<extra_id_0>" + right)["input_ids"]
        plan.seqs = [_tok(tokenizer, c, cache) + [close_id] for c in plan.cands]

    def decode(items):
        """items: [(plan, decoder tokens after <extra_id_0>)] -> log-prob rows (len+1, V) each:
        row j predicts token j of the continuation (row 0 is the slot)."""
        enc_w = max(len(p.enc) for p, _ in items)
        dec = [[start_id, open_id] + list(t) for _, t in items]
        dec_w = max(len(d) for d in dec)
        enc = torch.full((len(items), enc_w), pad, dtype=torch.long)
        enc_mask = torch.zeros_like(enc)
        dec_in = torch.full((len(items), dec_w), pad, dtype=torch.long)
        for i, ((p, _), d) in enumerate(zip(items, dec)):
            enc[i, :len(p.enc)] = torch.tensor(p.enc)
            enc_mask[i, :len(p.enc)] = 1
            dec_in[i, :len(d)] = torch.tensor(d)
        logits = model(input_ids=enc.to(dev), attention_mask=enc_mask.to(dev),
                       decoder_input_ids=dec_in.to(dev)).logits          # (B, Td, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [logp[i, 1:len(d)] for i, d in enumerate(dec)]

    def path_rows(items):
        out = [None] * len(items)
        for start in range(0, len(items), batch_size):
            part = items[start:start + batch_size]
            rows = decode([(p, p.seqs[c][:-1]) for p, c, _ in part])
            out[start:start + len(part)] = [r[first:] for r, (_, _, first) in zip(rows, part)]
        return out

    with torch.inference_mode():
        scoped = call_scoped(model)
        if scoped:   # a statistic over the whole call: one call per candidate, by definition
            from probes.lama_exact import score_seq2seq_exact
            return score_seq2seq_exact(plans, decode, scoped, bar)
        for start in range(0, len(plans), batch_size):
            chunk = plans[start:start + batch_size]
            trie_search(chunk, path_rows, rows_budget=4 * batch_size)
            bar.update(len(chunk))


# ---------------------------------------------------------------------------- masked LMs
def _score_masked(model, tokenizer, plans, batch_size, bar):
    cache: dict = {}
    mask_tok, mask_id = tokenizer.mask_token, tokenizer.mask_token_id
    if mask_id is None:
        raise ValueError("masked-LM tokenizer has no mask token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = _device(model)
    jobs = []   # (plan, k, input ids) one per distinct candidate length
    for plan in plans:
        prompt, sep, right = _split(plan.fact.text)
        plan.mode, plan.text = "mask", plan.fact.text
        _tok_all(tokenizer, [(sep if prompt else "") + c for c in plan.cands], cache)
        plan.cand_ids = [_tok(tokenizer, (sep if prompt else "") + c, cache) for c in plan.cands]
        for k in sorted({len(ids) for ids in plan.cand_ids}):
            ids = tokenizer(prompt + sep + " ".join([mask_tok] * k) + right)["input_ids"]
            if ids.count(mask_id) != k:
                raise ValueError(f"could not place {k} mask tokens in {plan.fact.text!r}")
            jobs.append((plan, k, ids))
    done = {}
    if call_scoped(model):   # a statistic over the whole call: each masked sentence alone, unpadded
        batch_size = 1
    with torch.inference_mode():
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            width = max(len(j[2]) for j in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            att = torch.zeros_like(ids)
            for i, (_, _, s) in enumerate(chunk):
                ids[i, :len(s)] = torch.tensor(s)
                att[i, :len(s)] = 1
            logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev)).logits
            for i, (plan, k, s) in enumerate(chunk):
                pos = [t for t, x in enumerate(s) if x == mask_id]
                logp = torch.log_softmax(logits[i, pos].float(), dim=-1)          # (k, V)
                for c, cid in enumerate(plan.cand_ids):
                    if len(cid) == k:
                        plan.scores[c] = float(logp[torch.arange(k), torch.tensor(cid, device=logp.device)].sum())
                done[id(plan)] = done.get(id(plan), 0) + 1
                if done[id(plan)] == len({len(x) for x in plan.cand_ids}):
                    bar.update(1)


# ------------------------------------------------------------------------------ entry point
EXACT = {
    "packed-cache": "ranks equal scoring each candidate alone, one call per prompt + candidate, "
                    "up to float rounding; independent of batch size up to float rounding",
    "padded-batch": "right-padded batches under an attention mask: rows are computed independently, "
                    "so ranks equal scoring each alone up to float rounding",
    "per-sequence": {
        "causal": "every candidate scored as one call over exactly prompt + candidate (batch 1, no "
                  "padding, no cache): a fact's equal-length sequences side by side, each call-scoped "
                  "kernel run once per sequence; batch size changes nothing",
        "seq2seq": "every candidate scored as one call over the encoder input and its own decoder "
                   "input (no padding): equal-length candidates side by side, each call-scoped kernel "
                   "run once per candidate; batch size changes nothing",
        "masked": "each masked sentence scored in a call of its own (batch 1, no padding); batch "
                  "size changes nothing"},
}


def scoring(model, family: str, batch_size: int | None) -> dict:
    """How scores of ``model`` are computed here: what a record must pin (issue 18)."""
    scoped = call_scoped(model)
    if scoped:
        policy = "per-sequence"
    else:
        policy = "packed-cache" if family == "causal" and PromptCache.supported(model) else "padded-batch"
    reasons = sorted({s.reason for _, s in scoped.values()})
    threads = torch.get_num_threads()
    if scoped:
        from probes.lama_exact import BODY_THREADS
        threads = min(threads, BODY_THREADS)
    return {"batch_size": batch_size or BATCH_SIZE, "policy": policy,
            "padding_side": "right" if policy == "padded-batch" else "none", **run_fields(model),
            "body_threads": threads,
            "call_scoped": {"modules": len(scoped), "why": reasons} if scoped else None,
            "exact": EXACT[policy][family] if scoped else EXACT[policy]}


def score_subset(model, tokenizer, family, data_root, subset_name, limit=None, batch_size=None):
    """Score one LAMA subset; returns a ProbeResult with exact ranks for every fact."""
    subset = load_subset(data_root, subset_name, limit=limit)
    # causal models the packed cache takes decode the strict protocol's answers on the ranking's
    # own prompt passes (lama_open.PackedOpener); every other model decodes them apart
    opener = (PackedOpener(tokenizer, subset.candidates, call_tokens=4 * (batch_size or BATCH_SIZE))
              if family == "causal" else None)
    examples = score_facts(model, tokenizer, family, subset.facts, subset.candidates,
                           batch_size=batch_size, desc=subset_name, opener=opener)
    if opener is not None and opener.used:
        opened, open_meta = opener.result(subset.facts)
    else:
        opened, open_meta = open_answers(model, tokenizer, family, subset.facts, subset.candidates,
                                         batch_size=batch_size or BATCH_SIZE)
    for e in examples:
        e["open"] = opened[e["uid"]]
    modes = {}
    for e in examples:
        modes[e["mode"]] = modes.get(e["mode"], 0) + 1
    meta = {"subset": subset_name, "version": VERSION, "data_checksum": subset.checksum,
            "files": subset.files, "limit": limit, "method": SCORING[family],
            "scoring": scoring(model, family, batch_size),
            "candidates": "objects of the same relation" if subset_name in ("trex", "google-re")
            else "objects of the whole subset",
            "candidate_counts": {g: len(c) for g, c in sorted(subset.candidates.items())},
            "templates": subset.templates, "modes": modes, "excluded": subset.excluded,
            "open": open_meta}
    return ProbeResult.from_examples(examples, meta)


def score_facts(model, tokenizer, family, facts: list[Fact], candidates: dict[str, list[str]],
                batch_size=None, desc="facts", opener=None) -> list[dict]:
    """Score given facts (any source: ParaRel patterns, negated LAMA) with the scoring above;
    ``candidates``: group -> candidate objects (each fact's object must be among its group's).
    Returns one example per fact: uid, group, gold, prediction, rank, mode, text."""
    batch_size = batch_size or BATCH_SIZE
    plans = []
    for fact in facts:
        cands = candidates[fact.group]
        if fact.obj not in cands:
            raise ValueError(f"{fact.uid}: object {fact.obj!r} is not among its group's candidates")
        plans.append(_Plan(fact, cands, cands.index(fact.obj)))
    scorer = {"causal": _score_causal, "seq2seq": _score_seq2seq, "masked": _score_masked}[family]
    was_training = model.training
    model.eval()
    try:
        with _progress(len(plans), desc) as bar:
            scorer(model, tokenizer, plans, batch_size, bar,
                   **({"opener": opener} if opener is not None else {}))
    finally:
        model.train(was_training)
    examples = []
    for plan in plans:
        gold = plan.scores[plan.gold]
        rank = 1 + sum(1 for c, s in plan.scores.items() if c != plan.gold and s > gold)
        best = max(plan.scores, key=lambda c: (plan.scores[c], c == plan.gold))
        examples.append({"uid": plan.fact.uid, "group": plan.fact.group, "gold": plan.fact.obj,
                         "prediction": plan.cands[best], "rank": rank, "mode": plan.mode,
                         "text": plan.text})
    return examples
