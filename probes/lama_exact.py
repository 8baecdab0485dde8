"""Exact LAMA scores for models whose forward depends on the whole call (probes/callscope.py:
torch's dynamic int8 takes one activation min/max per call, LLM.int8 one set of outlier columns).

    score_causal_exact(model, plans, scoped, bar)    # called by probes/lama._score_causal

What a score means for such a model: a candidate's score is what ONE forward call over exactly
``prompt + candidate`` gives (batch 1, no padding, no cache), the brute force an independent
auditor would write (``score_alone``). Every candidate is scored, and nothing is shared between
candidates: a prompt's rows depend on the candidate appended to it, so neither the prompt's KV
cache nor the trie's prefix bound holds. Measured with scripts/callscope_extension.py: on
SmolLM2 and Gemma-3 int8-dyn every T-REx candidate tried moved some module's min/max beyond the
prompt's; on SmolLM2 bnb-int8, 90-100 % added an outlier column (in late down_proj layers).

How it runs faster than one Python-level call per candidate: a fact's sequences of one length
go side by side in one batch (no padding, no mask: the model's own causal path), and
``Segments`` wraps every call-scoped module to run its real kernel once per batch row, on that
row's tokens only (a row-local one, torchao's per-token int8, runs the batch as it is), so each kernel call takes the statistic the sequence's own call would take;
every other operation computes rows apart. On SmolLM2 int8-dyn this gave the separate calls'
scores to 1e-6 (float summation), about twice as fast. A fact's batches depend on the fact
alone, never on ``batch_size`` or on other facts.

These scores are sensitive to float rounding far beyond it: int8-dyn SmolLM2's one-call score of
" drums" after "Roy Hargrove plays" is -9.13 with sdpa attention and -10.96 with eager attention
(same call, same weights): a last-bit difference moves a min/max, which moves every rounding
after it. "Exact" here means the definition above, computed on the model's own attention path.
"""
from __future__ import annotations

import contextlib

import torch

SEQS_PER_CALL = 32     # sequences of one length side by side in a body call (one fact's own)
HEAD_ROWS = 128        # vocabulary rows per head call (a Gemma row is 1 MiB): fixed, not batch_size
# The body runs its kernels row by row: thousands of small calls, each of which, with two intra-op
# threads on this shared 2-core machine, waits for the second thread (SmolLM2 int8-dyn: 2.2 s a
# candidate at 2 threads, 0.09 s at 1, same load). The scores were bit-for-bit the same at 1 and 2
# threads (16 candidates, SmolLM2 int8-dyn), so the body runs on one thread; the head does not.
BODY_THREADS = 1


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def head_logp(model, hidden):
    """Vocabulary log-probs for the hidden states given (P, H) -> (P, V): the head is applied
    only where a row is needed (with Gemma's 262k-token vocabulary it costs as much as the model)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits.float(), dim=-1)


class Segments:
    """Wraps a model's call-scoped modules ({name: (module, Statistic)})."""

    def __init__(self, scoped: dict):
        self.scoped = scoped

    @contextlib.contextmanager
    def per_row(self, batch: int):
        """While active, each call-scoped module splits its (batch, tokens, features) input into
        its ``batch`` rows and runs its kernel once per row: as if each row were its own call.
        Modules whose statistic is row-local (torchao's per-token int8) run the whole batch:
        without padding or cache their rows are already their separate calls'."""
        patched = []

        def wrap(module):
            original = module.forward       # bound method, or an instance-level wrapper (accelerate)
            patched.append((module, module.__dict__.get("forward")))

            def forward(x, *args, **kwargs):
                if x.shape[0] != batch:
                    raise RuntimeError(f"a call-scoped module saw batch {x.shape[0]}, expected {batch}")
                return torch.cat([original(x[r:r + 1], *args, **kwargs) for r in range(batch)])
            module.forward = forward
        try:
            for module, statistic in self.scoped.values():
                if not statistic.row_local:   # a per-token statistic is already each row's own
                    wrap(module)
            yield
        finally:
            for module, before in patched:
                if before is None:
                    del module.forward
                else:
                    module.forward = before


