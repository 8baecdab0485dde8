"""LAMA's strict, open-vocabulary protocol, beside the lenient candidate-ranked one.

    opened, meta = open_answers(model, tokenizer, "causal", subset.facts, subset.candidates)
    opened["trex/P19/..."]  -> {"answer": " Paris, France", "correct": True, "rank": None} or None

Two protocols score every LAMA fact (score_subset puts both in each record):

* **lenient** (``p_at_1``, ``p_at_10``, ``mrr``; probes/lama.py): the gold object is ranked among
  the candidate objects of its relation (T-REx, Google-RE: up to ~400 objects of the same
  relation; ConceptNet, SQuAD: every object of the subset) by the log-probability of its whole
  token sequence. The model is told the answer's type and only has to prefer the right member.
  Every fact is scored.
* **strict** (``open_p_at_1``, masked also ``open_p_at_5``; this module): the model must produce
  the object out of its whole vocabulary, with nothing to choose from.

  - *masked LM* (the LAMA paper's protocol, Petroni et al. 2019): the slot becomes one mask
    token; the object's token is ranked among all tokens of the model's vocabulary except its
    special tokens (the paper restricted all models to a 21k common vocabulary to compare them;
    this is each model's own, larger one). rank = 1 + the tokens scoring strictly higher (ties go
    to the object, as in the lenient rank); ``open_p_at_1``/``open_p_at_5``: rank 1 / rank <= 5;
    the answer recorded is the top token. Eligible: facts whose object is one token, not the
    unknown token (tokenized as the lenient scorer does, with the space before the slot).
  - *causal LM*: the prompt is the one the lenient scorer uses (the sentence cut before the slot,
    from a template whose slot is last: LAMA's own, else the first ParaRel paraphrase with the
    slot last, which covers the six T-REx relations whose LAMA template has it mid-sentence).
    The answer is the greedy continuation. It is correct when its first words are the object's
    words (``match``: case-folded, NFKC, punctuation and spacing ignored, one leading article
    "the/a/an" dropped from each side, words compared whole, so "Paris, France" answers "Paris"
    but "Parisian" and "the city of Paris" do not). Eligible: facts with a slot-last sentence.
    Facts that have only a mid-sentence slot (10 ConceptNet, 92 SQuAD sentences; the lenient
    protocol scores them on the whole sentence) are not eligible: a greedy continuation cannot see
    the words after the slot, so the object is often not what the prefix asks for.
  - *seq2seq (T5)*: the slot becomes ``<extra_id_0>``; the decoder starts with that sentinel (as in
    the lenient scorer) and greedily decodes the span up to ``<extra_id_1>`` (or any special
    token). Correct when the span's words equal the object's words exactly (same normalisation).
    Every fact is eligible.

  Decoding stops at a special token (EOS, a sentinel), a newline, after ``max_new_tokens`` (the
  longest candidate object of the subset in the model's tokens, plus MARGIN), or as soon as the
  verdict is settled (``settled``): the object's words followed by a word boundary such as ", "
  or ". ", or a word that differs from the object's word at its place, or is being written and
  can no longer become it (" clim" for "mathematics"; " the" waits for the next word). A
  settled answer gets the same verdict as decoding on to the budget would give; the recorded
  ``answer`` is the text up to where decoding stopped. An answer that reaches the budget is judged
  as it stands (its end counts as a word boundary).

Metrics (probes/result.py): ``open_p_at_1`` (and ``open_p_at_5``) is the share of *eligible*
facts answered, with its standard error, its macro average over the groups that have eligible
facts, and ``n``, the eligible count; each group carries ``open_n`` and its own value (None where
none of its facts is eligible). Absent when no fact is eligible (e.g. a masked LM whose tokenizer
makes every object several tokens). Each example carries ``open``: {"answer", "correct", "rank"}
(rank: full-vocabulary rank for masked LMs, else None), or None when not eligible. The record's
``probe.open`` says which path decoded it, the budget and the eligible count.

Batch invariance: a greedy answer must not depend on what shares its forward call. Models with a
call-scoped quantizer (probes/callscope.py: torch dynamic int8, LLM.int8) are decoded one
sequence per call, with no padding and no cache (every step one forward over prompt + answer so
far): exact by construction. Causal models that score through the packed prompt cache are decoded
on it (``PackedOpener``: the same masks and positions as the lenient ranking, no padding). Other
models are decoded in batches of up to ``batch_size`` prompts
of one length, with a KV cache: no batch is padded, so no row attends over, or is quantized
with, a padding token, and only the rounding of larger matrix products can differ (a first,
left-padded version gave different full-vocabulary ranks at batch 1 and 64 on a torchao-w8a8 BERT).
tests/test_lama_open_batch.py checks that batch 1, batch 64 and one sequence per call give the
same answers on dense, pruned, nf4 and torchao-int8 tiny models of every family.
Only the last position meets the vocabulary head (``logits_to_keep=1``): Gemma's head has 262k rows.
"""
from __future__ import annotations

