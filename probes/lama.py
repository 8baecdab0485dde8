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

None of that sharing holds for a model whose quantizer takes a statistic over the whole call
(probes/callscope.py: torch's dynamic int8, LLM.int8): there a candidate's score is defined as one
call over exactly prompt + candidate, every candidate is scored, and nothing is shared between
candidates (causal: probes/lama_exact.py; seq2seq: one decoder call per candidate; masked: one
sentence per call). ``scoring(model, family, batch_size)`` says which path a model takes.
"""
from __future__ import annotations

import copy
import os
import sys

import torch

from probes.callscope import call_scoped
from probes.lama_data import SLOT, Fact, load_subset
from probes.lama_exact import head_logp
from probes.lama_open import open_answers
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


# A forward pass streams every weight once whatever it runs: on the 2-core CPU this costs SmolLM2
# about as much as 64 more tokens (64 ms a call, 1 ms a token, measured). Splitting a batch pays
# only when it saves more padding than that.
CALL_COST_TOKENS = 64


def _batches(lengths: list[int], cap: int, call_cost: int = CALL_COST_TOKENS) -> list[list[int]]:
    """Indices grouped for batched passes, shortest first: at most ``cap`` rows per batch, and a
    batch closes early when padding it to its next, longer member would cost more padded tokens
    than one more forward pass (``call_cost``). Plain sorting leaves the long tail of a batch
    padded to its longest prompt; this splits there, and nowhere the split would cost more."""
    out, cur, longest = [], [], 0
    for i in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        n = lengths[i]
        if cur and (len(cur) == cap or len(cur) * (n - longest) > call_cost):
            out.append(cur)
            cur = []
        cur.append(i)
        longest = n
    if cur:
        out.append(cur)
    return out


# ------------------------------------------------------------------------------ causal LMs
def _causal_logp(model, seqs: list[list[int]], positions: list[list[int]], pad_id: int):
    """Plain path (no KV cache): right-padded batch; log-prob rows at the requested positions.

    Returns a list (per sequence) of (len(positions[i]), V) tensors.
    """
    dev = _device(model)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    rows = [i for i, ps in enumerate(positions) for _ in ps]
    cols = [t for ps in positions for t in ps]
    logits = model(input_ids=ids, attention_mask=mask).logits[rows, cols]
    logp = torch.log_softmax(logits.float(), dim=-1)                          # (P, V)
    return list(torch.split(logp, [len(ps) for ps in positions]))


def _take_rows(cache, idx: torch.Tensor):
    """A new KV cache holding batch rows ``idx`` of ``cache``; ``cache`` itself is untouched
    (each layer object is copied, then re-indexed, which rebinds its tensors)."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.reorder_cache(idx)
    return out


def _pack(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """First-fit decreasing: indices into rows of at most ``row_tokens`` tokens (one longer item
    makes a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = next((r for r, free in enumerate(room) if lengths[i] <= free), None)
        if r is None:
            rows.append([])
            room.append(max(row_tokens, lengths[i]))
            r = len(rows) - 1
        rows[r].append(i)
        room[r] -= lengths[i]
    return rows


# Rows of a packed pass: long enough that a pass runs few, padded rows; short enough that the
# attention each row computes over all of its columns (mostly masked) stays a few percent.
ROW_TOKENS = 128
_NO_SEGMENT = -(2**40)   # padding columns get segment ids below this, one each: they see only themselves


def _segment_mask(q_seg, q_pos, kv_seg, kv_pos, window=None):
    """(R, Q) query and (R, K) key segment ids and positions -> (R, 1, Q, K) bool: a token sees
    the tokens of its own segment at positions up to its own (and within ``window``)."""
    ok = (q_seg[:, :, None] == kv_seg[:, None, :]) & (kv_pos[:, None, :] <= q_pos[:, :, None])
    if window:
        ok &= q_pos[:, :, None] - kv_pos[:, None, :] < window
    return ok[:, None]


class _PromptCache:
    """One pass over a chunk's prompts, kept as a KV cache, so that every candidate path is
    scored by running only its own tokens (a date's digits, an entity's word pieces) against the
    shared prompt instead of re-running the prompt once per path.

    Prompts are packed end to end into rows of about ROW_TOKENS tokens (no padding between them)
    and a 4-D attention mask keeps every prompt, and later every candidate path, to its own
    tokens; positions count from each prompt's first token, so the packing changes nothing but
    rounding (tests/test_lama_cache.py). Padding a batch to its longest prompt cost as many
    tokens as the prompts themselves on T-REx; packed, a pass runs only real tokens.
    """

    @staticmethod
    def supported(model) -> bool:
        """A transformers causal LM whose body takes a KV cache, positions and a prepared 4-D
        mask (sdpa or eager attention), with full or Gemma-style sliding layers only."""
        import inspect
        base = getattr(model, "base_model", model)
        if base is model or not hasattr(model, "get_output_embeddings"):
            return False
        params = inspect.signature(base.forward).parameters
        if not ("cache" in params and "position_ids" in params):
            return False
        cfg = model.config
        if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
            return False
        kinds = set(getattr(cfg, "layer_types", None) or ["full_attention"])
        if not kinds <= {"full_attention", "sliding_attention"}:
            return False
        if getattr(cfg, "sliding_window", None) and not getattr(cfg, "layer_types", None):
            return False   # a window on every layer (Mistral-style): not modelled here
        # What this checks is the architecture only. A model whose quantizer takes a statistic
        # over the whole call (probes/callscope.py) never reaches this cache: packing prompts
        # together would change every row's rounding. _score_causal sends it to lama_exact.
        return True

    def __init__(self, model, ctxs: list[list[int]]):
        from transformers import DynamicCache
        self.model, self.base, self.dev = model, model.base_model, _device(model)
        cfg = model.config
        self.layer_types = getattr(cfg, "layer_types", None)
        self.window = getattr(cfg, "sliding_window", None) if self.layer_types else None
        self.eager = cfg._attn_implementation == "eager"
        self.lens = [len(c) for c in ctxs]
        rows = _pack(self.lens, ROW_TOKENS)
        width = max(sum(self.lens[i] for i in r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        seg = _NO_SEGMENT - torch.arange(width).repeat(len(rows), 1)
        self.where = [None] * len(ctxs)          # prompt -> (row, column of its last token)
        for r, members in enumerate(rows):
            col = 0
            for i in members:
                n = self.lens[i]
                ids[r, col:col + n] = torch.tensor(ctxs[i])
                pos[r, col:col + n] = torch.arange(n)
                seg[r, col:col + n] = i
                self.where[i] = (r, col + n - 1)
                col += n
        self.seg, self.pos = seg, pos
        # No config: every layer keeps its whole cache (a sliding layer's own cache would trim
        # the packed row); the mask applies the window instead, by position.
        out = self.base(input_ids=ids.to(self.dev), position_ids=pos.to(self.dev),
                        attention_mask=self._mask(seg, pos, seg, pos), cache=DynamicCache(),
                        use_cache=True)
        self.cache = out.cache
        last = torch.tensor([w for w in self.where])
        self.slot = head_logp(model, out.last_hidden_state[last[:, 0], last[:, 1]])       # (N, V)

    def _mask(self, q_seg, q_pos, kv_seg, kv_pos):
        def one(window):
            ok = _segment_mask(q_seg, q_pos, kv_seg, kv_pos, window).to(self.dev)
            if self.eager:   # eager attention adds the mask to the scores
                return torch.zeros(ok.shape, device=self.dev).masked_fill(~ok, torch.finfo(torch.float32).min)
            return ok
        if not self.layer_types:
            return one(None)
        return {kind: one(self.window if kind == "sliding_attention" else None)
                for kind in set(self.layer_types)}

    def rows(self, items: list[tuple[int, list[int], int]], call_tokens: int) -> list[torch.Tensor]:
        """items: [(prompt index, continuation tokens, first row)] -> per item the log-prob rows
        ``first .. len(tokens)`` (row 0 is the slot, row j + 1 follows the continuation's token j).
        Every token runs through the body (the cache needs it), but the vocabulary head, as costly
        as the body on Gemma's 262k tokens, runs only on the rows asked for. Continuations are
        packed into rows beside their prompt's cache row, at most ``call_tokens`` tokens a pass."""
        out: list = [None] * len(items)
        run = []
        for k, (i, toks, first) in enumerate(items):
            if first == 0:
                out[k] = self.slot[i:i + 1]
            if len(toks) >= max(first, 1):
                run.append(k)
        by_row: dict[int, list[int]] = {}
        for k in run:
            by_row.setdefault(self.where[items[k][0]][0], []).append(k)
        packed = []                                  # (cache row, [items]) one per pass row
        for r, ks in sorted(by_row.items()):
            for members in _pack([len(items[k][1]) for k in ks], ROW_TOKENS // 2):
                packed.append((r, [ks[m] for m in members]))
        packed.sort(key=lambda rk: sum(len(items[k][1]) for k in rk[1]))
        for batch in _batches([sum(len(items[k][1]) for k in ks) for _, ks in packed],
                              max(1, call_tokens // (ROW_TOKENS // 2))):
            self._run([packed[b] for b in batch], items, out)
        return out

    def _run(self, packed, items, out):
        width = max(sum(len(items[k][1]) for k in ks) for _, ks in packed)
        n = len(packed)
        ids = torch.zeros((n, width), dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        q_fact = _NO_SEGMENT - torch.arange(width).repeat(n, 1)
        q_item = q_fact.clone()
        spans = []                                   # (item, pass row, first column, rows wanted)
        for r, (_, ks) in enumerate(packed):
            col = 0
            for k in ks:
                i, toks, first = items[k]
                L = len(toks)
                ids[r, col:col + L] = torch.tensor(toks)
                pos[r, col:col + L] = self.lens[i] + torch.arange(L)
                q_fact[r, col:col + L] = i
                q_item[r, col:col + L] = k
                spans.append((k, r, col, range(max(first - 1, 0), L)))
                col += L
        idx = torch.tensor([row for row, _ in packed])
        seg, cpos = self.seg[idx], self.pos[idx]
        mask_cache = self._mask(q_fact, pos, seg, cpos)
        mask_new = self._mask(q_item, pos, q_item, pos)
        cat = (lambda a, b: torch.cat([a, b], dim=-1))
        mask = ({kind: cat(mask_cache[kind], mask_new[kind]) for kind in mask_cache}
                if isinstance(mask_cache, dict) else cat(mask_cache, mask_new))
        hidden = self.base(input_ids=ids.to(self.dev), position_ids=pos.to(self.dev),
                           attention_mask=mask, cache=_take_rows(self.cache, idx.to(self.dev)),
                           use_cache=True).last_hidden_state                 # (n, width, H)
        rr = [r for _, r, col, want in spans for _ in want]
        cc = [col + j for _, r, col, want in spans for j in want]
        logp = torch.split(head_logp(self.model, hidden[rr, cc]), [len(want) for *_, want in spans])
        for (k, *_), rows in zip(spans, logp):
            out[k] = rows if out[k] is None else torch.cat([out[k], rows])


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


def _split(text: str) -> tuple[str, str, str]:
    """(prompt, separator before the slot, text after the slot)."""
    left, right = text.split(SLOT, 1)
    prompt = left.rstrip()
    return prompt, left[len(prompt):], right


def _trie(plan) -> dict:
    """prefix (tuple of token ids) -> {next token: [candidates ending there, candidates below]}.
    Facts of one relation share their candidates' trie; each plan keeps a reference to it."""
    trie = getattr(plan, "trie", None)
    if trie is not None:
        return trie
    key = tuple(tuple(x) for x in plan.seqs)
    if key not in _TRIES:
        trie: dict = {}
        for c, seq in enumerate(plan.seqs):
            for i, tok in enumerate(seq):
                node = trie.setdefault(tuple(seq[:i]), {}).setdefault(tok, [[], []])
                (node[0] if i == len(seq) - 1 else node[1]).append(c)
        if len(_TRIES) > 256:
            _TRIES.clear()
        _TRIES[key] = trie
    plan.trie = _TRIES[key]
    return plan.trie


_TRIES: dict = {}


def _known_rows(plan, c, known: dict) -> int:
    """How many leading rows of candidate c's path are known already (prefix -> children)."""
    seq, i = plan.seqs[c], 0
    while i < len(seq) and tuple(seq[:i]) in known:
        i += 1
    return i


def _path_children(plan, c, rows, first, known: dict) -> float:
    """Candidate c's exact score from its path's log-prob rows ``first ..`` (row i predicts token
    i; the rows before ``first`` are in ``known``), and, into ``known``, for every new prefix on
    the path the log-probs of that prefix's children in the trie."""
    trie, seq = _trie(plan), plan.seqs[c]
    score = sum(known[tuple(seq[:i])][seq[i]] for i in range(first))
    score += float(rows[torch.arange(len(seq) - first), torch.tensor(seq[first:], device=rows.device)].sum())
    for i in range(first, len(seq)):
        prefix = tuple(seq[:i])
        kids = list(trie.get(prefix, {}))
        known.setdefault(prefix, dict(zip(kids, rows[i - first, kids].tolist())))
    return score


def _trie_search(plans, path_rows, rows_budget: int):
    """Exact score for the gold and for every candidate that could outrank it.

    A prefix's log-prob bounds every candidate below it. One teacher-forced pass over a
    candidate's whole sequence gives the next-token distribution after each of its prefixes, so
    a pass both scores that candidate and reveals the children of every prefix on its path. The
    search starts from the gold's path and opens a path below a prefix only while that prefix
    still beats the gold's score. A round's paths go to path_rows in slices of about
    ``rows_budget`` rows (it batches them), and only the rows not known yet are asked for, so only
    those meet the vocabulary head.
    path_rows([(plan, c, first)]) -> rows ``first .. len(seq) - 1`` (V wide) per item.
    """
    known = {id(p): {} for p in plans}      # plan -> prefix -> {child token: log-prob}
    todo = [(p, p.gold) for p in plans]
    pending = [(p, (), 0.0) for p in plans]   # (plan, prefix, log-prob) nodes to open
    while todo:
        # The round's paths in slices of at most ``rows_budget`` vocabulary rows, each slice's rows
        # consumed before the next is computed: a V-wide row is 1 MiB on Gemma, and a SQuAD round
        # (300 candidates, each followed by the rest of the sentence) asks for tens of thousands.
        start = 0
        while start < len(todo):
            items, rows_n = [], 0
            for p, c in todo[start:]:
                first = _known_rows(p, c, known[id(p)])
                n = max(len(p.seqs[c]) - first, 1)
                if items and rows_n + n > rows_budget:
                    break
                items.append((p, c, first))
                rows_n += n
            start += len(items)
            for (plan, c, first), rows in zip(items, path_rows(items)):
                plan.scores[c] = _path_children(plan, c, rows, first, known[id(plan)])
        todo, waiting, requested = [], [], set()
        while pending:
            plan, prefix, logp = pending.pop()
            kids = known[id(plan)].get(prefix)
            if kids is None:                # not on any path scored so far: open one below it
                below = _trie(plan)[prefix]
                c = next(c for tok in below for c in below[tok][0] + below[tok][1])
                if (id(plan), c) not in requested:
                    requested.add((id(plan), c))
                    todo.append((plan, c))
                waiting.append((plan, prefix, logp))
                continue
            gold = plan.scores[plan.gold]
            for tok, (ending, deeper) in _trie(plan).get(prefix, {}).items():
                s = logp + kids[tok]
                for c in ending:
                    if c != plan.gold:
                        plan.scores[c] = s
                if deeper and s > gold:
                    pending.append((plan, prefix + (tok,), s))
        pending = waiting


def _score_causal(model, tokenizer, plans, batch_size, bar):
    cache: dict = {}
    start_ids = [t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None][:1]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for plan in plans:
        whole = plan.fact.causal_text is None
        plan.text = plan.fact.text if whole else plan.fact.causal_text
        plan.mode = "whole-sentence" if whole else "slot-last"
        prompt, sep, right = _split(plan.text)
        ctx = tokenizer(prompt)["input_ids"] if prompt else []
        if not prompt or not ctx:
            ctx = start_ids + ctx   # something must predict the first object token
        if not ctx:
            raise ValueError("tokenizer has no BOS/EOS token to start a prompt with an empty prefix")
        plan.ctx = ctx
        suffix = _tok(tokenizer, right, cache) if whole and right.strip() else []
        plan.seqs = [_tok(tokenizer, (sep if prompt else "") + c, cache) + suffix for c in plan.cands]

    scoped = call_scoped(model)
    if scoped:   # a statistic over the whole call: one call per prompt + candidate, by definition
        from probes.lama_exact import score_causal_exact
        return score_causal_exact(model, plans, scoped, bar)
    # Facts in chunks of batch_size, relation by relation; within a chunk the gold paths first,
    # then only the paths that could beat them (_trie_search). Packed prompts need no length
    # bucketing; the plain path groups facts by length so its padded batches pad little.
    order = sorted(range(len(plans)), key=lambda i: plans[i].fact.group)
    cached = _PromptCache.supported(model)
    chunks = ([order[s:s + batch_size] for s in range(0, len(order), batch_size)] if cached else
              [[order[i] for i in b] for b in _batches([len(plans[i].ctx) for i in order], batch_size)])
    with torch.inference_mode():
        for members in chunks:
            chunk = [plans[i] for i in members]
            if cached:
                prompts = _PromptCache(model, [p.ctx for p in chunk])
                where = {id(p): i for i, p in enumerate(chunk)}

                def path_rows(items):
                    return prompts.rows([(where[id(p)], p.seqs[c][:-1], first) for p, c, first in items],
                                        call_tokens=4 * batch_size)
            else:
                def path_rows(items):
                    out = [None] * len(items)
                    for batch in _batches([len(p.ctx) + len(p.seqs[c]) for p, c, _ in items], batch_size):
                        part = [items[b] for b in batch]
                        seqs = [p.ctx + p.seqs[c] for p, c, _ in part]
                        positions = [list(range(len(p.ctx) - 1 + first, len(s) - 1))
                                     for (p, _, first), s in zip(part, seqs)]
                        for b, rows in zip(batch, _causal_logp(model, seqs, positions, pad)):
                            out[b] = rows
                    return out
            _trie_search(chunk, path_rows, rows_budget=4 * batch_size)
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
            _trie_search(chunk, path_rows, rows_budget=4 * batch_size)
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
        policy = "packed-cache" if family == "causal" and _PromptCache.supported(model) else "padded-batch"
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
    examples = score_facts(model, tokenizer, family, subset.facts, subset.candidates,
                           batch_size=batch_size, desc=subset_name)
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
                batch_size=None, desc="facts") -> list[dict]:
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
            scorer(model, tokenizer, plans, batch_size, bar)
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
