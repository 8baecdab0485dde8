"""The causal LM's forward passes for LAMA scoring: the packed prompt cache, and the plain padded
batch for models that cannot take it.

    prompts = PromptCache(model, [ctx_ids, ...], [ids teacher-forced after each, ...])   # one pass
    rows = prompts.rows([(prompt index, continuation ids, first row)], call_tokens=256)

Separate from probes/lama.py (which builds each fact's candidates and ranks them) because this is
the one place that knows how a transformers causal LM's body takes a KV cache, positions and a
4-D mask, and how prompts and continuations are packed into rows without padding; nothing here
knows about facts or candidates. ``length_batches``, ``pack_rows`` and ``continuation_rows``
group indices by token count; tests/test_lama_cache.py checks that packed scores equal scoring
each candidate alone.
"""
from __future__ import annotations

import copy

import torch

from probes.lama_exact import head_logp

# A forward pass streams every weight once whatever it runs: on the 2-core CPU this costs SmolLM2
# about as much as 64 more tokens (64 ms a call, 1 ms a token, measured). Splitting a batch pays
# only when it saves more padding than that.
CALL_COST_TOKENS = 64


def length_batches(lengths: list[int], cap: int, call_cost: int = CALL_COST_TOKENS) -> list[list[int]]:
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


def causal_logp(model, seqs: list[list[int]], positions: list[list[int]], pad_id: int):
    """Plain path (no KV cache): right-padded batch; log-prob rows at the requested positions.

    Returns a list (per sequence) of (len(positions[i]), V) tensors.
    """
    dev = next(model.parameters()).device
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


def _side_by_side(cache, idx: torch.Tensor):
    """A new KV cache whose row r holds the rows ``idx[r]`` of ``cache`` one after another along
    the key axis: (R, G) indices -> (R, heads, G x width, dim) per layer; ``cache`` is untouched."""
    R, G = idx.shape
    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        for name in ("keys", "values"):
            t = getattr(layer, name).index_select(0, idx.reshape(-1))                 # (R*G, h, W, d)
            _, h, w, d = t.shape
            setattr(new, name, t.view(R, G, h, w, d).transpose(1, 2).reshape(R, h, G * w, d))
        out.layers.append(new)
    return out