import inspect
import re
import unicodedata

import torch

from probes.callscope import is_call_scoped
from probes.lama_data import SLOT, Fact

PROTOCOL = {
    "masked": "one mask token; the object's token ranked over the model's whole vocabulary "
              "(special tokens excluded); single-token objects only",
    "causal": "greedy continuation of the slot-last prompt; correct when its first words are the "
              "object's words (normalised); slot-last facts only",
    "seq2seq": "greedy sentinel span <extra_id_0> ... <extra_id_1>; correct when its words equal "
               "the object's words (normalised)",
}
# Tokens decoded beyond the subset's longest object: a leading article (" the", " a"), one token
# that closes the last word (", " / "." / " "), and one spare for a word the model spells in more
# pieces in context than the object takes alone.
MARGIN = 3
ARTICLES = frozenset({"the", "a", "an"})
_WORD = re.compile(r"\w+(?:['’\-]\w+)*")
_ARTICLE_STARTS = {a[:i] for a in ARTICLES for i in range(1, len(a) + 1)}
_OPEN_END = re.compile(r"[\w'’\-]$")


# ------------------------------------------------------------------------------ matching
def words(text: str) -> list[str]:
    """The words of ``text`` as the strict protocol compares them: NFKC, case-folded, runs of
    letters/digits (joined by an inner apostrophe or hyphen); everything else is a separator.
    One leading article is dropped when a word follows it."""
    found = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return found[1:] if len(found) > 1 and found[0] in ARTICLES else found


def match(answer: str, obj: str, exact: bool = False) -> bool:
    """Whether ``answer`` names ``obj``: its first words are the object's words (``exact``: its
    words are exactly the object's words). An object without words matches nothing."""
    want, got = words(obj), words(answer)
    return bool(want) and (got == want if exact else got[:len(want)] == want)


def settled(partial: str, obj: str, exact: bool = False) -> bool:
    """Whether ``match(partial + anything, obj, exact)`` is already decided by ``partial``.

    Its complete words (the last one is complete only once a separator follows it) either
    already differ from the object's words or already contain them all (prefix match); or the
    word still being written cannot become the object's word at its place: "Edmon" may, "Edmun"
    may not become "edmonton" (its last character is left out of that test: a combining accent in
    the next token would change it)."""
    text = unicodedata.normalize("NFKC", partial).casefold()
    found = _WORD.findall(text)
    # The last word may still grow ("Paris" -> "Parisian", "Saint-" -> "Saint-Denis"); a trailing
    # U+FFFD is half a character (a byte-level token that splits a UTF-8 sequence).
    growing = found.pop() if found and (_OPEN_END.search(text) or text.endswith("\ufffd")) else None
    if found and found[0] in ARTICLES and (len(found) > 1 or growing is not None):
        found = found[1:]      # a word follows the article: it is dropped
    elif found and found[0] in ARTICLES or not found and growing in _ARTICLE_STARTS:
        return False           # an article (or its start) that may be dropped or be the answer
    want = words(obj)
    if found != want[:len(found)]:
        return True
    if len(found) >= len(want):
        return len(found) > len(want) or growing is not None if exact else True
    return bool(growing) and not want[len(found)].startswith(growing[:-1])


# ------------------------------------------------------------------------------ decoding
class _Answer:
    """One fact's greedy answer as it grows: token ids, text, and whether decoding is over."""

    def __init__(self, obj: str, budget: int, exact: bool):
        self.obj, self.budget, self.exact = obj, budget, exact
        self.ids: list[int] = []
        self.text, self.done = "", False

    def push(self, token: int, tokenizer, stop_ids: set[int]) -> None:
        if token in stop_ids:
            self.done = True
            return
        self.ids.append(token)
        text = tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.text, newline, _ = text.partition("\n")
        self.done = bool(newline) or len(self.ids) >= self.budget or settled(self.text, self.obj, self.exact)

    def result(self) -> dict:
        return {"answer": self.text, "correct": match(self.text, self.obj, self.exact), "rank": None}


def _params(model) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _keep_last(model) -> dict:
    """Ask the model for the last position's logits only, where it can (transformers causal LMs)."""
    return {"logits_to_keep": 1} if "logits_to_keep" in _params(model) else {}


