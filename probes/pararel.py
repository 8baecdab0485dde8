"""Paraphrase consistency (ParaRel): does the model give the same answer to the same question
asked in different words?

    result = PROBE.score(model, tokenizer, "causal", lama_dir(), limit=10)
    result.metrics["consistency"]["value"]   # share of pattern pairs whose predictions agree

For each T-REx fact (``--limit`` facts per relation, the same hash-chosen facts as the ``trex``
probe) and each ParaRel pattern of its relation (``ParaRel/P*.jsonl``, Elazar et al. 2021), the
object is ranked among the relation's candidate objects with the LAMA scoring of probes/lama.py.
One example per (fact, pattern): ``uid`` = ``pararel/<relation>/<fact id>#p<pattern index>``,
``fact`` = the T-REx fact's uid, ``pattern`` = the pattern's line index in its file.
Consistency (ParaRel's measure) = for each fact, the share of pattern pairs whose top-1
predictions agree, averaged over facts (benchmarks/analysis.py computes it from the examples).

Which patterns: causal LMs read left to right, so for them only patterns whose slot is last and
after the subject count (the same slot-last rule lama_data uses to pick a causal template);
masked and encoder-decoder models take every pattern. At most ``$KCB_PARAREL_PATTERNS``
(default 6) patterns per relation, the first eligible ones in file order (ParaRel's files start
with LAMA's own template), which keeps a case at about 6x the cost of ``trex``. Relations with
fewer than two eligible patterns are left out and listed in the record's ``excluded``.
"""
from __future__ import annotations

import hashlib
from itertools import combinations
import os
from pathlib import Path

from probes.registry import REAL_SOURCES, Probe, register_probe

# probes.lama_data is imported inside the functions: `python -m probes.lama_data` imports this
# package (and so this module) first, and must find lama_data not yet imported.

VERSION = "pararel-2"   # bump when pattern choice or scoring changes (2: exact call-scoped scoring, lama-2)
DEFAULT_MAX_PATTERNS = 6


def max_patterns() -> int:
    raw = os.environ.get("KCB_PARAREL_PATTERNS", str(DEFAULT_MAX_PATTERNS))
    if not raw.isdigit() or int(raw) < 2:
        raise ValueError(f"KCB_PARAREL_PATTERNS={raw!r}: need a whole number >= 2 (patterns per "
                         "relation; consistency needs pairs)")
    return int(raw)


def eligible(pattern: str, family: str) -> bool:
    from probes.lama_data import SLOT, slot_is_last
    if pattern.count("[X]") != 1 or pattern.count(SLOT) != 1:
        return False
    if family == "causal":
        return slot_is_last(pattern) and pattern.find("[X]") < pattern.find(SLOT)
    return True


def facts_and_patterns(root: Path, family: str, limit: int | None, cap: int):
    """(facts to score, candidates, per-relation templates, excluded, checksum, files)."""
    from probes.lama_data import Fact, LamaDataError, load_subset, read_pararel_patterns
    pararel = root / "ParaRel"
    if not pararel.is_dir():
        raise LamaDataError(f"no ParaRel folder in {root}: the LAMA download provides it "
                            "(python -m probes.lama_data download)")
    trex = load_subset(root, "trex", limit=limit)
    digest = hashlib.sha256(trex.checksum.encode())
    facts, templates, excluded, files = [], {}, [], list(trex.files)
    by_rel: dict[str, list[Fact]] = {}
    for f in trex.facts:
        by_rel.setdefault(f.group, []).append(f)
    for rel in sorted(by_rel):
        path = pararel / f"{rel}.jsonl"
        if not path.is_file():
            excluded.append({"relation": rel, "reason": "no ParaRel patterns"})
            continue
        files.append(str(path.relative_to(root)))
        chosen = [(i, p) for i, p in enumerate(read_pararel_patterns(path, digest)) if eligible(p, family)][:cap]
        if len(chosen) < 2:
            excluded.append({"relation": rel, "reason": f"{len(chosen)} eligible pattern(s) for "
                                                        f"{family} models; consistency needs two"})
            continue
        templates[rel] = {"template": trex.templates[rel]["template"], "type": trex.templates[rel]["type"],
                          "patterns": {str(i): p for i, p in chosen}}
        for fact in by_rel[rel]:
            for i, p in chosen:
                text = p.replace("[X]", fact.subject)
                causal = text if eligible(p, "causal") else None
                facts.append((Fact(f"pararel/{rel}/{fact.uid.rsplit('/', 1)[1]}#p{i}", "pararel", rel,
                                   fact.subject, fact.obj, text, causal), fact.uid, i))
    if not facts:
        raise LamaDataError(f"no ParaRel relation in {pararel} has two patterns usable by {family} models")
    return facts, trex.candidates, templates, excluded, digest.hexdigest(), files


