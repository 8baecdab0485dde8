"""The search over a fact's candidate token paths that finds the exact score of the gold and of
every candidate that could outrank it, without scoring the others.

    trie_search(plans, path_rows, rows_budget=256)   # fills plan.scores for each plan

Candidates share token prefixes; a prefix's log-prob bounds every candidate below it, so the
search opens a candidate's path only while its prefix still beats the gold's exact score. It is
the same for every model family: how a path's log-prob rows are computed is ``path_rows``, given
by the caller (probes/lama.py: packed causal cache, padded causal batch, or encoder-decoder
batch), so this file holds no model code and reads on its own.
A plan is any object with ``seqs`` (candidate token ids), ``gold`` (an index), ``scores`` (a dict
the search fills) and ``trie`` (None, or the trie shared with the plans of its relation).
"""
from __future__ import annotations

import torch


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


def trie_search(plans, path_rows, rows_budget: int):
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