def _no_cache(model) -> dict:
    """One-sequence-per-call steps build no cache (nothing would reuse it)."""
    return {"use_cache": False} if "use_cache" in _params(model) else {}


def _argmax(logits: torch.Tensor) -> list[int]:
    return logits.float().argmax(dim=-1).tolist()   # ties: the lowest token id, on every path


def _batched(model, family: str) -> bool:
    """Whether ``model`` is decoded in batches with a KV cache: its forward takes a cache, and no
    module takes a statistic over the whole call (probes/callscope.py)."""
    need = {"cache", "use_cache"} | ({"encoder_outputs"} if family == "seq2seq" else set())
    return need <= _params(model) and not is_call_scoped(model)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _same_length(seqs: list[list[int]], size: int) -> list[list[int]]:
    """Indices of ``seqs`` in batches of at most ``size`` sequences of one length: no batch is
    padded, so no row ever attends over, or is quantized with, a padding token."""
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    return [idx[k:k + size] for _, idx in sorted(by_len.items()) for k in range(0, len(idx), size)]


def _push(answers: list[_Answer], chunk: list[int], nxt: list[int], tokenizer, stop_ids) -> list[int]:
    """One decoded token per row of ``chunk``; the rows whose answers are still open."""
    for r, i in enumerate(chunk):
        answers[i].push(nxt[r], tokenizer, stop_ids)
    return [r for r, i in enumerate(chunk) if not answers[i].done]


def _shrink(cache, rows: list[int], n: int, dev) -> bool:
    """Keep only ``rows`` of the ``n`` in the KV cache (finished answers leave the batch: on
    Gemma a row's vocabulary head costs more than its body); whether any row is left."""
    if rows and len(rows) < n:
        cache.reorder_cache(torch.tensor(rows, device=dev))
    return bool(rows)


def _decode_causal(model, prompts: list[list[int]], answers: list[_Answer], tokenizer, stop_ids,
                   batch_size: int) -> None:
    dev, keep, cached = _device(model), _keep_last(model), _batched(model, "causal")
    alone = {**keep, **_no_cache(model)}
    for chunk in _same_length(prompts, batch_size if cached else 1):
        if not cached:   # one sequence per call, no cache: each step runs prompt + answer so far
            prompt, ans = prompts[chunk[0]], answers[chunk[0]]
            while not ans.done:
                ids = torch.tensor([prompt + ans.ids], device=dev)
                logits = model(input_ids=ids, **alone).logits
                ans.push(_argmax(logits[:, -1])[0], tokenizer, stop_ids)
            continue
        out = model(input_ids=torch.tensor([prompts[i] for i in chunk], device=dev), use_cache=True, **keep)
        nxt, cache = _argmax(out.logits[:, -1]), out.cache
        while _shrink(cache, rows := _push(answers, chunk, nxt, tokenizer, stop_ids), len(chunk), dev):
            chunk, nxt = [chunk[r] for r in rows], [nxt[r] for r in rows]
            out = model(input_ids=torch.tensor(nxt, device=dev)[:, None], cache=cache, use_cache=True, **keep)
            nxt, cache = _argmax(out.logits[:, -1]), out.cache


class PackedOpener:
    """Causal greedy answers decoded on the lenient scorer's own packed prompt cache
    (probes/lama_cache.PromptCache): the first token is the argmax of the slot's row that the
    ranking computed anyway, and each later step runs every open answer's tokens beside its prompt
    (4-D segment mask, no padding) in a pass the ranking's search makes anyway while it has rounds
    left, in one pass of its own after that; instead of a pass per group of prompts of one length.
    probes/lama.py starts it on each chunk of facts it ranks; ``result`` then gives what
    ``open_answers`` gives. Eligibility, budget, stopping and matching are this module's, unchanged.
    Greedy here is the argmax of the log-probs (ties to the lowest token id)."""

    PATH = "packed beside the lenient ranking's prompt cache (4-D mask, no padding)"

    def __init__(self, tokenizer, candidates: dict[str, list[str]], call_tokens: int):
        self.tok, self.call_tokens = tokenizer, call_tokens
        self.budget = _budget(tokenizer, candidates, " ")
        self.stop_ids = set(tokenizer.all_special_ids)
        self.out: dict[str, dict] = {}
        self.used = False

    def start(self, chunk: list[tuple[Fact, list[int]]], prompts) -> "_Steps":
        """chunk: (fact, its prompt's ids) in the order of ``prompts``'s prompts; the eligible
        facts' first tokens are taken from the slot rows."""
        self.used = True
        steps = _Steps(self, prompts)
        for i, (f, ctx) in enumerate(chunk):
            prompt = _prompt(f.causal_text)[0] if f.causal_text is not None else ""
            if not words(prompt) or not words(f.obj):   # mid-sentence slot only: not eligible
                continue
            if ctx != self.tok(prompt)["input_ids"]:
                raise ValueError(f"{f.uid}: the ranking's prompt is not the strict protocol's")
            steps.index.append(i)
            steps.answers.append(_Answer(f.obj, self.budget, exact=False))
            steps.uids.append(f.uid)
        steps.live = list(range(len(steps.answers)))
        if steps.live:
            steps.advance([prompts.slot[i:i + 1] for i in steps.index])
        return steps

    def result(self, facts: list[Fact]) -> tuple[dict[str, dict | None], dict]:
        out = {f.uid: self.out.get(f.uid) for f in facts}
        return out, {"protocol": PROTOCOL["causal"], "path": self.PATH, "max_new_tokens": self.budget,
                     "eligible": sum(o is not None for o in out.values())}


