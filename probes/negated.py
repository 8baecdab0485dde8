"""Negated LAMA (Kassner & Schuetze, ACL 2020): does the model still give the object when the
sentence says the opposite? It should not.

    result = PROBE.score(model, tokenizer, "causal", lama_dir(), limit=10)
    result.metrics["negated_top1"]["value"]   # lower is better

Data: Negated LAMA's T-REx files, read by probes/negated_data.py (``$KCB_NEGATED_DIR``, else
``lama-negated`` beside the LAMA folder; ``python -m probes.negated_data download``).

Scoring: both sentences of a fact are scored with probes/lama.py's LAMA scoring and the same
candidate set, the objects of the same relation in the Negated-LAMA file (typed candidates, as
for ``trex``; the original work ranked BERT's whole vocabulary, which a decoder cannot do
fairly). For causal LMs a sentence with the slot last is cut at the slot; one with words after
the slot ("[X] does not play in [Y] position .") is scored on the whole sentence, for the
positive and the negated sentence alike, so the pair stays comparable. Each example's ``rank``
is the positive sentence's (so P@1 and the retention gate mean what they mean for ``trex``);
``negated_rank`` and ``negated_prediction`` are the negated sentence's. Metric
``negated_top1``: share of facts whose object is still ranked first under negation (lower is
better); ``negated_top1_known``: the same among facts the model gets right un-negated.
"""
from __future__ import annotations

from pathlib import Path

from probes.registry import REAL_SOURCES, Probe, register_probe

VERSION = "negated-2"   # bump when sentences, candidates or scoring change (2: own version)


class NegatedProbe(Probe):
    def scorer_version(self) -> str:   # LAMA's scorer ranks both sentences
        from probes.lama import VERSION as LAMA
        return f"{VERSION}+{LAMA}"

    def data_checksum(self, lama_root) -> str:
        from probes.negated_data import load, negated_dir
        return load(negated_dir(Path(lama_root)), 1)[3]

    def score(self, model, tokenizer, family, data_root, limit=None, batch_size=None):
        from probes.lama import SCORING, score_facts, scoring
        from probes.negated_data import load, negated_dir
        from probes.result import ProbeResult, mean_stderr
        root = negated_dir(Path(data_root))
        pos, neg, candidates, checksum, files = load(root, limit)
        examples = score_facts(model, tokenizer, family, pos + neg, candidates, batch_size,
                               desc="negated")
        positive, negated = examples[:len(pos)], examples[len(pos):]
        for e, n in zip(positive, negated):
            e.update(negated_rank=n["rank"], negated_prediction=n["prediction"],
                     negated_text=n["text"])
        meta = {"subset": "negated-trex", "version": self.scorer_version(), "data_checksum": checksum,
                "data_dir": str(root), "files": files, "limit": limit, "method": SCORING[family],
                "scoring": scoring(model, family, batch_size),
                "candidates": "objects of the same relation in the Negated-LAMA file",
                "candidate_counts": {g: len(c) for g, c in sorted(candidates.items())}}
        result = ProbeResult.from_examples(positive, meta)
        first = [float(e["negated_rank"] == 1) for e in positive]
        value, se = mean_stderr(first)
        result.metrics["negated_top1"] = {"value": value, "stderr": se, "macro": None,
                                          "macro_stderr": None, "higher_is_better": False}
        known = [f for f, e in zip(first, positive) if e["rank"] == 1]
        kv, ks = mean_stderr(known) if known else (None, None)
        result.metrics["negated_top1_known"] = {"value": kv, "stderr": ks, "macro": None,
                                                "macro_stderr": None, "higher_is_better": False}
        return result


# Not on tiny models (see probes/pararel.py); tests cover the probe on small data.
PROBE = NegatedProbe("negated", "lama", "negated-trex", sources=REAL_SOURCES,
                     default=False)   # the knowledge report's probe, not the main job's
register_probe(PROBE)
