"""Running one case: load once, compress once per preset, probe, measure, record, gate.

    runner = Runner(options); record = runner.run(case, benchmark)

Holds at most one dense model (cases are ordered model by model) and one compressed model
(its probes run back to back), and the baseline result per (model, probe) for retention.
"""
from __future__ import annotations

import copy
import gc
import os
import platform
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks import models as model_registry
from benchmarks.record import SCHEMA, SCHEMA_VERSION, write_record
from benchmarks.stats import flips, is_correct, mcnemar_exact
from benchmarks.stats import retention as paired_retention
from compressors import compress
from probes.lama import VERSION as LAMA_VERSION

ALPHA = 0.05   # significance for "the drop is real" in the gate
LATENCY_BATCH = 16


class GateFailure(AssertionError):
    pass


class _PeakRSS:
    """Samples this process's resident memory every 20 ms (Linux /proc); the peak over a block."""

    def __init__(self):
        self.peak = self._rss()
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _loop(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip() if out.returncode == 0 else ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": v("transformers"), "gguf": v("gguf"),
            "pytest_benchmark": v("pytest-benchmark"), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device if device == "cpu" else torch.cuda.get_device_name(0),
            "git_sha": _git_sha()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def latency_workload(model, tokenizer, family, texts):
    """A fixed forward pass over ``texts`` (slot filled by mask/sentinel/cut): (fn, n_tokens)."""
    dev = next(model.parameters()).device
    if family == "masked":
        texts = [t.replace("[Y]", tokenizer.mask_token) for t in texts]
    elif family == "seq2seq":
        texts = [t.replace("[Y]", "<extra_id_0>") for t in texts]
    else:
        texts = [t.split("[Y]")[0].rstrip() or (tokenizer.bos_token or "") for t in texts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    enc = tokenizer(texts, return_tensors="pt", padding=True).to(dev)
    tokenizer.padding_side = side
    kwargs = dict(enc)
    if family == "seq2seq":
        kwargs["decoder_input_ids"] = torch.full((len(texts), 1), model.config.decoder_start_token_id,
                                                 device=dev)

    def run():
        with torch.inference_mode():
            model(**kwargs)
    return run, int(enc["attention_mask"].sum())


class Runner:
    def __init__(self, lama_root: Path, results_dir: Path, limit: int | None, device: str = "cpu",
                 batch_size: int = 32):
        self.lama_root, self.results_dir = lama_root, Path(results_dir)
        self.limit, self.device, self.batch_size = limit, device, batch_size
        self._dense = None          # (model id, model, tokenizer, info)
        self._compressed = None     # (model id, preset id, model, effect)
        self._baselines: dict = {}  # (model id, probe id) -> ProbeResult
        self._unavailable: dict = {}  # model id -> ModelUnavailable (asked once per session)
        self.summary: list[dict] = []
        self.env = environment(device)

    # -- models ------------------------------------------------------------------------------
    def dense(self, spec):
        if spec.id in self._unavailable:
            raise self._unavailable[spec.id]
        if self._dense is None or self._dense[0] != spec.id:
            self._dense = self._compressed = None
            gc.collect()
            try:
                model, tok, info = model_registry.load(spec, self.device)
            except model_registry.ModelUnavailable as exc:
                self._unavailable[spec.id] = exc
                raise
            self._dense = (spec.id, model, tok, info)
        return self._dense[1:]

    def compressed(self, spec, preset):
        model, tok, info = self.dense(spec)
        if preset.id == "none":   # measures the dense model; changes nothing, copies nothing
            return compress(model, "none", spec.family)
        if self._compressed is None or self._compressed[:2] != (spec.id, preset.id):
            self._compressed = None
            gc.collect()
            work = copy.deepcopy(model)
            work, effect = compress(work, preset.id, spec.family)
            self._compressed = (spec.id, preset.id, work, effect)
        return self._compressed[2], self._compressed[3]

    def _score(self, model, spec, probe):
        tok = self._dense[2]
        return probe.score(model, tok, spec.family, self.lama_root, limit=self.limit,
                           batch_size=self.batch_size)

    def baseline(self, spec, probe):
        key = (spec.id, probe.id)
        if key not in self._baselines:
            model, _, _ = self.dense(spec)
            self._baselines[key] = self._score(model, spec, probe)
        return self._baselines[key]

    # -- one case ----------------------------------------------------------------------------
    def run(self, case, benchmark) -> dict:
        started = _now()
        spec, preset, probe = case.model, case.preset, case.probe
        _, tok, info = self.dense(spec)
        model, effect = self.compressed(spec, preset)
        t0 = time.perf_counter()
        with _PeakRSS() as mem:
            if torch.cuda.is_available() and self.device != "cpu":
                torch.cuda.reset_peak_memory_stats()
            result = self._score(model, spec, probe)
        wall = time.perf_counter() - t0
        if preset.id == "none":
            self._baselines[(spec.id, probe.id)] = result
        # Latency: pytest-benchmark over repeated rounds of one fixed batch of this probe's prompts.
        texts = result.workload or [e["text"] for e in result.examples[:LATENCY_BATCH]]
        fn, n_tokens = latency_workload(model, tok, spec.family, texts)
        benchmark.extra_info["case_id"] = case.id
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
        if getattr(benchmark, "stats", None) is not None:
            mean_s, rounds = benchmark.stats.stats.mean, benchmark.stats.stats.rounds
        else:   # --benchmark-disable: pytest-benchmark ran it once untimed; time it ourselves
            times = []
            for _ in range(5):
                s0 = time.perf_counter(); fn(); times.append(time.perf_counter() - s0)
            mean_s, rounds = sum(times) / len(times), len(times)
        gate = self._gate(case, result)
        record = {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": case.id, "status": "ok",
            "model": info,
            "preset": {"id": preset.id, "method": preset.method, "params": preset.params,
                       "bits": preset.bits, "effect": effect},
            "probe": {"id": probe.id, "kind": probe.kind, "version": result.meta.get("version", LAMA_VERSION),
                      "data_checksum": result.meta["data_checksum"], "limit": self.limit,
                      "main_metric": probe.main_metric,
                      **{k: v for k, v in result.meta.items() if k not in ("data_checksum", "limit", "version")}},
            "metrics": result.metrics, "n": result.n, "groups": result.groups,
            "examples": result.examples,
            "latency": {"ms_per_example": 1000 * mean_s / len(texts),
                        "tokens_per_s": n_tokens / mean_s, "rounds": rounds,
                        "workload": f"one forward pass over {len(texts)} prompts of this probe",
                        "probe_wall_s": round(wall, 3), "facts_per_s": result.n / wall},
            "memory": {"peak_rss_bytes": mem.peak, "weight_bytes": effect["weight_bytes"],
                       "cuda_peak_bytes": torch.cuda.max_memory_allocated()
                       if torch.cuda.is_available() and self.device != "cpu" else None},
            "gate": gate, "environment": self.env,
            "timestamps": {"started": started, "finished": _now()},
        }
        write_record(self.results_dir, record)
        main = result.metrics[probe.main_metric]
        self.summary.append({"case_id": case.id, "metric": probe.main_metric, "value": main["value"],
                             # lm-eval reports no stderr for one example: print nan
                             "stderr": float("nan") if main["stderr"] is None else main["stderr"],
                             "retention": gate.get("retention"),
                             "verdict": gate["verdict"], "n": result.n})
        if gate["verdict"] == "fail":
            raise GateFailure(gate["message"])
        return record

    def _gate(self, case, result) -> dict:
        if case.preset.id == "none":
            return {"floor": None, "verdict": "baseline"}
        if case.probe.kind == "perplexity":   # no per-example correctness: recorded, not gated
            return {"floor": None, "verdict": "recorded",
                    "baseline_case": f"{case.model.id}__none__{case.probe.id}"}
        base = self.baseline(case.model, case.probe)
        metric = case.probe.main_metric
        b_correct = {e["uid"]: is_correct(e) for e in base.examples}
        c_correct = {e["uid"]: is_correct(e) for e in result.examples}
        lost, gained = flips(b_correct, c_correct)
        retention, b_val, c_val, n_shared = paired_retention(b_correct, c_correct)
        p = mcnemar_exact(lost, gained)
        gate = {"floor": case.floor, "baseline_case": f"{case.model.id}__none__{case.probe.id}",
                "facts_lost": lost, "facts_gained": gained, "mcnemar_p": p,
                "retention": retention}   # the value the case asserted on; readers recompute
        if case.floor is None:
            gate["verdict"] = "recorded"
        elif retention is None:
            gate["verdict"] = "no-signal"   # the dense model knows none of these facts
        elif retention < case.floor and p < ALPHA:
            gate["verdict"] = "fail"
            gate["message"] = (
                f"{case.model.id} at {case.preset.id} on {case.probe.id}: {metric} retention "
                f"{retention:.3f} is below the floor {case.floor:.2f} ({c_val:.3f} vs dense "
                f"{b_val:.3f} on {n_shared} facts); {lost} facts lost, {gained} gained, "
                f"McNemar p={p:.2g}")
        else:
            gate["verdict"] = "pass"
        return gate