class _Steps:
    """One chunk's greedy answers as they grow: ``items()`` are the rows the next step needs (for
    PromptCache.rows), ``advance(rows)`` takes them, ``finish()`` runs the steps left alone."""

    def __init__(self, opener: PackedOpener, prompts):
        self.opener, self.prompts = opener, prompts
        self.index: list[int] = []
        self.answers: list[_Answer] = []
        self.uids: list[str] = []
        self.live: list[int] = []

    def items(self) -> list[tuple[int, list[int], int]]:
        return [(self.index[k], self.answers[k].ids, len(self.answers[k].ids)) for k in self.live]

    def advance(self, rows: list[torch.Tensor]) -> None:
        """rows: per live answer, rows whose last is the distribution of its next token."""
        o = self.opener
        for k, t in zip(self.live, _argmax(torch.cat([r[-1:] for r in rows]))):
            self.answers[k].push(t, o.tok, o.stop_ids)
        self.live = [k for k in self.live if not self.answers[k].done]
        if not self.live:
            o.out.update({u: a.result() for u, a in zip(self.uids, self.answers)})

    def finish(self) -> None:
        while self.live:
            self.advance(self.prompts.rows(self.items(), call_tokens=self.opener.call_tokens))


def _decode_seq2seq(model, encs: list[list[int]], answers: list[_Answer], tokenizer, stop_ids,
                    batch_size: int, start_ids: list[int]) -> None:
    dev, cached, alone = _device(model), _batched(model, "seq2seq"), _no_cache(model)
    for chunk in _same_length(encs, batch_size if cached else 1):
        ids = torch.tensor([encs[i] for i in chunk], device=dev)
        if not cached:   # one sequence per call, no cache: each step runs the encoder and decoder
            ans = answers[chunk[0]]
            while not ans.done:
                dec = torch.tensor([start_ids + ans.ids], device=dev)
                logits = model(input_ids=ids, decoder_input_ids=dec, **alone).logits
                ans.push(_argmax(logits[:, -1])[0], tokenizer, stop_ids)
            continue
        encoded = model.get_encoder()(input_ids=ids).last_hidden_state
        dec = torch.tensor([start_ids] * len(chunk), device=dev)
        out = model(encoder_outputs=(encoded,), decoder_input_ids=dec, use_cache=True)
        nxt, cache = _argmax(out.logits[:, -1]), out.cache
        while _shrink(cache, rows := _push(answers, chunk, nxt, tokenizer, stop_ids), len(chunk), dev):
            if len(rows) < len(chunk):
                encoded = encoded[torch.tensor(rows, device=dev)]
            chunk, nxt = [chunk[r] for r in rows], [nxt[r] for r in rows]
            out = model(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor(nxt, device=dev)[:, None],
                        cache=cache, use_cache=True)
            nxt, cache = _argmax(out.logits[:, -1]), out.cache


def _masked_ranks(model, tokenizer, jobs: list[tuple[list[int], int, int]],
                  batch_size: int) -> list[tuple[int, int]]:
    """jobs: (input ids, mask position, gold token) -> (rank of gold over the vocabulary without
    special tokens (1 + tokens scoring strictly higher), top token) per job."""
    dev = _device(model)
    special = sorted(set(tokenizer.all_special_ids))
    out: list = [None] * len(jobs)
    for chunk in _same_length([s for s, _, _ in jobs], 1 if is_call_scoped(model) else batch_size):
        logits = model(input_ids=torch.tensor([jobs[j][0] for j in chunk], device=dev)).logits
        for r, j in enumerate(chunk):
            row = logits[r, jobs[j][1]].float()
            row[special] = float("-inf")
            out[j] = (1 + int((row > row[jobs[j][2]]).sum()), int(row.argmax()))
    return out