def consistency(record: dict) -> dict | None:
    """ParaRel consistency of one record: for each fact predicted under several patterns, the
    share of pattern pairs whose predictions agree; mean over facts (micro) and over relations
    (macro), plus the share of facts right under every pattern. None for records without
    per-pattern examples (``fact`` and ``pattern`` fields)."""
    facts: dict[str, list[dict]] = {}
    for e in record.get("examples", []):
        if "fact" in e and "pattern" in e:
            facts.setdefault(e["fact"], []).append(e)
    per_fact, by_rel, all_right = [], {}, 0
    for fact, es in sorted(facts.items()):
        if len(es) < 2:
            continue
        pairs = list(combinations(es, 2))
        agree = sum(a["prediction"] == b["prediction"] for a, b in pairs) / len(pairs)
        per_fact.append(agree)
        by_rel.setdefault(es[0]["group"], []).append(agree)
        all_right += all(e["rank"] == 1 for e in es)
    if not per_fact:
        return None
    n = len(per_fact)
    mean = sum(per_fact) / n
    var = sum((v - mean) ** 2 for v in per_fact) / (n - 1) if n > 1 else 0.0
    return {"value": mean, "stderr": (var / n) ** 0.5, "n_facts": n,
            "macro": sum(sum(v) / len(v) for v in by_rel.values()) / len(by_rel),
            "all_patterns_correct": all_right / n,
            "by_relation": {r: sum(v) / len(v) for r, v in sorted(by_rel.items())}}



class ParaRelProbe(Probe):
    def scorer_version(self) -> str:   # LAMA's scorer ranks every pattern: both versions matter
        from probes.lama import VERSION as LAMA
        return f"{VERSION}+{LAMA}"

    def data_checksum(self, lama_root) -> str:
        return facts_and_patterns(Path(lama_root), "masked", 1, 2)[4]

    def score(self, model, tokenizer, family, data_root, limit=None, batch_size=None):
        from probes.lama import SCORING, score_facts, scoring
        from probes.result import ProbeResult
        cap = max_patterns()
        facts, candidates, templates, excluded, checksum, files = facts_and_patterns(
            Path(data_root), family, limit, cap)
        examples = score_facts(model, tokenizer, family, [f for f, _, _ in facts], candidates,
                               batch_size, desc="pararel")
        for e, (_, fact_uid, i) in zip(examples, facts):
            e["fact"], e["pattern"] = fact_uid, i
        meta = {"subset": "pararel", "version": self.scorer_version(), "data_checksum": checksum,
                "files": files, "limit": limit, "method": SCORING[family],
                "scoring": scoring(model, family, batch_size),
                "candidates": "objects of the same relation (as trex)", "max_patterns": cap,
                "pattern_rule": "slot last, after the subject" if family == "causal" else "every pattern",
                "templates": templates, "excluded": excluded}
        result = ProbeResult.from_examples(examples, meta)
        cons = consistency({"examples": examples})
        result.metrics["consistency"] = {
            "value": cons["value"], "stderr": cons["stderr"], "macro": cons["macro"],
            "macro_stderr": None, "higher_is_better": True}
        result.metrics["all_patterns_correct"] = {
            "value": cons["all_patterns_correct"], "stderr": None, "macro": None,
            "macro_stderr": None, "higher_is_better": True}
        return result


# Not on tiny models: their random weights make every candidate a contender, so the exact
# search scores nearly all of them (minutes per case); tests cover the probe on small data.
PROBE = ParaRelProbe("pararel", "lama", "pararel", sources=REAL_SOURCES,
                     default=False)   # ~4x a T-REx case: the knowledge report, not the main job
register_probe(PROBE)