def score_alone(model, ctx: list[int], seq: list[int]) -> float:
    """The definition: log P(seq | ctx) from one forward call over exactly ctx + seq (batch 1, no
    padding, no cache)."""
    dev = next(model.parameters()).device
    logits = model(input_ids=torch.tensor([ctx + seq], device=dev)).logits[0]
    rows = torch.log_softmax(logits[len(ctx) - 1:len(ctx) - 1 + len(seq)].float(), dim=-1)
    return float(rows[torch.arange(len(seq)), torch.tensor(seq, device=rows.device)].sum())


def _batched_scores(model, segments: Segments, ctx: list[int], seqs: list[list[int]], dev) -> list[float]:
    """log P(seq | ctx) for each candidate, each computed as one call over ctx + seq."""
    scores = [0.0] * len(seqs)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    for n, members in sorted(by_len.items()):
        for start in range(0, len(members), SEQS_PER_CALL):
            group = members[start:start + SEQS_PER_CALL]
            ids = torch.tensor([ctx + seqs[i] for i in group], device=dev)
            with segments.per_row(len(group)), _threads(BODY_THREADS):
                hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
            want = [(i, r, len(ctx) - 1 + j, t) for r, i in enumerate(group) for j, t in enumerate(seqs[i])]
            for h in range(0, len(want), HEAD_ROWS):   # the head is row-local: only the rows needed
                part = want[h:h + HEAD_ROWS]
                logp = head_logp(model, hidden[[r for _, r, _, _ in part], [p for _, _, p, _ in part]])
                picked = logp[torch.arange(len(part)), torch.tensor([t for *_, t in part], device=logp.device)]
                for (i, *_), v in zip(part, picked.tolist()):
                    scores[i] += v
    return scores


def score_causal_exact(model, plans, scoped: dict, bar) -> None:
    """Every candidate of every plan (ctx and seqs prepared by probes/lama._score_causal) scored
    as one call over exactly prompt + candidate; fills ``plan.scores`` for all candidates."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if any(m is head for m, _ in scoped.values()):
        raise NotImplementedError("the output head is call-scoped: the scorer applies it to the "
                                  "rows it needs only; quantize the head with a per-row scheme")
    dev = next(model.parameters()).device
    body = getattr(model, "base_model", model) is not model and head is not None
    segments = Segments(scoped)
    with torch.inference_mode():
        for plan in plans:
            if body:
                scores = _batched_scores(model, segments, plan.ctx, plan.seqs, dev)
            else:   # no separate body and head: the plain call, one per candidate
                scores = [score_alone(model, plan.ctx, s) for s in plan.seqs]
            plan.scores = dict(enumerate(scores))
            bar.update(1)


def score_seq2seq_exact(plans, decode, scoped: dict, bar) -> None:
    """Encoder-decoders: every candidate scored as one call over the fact's encoder input and the
    candidate's own decoder input (``decode``: probes/lama._score_seq2seq's, which pads a batch to
    its longest; here every batch holds one decoder length, so nothing is padded), call-scoped
    kernels once per row; no prefix is shared, so no bound either."""
    segments = Segments(scoped)
    for plan in plans:
        by_len: dict[int, list[int]] = {}
        for c, seq in enumerate(plan.seqs):
            by_len.setdefault(len(seq), []).append(c)
        for members in by_len.values():
            for g in range(0, len(members), SEQS_PER_CALL):
                group = members[g:g + SEQS_PER_CALL]
                with segments.per_row(len(group)), _threads(BODY_THREADS):
                    rows = decode([(plan, plan.seqs[c][:-1]) for c in group])
                for c, r in zip(group, rows):
                    seq = torch.tensor(plan.seqs[c], device=r.device)
                    plan.scores[c] = float(r[torch.arange(len(seq)), seq].sum())
        bar.update(1)