def continuation_rows(lengths: list[int], row_tokens: int, call_tokens: int) -> list[list[list[int]]]:
    """Indices (in the order given) into passes of pass rows: consecutive items end to end, the
    rows of about equal length (the total over as few rows of about ``row_tokens`` as it takes), at
    most about ``call_tokens`` tokens a pass. Consecutive, so that items sorted by prompt row
    share few cache rows per pass row; equal, so that a pass pads little."""
    total = sum(lengths)
    if not total:
        return []
    n_rows = -(-total // row_tokens)
    target = total / n_rows
    rows, cur, filled = [], [], 0
    for i, n in enumerate(lengths):
        cur.append(i)
        filled += n
        if filled >= target * (len(rows) + 1) - 1e-9 and len(rows) < n_rows - 1:
            rows.append(cur)
            cur = []
    if cur:
        rows.append(cur)
    per_pass = max(1, call_tokens // row_tokens)
    return [rows[s:s + per_pass] for s in range(0, len(rows), per_pass)]


def pack_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
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


class PromptCache:
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
        # together would change every row's rounding. probes/lama._score_causal sends it to
        # lama_exact.
        return True

    def __init__(self, model, ctxs: list[list[int]], ahead: list[list[int]] | None = None):
        """``ahead[i]``: tokens teacher-forced after prompt i in this same pass (the gold's path:
        the search asks for it first, whatever the model predicts), so that its rows cost no pass
        of their own. Later passes never see them: in the kept cache they are masked like padding."""
        from transformers import DynamicCache
        self.model, self.base, self.dev = model, model.base_model, next(model.parameters()).device
        cfg = model.config
        self.layer_types = getattr(cfg, "layer_types", None)
        self.window = getattr(cfg, "sliding_window", None) if self.layer_types else None
        self.eager = cfg._attn_implementation == "eager"
        self.lens = [len(c) for c in ctxs]
        self.ahead = [list(a) for a in ahead] if ahead is not None else [[] for _ in ctxs]
        rows = pack_rows([n + len(a) for n, a in zip(self.lens, self.ahead)], ROW_TOKENS)
        width = max(sum(self.lens[i] + len(self.ahead[i]) for i in r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        seg = _NO_SEGMENT - torch.arange(width).repeat(len(rows), 1)
        kept = seg.clone()                       # the segments later passes see: prompts only
        self.where = [None] * len(ctxs)          # prompt -> (row, column of its last token)
        for r, members in enumerate(rows):
            col = 0
            for i in members:
                n, m = self.lens[i], len(self.ahead[i])
                ids[r, col:col + n + m] = torch.tensor(ctxs[i] + self.ahead[i])
                pos[r, col:col + n + m] = torch.arange(n + m)
                seg[r, col:col + n + m] = i
                kept[r, col:col + n] = i
                self.where[i] = (r, col + n - 1)
                col += n + m
        self.seg, self.pos = kept, pos
        # No config: every layer keeps its whole cache (a sliding layer's own cache would trim
        # the packed row); the mask applies the window instead, by position.
        out = self.base(input_ids=ids.to(self.dev), position_ids=pos.to(self.dev),
                        attention_mask=self._mask(seg, pos, seg, pos), cache=DynamicCache(),
                        use_cache=True)
        self.cache = out.cache
        last = torch.tensor([w for w in self.where])
        hidden = out.last_hidden_state
        self.slot = head_logp(model, hidden[last[:, 0], last[:, 1]])       # (N, V)
        # the body's output after each teacher-forced token (row j + 1 of that path); the head
        # runs on them only when asked for
        self.ahead_hidden = [hidden[r, c + 1:c + 1 + len(a)] for (r, c), a in zip(self.where, self.ahead)]

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
        packed end to end into pass rows of about equal length (``continuation_rows``), at most
        ``call_tokens`` tokens a pass; a pass row sees the cache rows of every prompt it serves."""
        out: list = [None] * len(items)
        run, ready = [], []
        for k, (i, toks, first) in enumerate(items):
            if first == 0:
                out[k] = self.slot[i:i + 1]
            if len(toks) >= max(first, 1):
                (ready if list(toks) == self.ahead[i] else run).append(k)
        if ready:   # paths run in the prompts' own pass: only the head is left to run
            hid = [self.ahead_hidden[items[k][0]][max(items[k][2] - 1, 0):] for k in ready]
            logp = torch.split(head_logp(self.model, torch.cat(hid)), [len(h) for h in hid])
            for k, rows in zip(ready, logp):
                out[k] = rows if out[k] is None else torch.cat([out[k], rows])
        run.sort(key=lambda k: (self.where[items[k][0]][0], k))     # by cache row: few per pass row
        for part in continuation_rows([len(items[k][1]) for k in run], ROW_TOKENS, call_tokens):
            self._run([[run[m] for m in members] for members in part], items, out)
        return out

    def _run(self, packed: list[list[int]], items, out):
        """One pass: each pass row holds items end to end and sees the cache rows of their prompts
        side by side (G of them at most; a row short of G repeats one, masked out)."""
        lens = [sum(len(items[k][1]) for k in ks) for ks in packed]
        width, n = max(lens), len(packed)
        ids = torch.zeros((n, width), dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        q_fact = _NO_SEGMENT - torch.arange(width).repeat(n, 1)
        q_item = q_fact.clone()
        spans = []                                   # (item, pass row, first column, rows wanted)
        sources = []                                 # per pass row: the cache rows it sees
        for r, ks in enumerate(packed):
            col = 0
            sources.append(list(dict.fromkeys(self.where[items[k][0]][0] for k in ks)))
            for k in ks:
                i, toks, first = items[k]
                L = len(toks)
                ids[r, col:col + L] = torch.tensor(toks)
                pos[r, col:col + L] = self.lens[i] + torch.arange(L)
                q_fact[r, col:col + L] = i
                q_item[r, col:col + L] = k
                spans.append((k, r, col, range(max(first - 1, 0), L)))
                col += L
        G = max(map(len, sources))
        idx = torch.tensor([src + src[:1] * (G - len(src)) for src in sources])          # (n, G)
        W = self.seg.shape[1]
        seg, cpos = self.seg[idx], self.pos[idx]                                         # (n, G, W)
        for r, src in enumerate(sources):            # a repeated row is seen by no one
            seg[r, len(src):] = 2 * _NO_SEGMENT - torch.arange((G - len(src)) * W).view(-1, W)
        seg, cpos = seg.reshape(n, G * W), cpos.reshape(n, G * W)
        mask_cache = self._mask(q_fact, pos, seg, cpos)
        mask_new = self._mask(q_item, pos, q_item, pos)
        cat = (lambda a, b: torch.cat([a, b], dim=-1))
        mask = ({kind: cat(mask_cache[kind], mask_new[kind]) for kind in mask_cache}
                if isinstance(mask_cache, dict) else cat(mask_cache, mask_new))
        hidden = self.base(input_ids=ids.to(self.dev), position_ids=pos.to(self.dev),
                           attention_mask=mask, cache=_side_by_side(self.cache, idx.to(self.dev)),
                           use_cache=True).last_hidden_state                 # (n, width, H)
        rr = [r for _, r, col, want in spans for _ in want]
        cc = [col + j for _, r, col, want in spans for j in want]
        logp = torch.split(head_logp(self.model, hidden[rr, cc]), [len(want) for *_, want in spans])
        for (k, *_), rows in zip(spans, logp):
            out[k] = rows if out[k] is None else torch.cat([out[k], rows])