# ------------------------------------------------------------------------------ entry point
def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _prompt(text: str) -> tuple[str, str, str]:
    """(prompt, separator before the slot, text after it), as the lenient scorer cuts it."""
    left, right = text.split(SLOT, 1)
    prompt = left.rstrip()
    return prompt, left[len(prompt):], right


def _budget(tokenizer, candidates: dict[str, list[str]], lead: str) -> int:
    """Tokens to decode: the subset's longest candidate object, in this tokenizer, plus MARGIN.
    Drawn from all candidates (not the facts probed), so it does not change with --limit."""
    objects = {o for objs in candidates.values() for o in objs}
    return max(len(_tokens(tokenizer, lead + o)) for o in objects) + MARGIN


def open_answers(model, tokenizer, family: str, facts: list[Fact], candidates: dict[str, list[str]],
                 batch_size: int = 32) -> tuple[dict[str, dict | None], dict]:
    """The strict protocol for ``facts``: uid -> {"answer", "correct", "rank"} (None where the
    fact is not eligible, see the module docstring), and what the record's meta needs."""
    if family not in PROTOCOL:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(PROTOCOL)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    stop_ids = set(tokenizer.all_special_ids)
    out: dict[str, dict | None] = {f.uid: None for f in facts}
    per_call = is_call_scoped(model) or (family != "masked" and not _batched(model, family))
    meta = {"protocol": PROTOCOL[family],
            "path": "one sequence per call, no padding, no cache" if per_call else
            f"batches of {batch_size}" + ("" if family == "masked" else ", KV cache")}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        if family == "masked":
            jobs, uids = [], []
            for f in facts:
                prompt, sep, right = _prompt(f.text)
                gold = _tokens(tokenizer, (sep if prompt else "") + f.obj)
                if len(gold) != 1 or gold[0] == tokenizer.unk_token_id:
                    continue
                ids = tokenizer(prompt + sep + tokenizer.mask_token + right)["input_ids"]
                if ids.count(tokenizer.mask_token_id) != 1:
                    raise ValueError(f"could not place one mask token in {f.text!r}")
                jobs.append((ids, ids.index(tokenizer.mask_token_id), gold[0]))
                uids.append(f.uid)
            for uid, (rank, top) in zip(uids, _masked_ranks(model, tokenizer, jobs, batch_size)):
                out[uid] = {"answer": tokenizer.decode([top]).strip(), "correct": rank == 1, "rank": rank}
        elif family == "causal":
            budget = _budget(tokenizer, candidates, " ")
            start_ids = [t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None][:1]
            prompts, answers, uids = [], [], []
            for f in facts:
                prompt = _prompt(f.causal_text)[0] if f.causal_text is not None else ""
                if not words(prompt) or not words(f.obj):   # mid-sentence slot only: not eligible
                    continue
                ctx = tokenizer(prompt)["input_ids"] or start_ids
                prompts.append(ctx)
                answers.append(_Answer(f.obj, budget, exact=False))
                uids.append(f.uid)
            _decode_causal(model, prompts, answers, tokenizer, stop_ids, batch_size)
            out.update({u: a.result() for u, a in zip(uids, answers)})
            meta["max_new_tokens"] = budget
        else:
            open_id = tokenizer.convert_tokens_to_ids("<extra_id_0>")
            if open_id is None or open_id == tokenizer.unk_token_id:
                raise ValueError("encoder-decoder tokenizer has no <extra_id_0> sentinel: not a T5-style model")
            budget = _budget(tokenizer, candidates, "")
            encs, answers, uids = [], [], []
            for f in facts:
                if not words(f.obj):
                    continue
                left, right = f.text.split(SLOT, 1)
                encs.append(tokenizer(left + "<extra_id_0>" + right)["input_ids"])
                answers.append(_Answer(f.obj, budget, exact=True))
                uids.append(f.uid)
            _decode_seq2seq(model, encs, answers, tokenizer, stop_ids, batch_size,
                            [model.config.decoder_start_token_id, open_id])
            out.update({u: a.result() for u, a in zip(uids, answers)})
            meta["max_new_tokens"] = budget
    model.train(was_training)
    meta["eligible"] = sum(o is not None for o in out.values())
    return out, meta
