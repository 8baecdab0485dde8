"""Running one case: load once, compress once per preset, probe, measure, record, gate.

    runner = Runner(options); record = runner.run(case, benchmark)

Holds at most one dense model (cases are ordered model by model) and one compressed model
(its probes run back to back), and the baseline result per (model, probe) for retention.

Faults: a case that fails for a reason other than its gate (out of memory, a backend error, a
compressor or probe error) writes an error record naming the phase, drops the cached models it
may have spoiled, and re-raises; the other cases go on. With ``resume`` set (``--resume``), a
case whose ok record exists for the same configuration (record.config_key) is skipped.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import os
import platform
import subprocess
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks import models as model_registry
from benchmarks.record import (SCHEMA, SCHEMA_VERSION, RecordError, config_key, make_config_key,
                               read_record, write_record)
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
            "device": torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available()
            else device,
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
    # What was timed, for the record (issue 18): one right-padded batch under an attention mask.
    # For a model whose quantizer takes a statistic over the whole call, this batch's padding and
    # batch-mates change its numbers (not scored: only timed), and the time is that of this shape.
    rows, width = enc["input_ids"].shape
    run.measured = {"batch": rows, "max_tokens": width, "tokens": int(enc["attention_mask"].sum()),
                    "padded_tokens": rows * width, "padding_side": "right", "attention_mask": True,
                    "forward": "one call, logits for every position"
                    + (", decoder: the start token only" if family == "seq2seq" else "")}
    return run, int(enc["attention_mask"].sum())


class Runner:
    def __init__(self, lama_root: Path, results_dir: Path, limit: int | None, device: str = "cpu",
                 batch_size: int | None = None):   # None: each probe's default
        self.lama_root, self.results_dir = lama_root, Path(results_dir)
        self.limit, self.device, self.batch_size = limit, device, batch_size
        self._dense = None          # (model id, model, tokenizer, info)
        self._compressed = None     # (model id, preset id, model, effect)
        self._baselines: dict = {}  # (model id, probe id) -> ProbeResult
        self._unavailable: dict = {}  # model id -> ModelUnavailable (asked once per session)
        self.summary: list[dict] = []
        self.env = environment(device)
        self.resume = False         # --resume: skip cases whose ok record has the same config key
        self._phase = "load"        # what run() is doing, for the error record of a failed case

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
            work, effect = compress(work, preset.id, spec.family, tokenizer=tok, model_info=info)
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
        self._phase = "compress"
        model, effect = self.compressed(spec, preset)
        self._phase = "probe"
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
        self._phase = "record"
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
                        "shape": fn.measured,
                        "probe_wall_s": round(wall, 3), "facts_per_s": result.n / wall},
            "memory": {"peak_rss_bytes": mem.peak, "weight_bytes": effect["weight_bytes"],
                       "cuda_peak_bytes": torch.cuda.max_memory_allocated()
                       if torch.cuda.is_available() and self.device != "cpu" else None},
            "gate": gate, "environment": self.env,
            "timestamps": {"started": started, "finished": _now()},
        }
        self._check_committed(case, record)
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

    # -- faults and resume (issue 8) --------------------------------------------------------
    @contextlib.contextmanager
    def recording_failures(self, case):
        """Around one case: any Exception but GateFailure writes an error record, resets the
        cached models and re-raises. Skips and Ctrl-C (BaseException) pass through untouched:
        a skipped case writes nothing, an interrupted one is simply not done (--resume reruns it)."""
        self._phase, started = "load", _now()
        try:
            yield
        except GateFailure:
            raise
        except Exception as exc:
            phase = self._phase
            self._reset_after_failure(exc)
            try:
                write_record(self.results_dir, self._error_record(case, exc, phase, started))
            except Exception as write_exc:   # the original failure matters more; say both
                warnings.warn(f"{case.id}: could not record the failure ({write_exc})")
            raise

    def _reset_after_failure(self, exc: BaseException) -> None:
        """A half-compressed copy may be left after any failure: drop it. After running out of
        memory, drop the dense model too, so the next case starts from a clean load."""
        self._compressed = None
        oom = isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(exc).lower()
        if oom:
            self._dense = None
        gc.collect()
        if oom and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _error_record(self, case, exc: BaseException, phase: str, started: str) -> dict:
        spec, preset, probe = case.model, case.preset, case.probe
        if self._dense is not None and self._dense[0] == spec.id:
            info = self._dense[3]
        else:
            info = {"id": spec.id, "family": spec.family, "arch": spec.arch, "source": spec.source,
                    "ref": spec.ref, "baseline": spec.baseline,
                    "revision": model_registry.expected_revision(spec) or "unknown"}
        message = str(exc) or repr(exc)
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": case.id, "status": "error",
            "error": {"type": type(exc).__name__, "message": message[:4000], "phase": phase},
            "model": info,
            "preset": {"id": preset.id, "method": preset.method, "params": preset.params,
                       "bits": preset.bits},
            "probe": {"id": probe.id, "kind": probe.kind, "version": LAMA_VERSION, "limit": self.limit},
            "environment": self.env, "timestamps": {"started": started, "finished": _now()},
        }

    def planned_key(self, case) -> str | None:
        """The config key this case's record will have, computed without loading the model:
        the data checksum comes from the probe's files' bytes (probe.data_checksum). None when
        it cannot be known in advance (then --resume reruns the case)."""
        revision = model_registry.expected_revision(case.model)
        checksum_of = getattr(case.probe, "data_checksum", None)
        if revision is None or checksum_of is None:
            return None
        try:
            checksum = checksum_of(self.lama_root)
        except Exception:   # unreadable data: run the case, which reports it properly
            return None
        return make_config_key(case.id, revision, case.preset.params, LAMA_VERSION, checksum,
                               self.limit)

    def finished_record(self, case) -> dict | None:
        """With --resume: the ok record of this case for the same configuration, if any."""
        path = self.results_dir / f"{case.id}.json"
        if not self.resume or not path.is_file():
            return None
        try:
            record = read_record(path)
        except RecordError as exc:
            warnings.warn(f"--resume: {exc}; running the case again")
            return None
        if record["status"] != "ok" or config_key(record) != self.planned_key(case):
            return None
        return record

    def skip_if_resumed(self, case) -> None:
        """pytest-skip a case --resume finds done; a resumed baseline still serves the gate."""
        record = self.finished_record(case)
        if record is None:
            return
        import pytest

        from probes.result import ProbeResult
        if case.preset.id == "none":
            self._baselines.setdefault((case.model.id, case.probe.id),
                                       ProbeResult.from_examples(record["examples"], record["probe"]))
        main = record["metrics"][case.probe.main_metric]
        self.summary.append({"case_id": case.id, "metric": case.probe.main_metric,
                             "value": main["value"], "stderr": main["stderr"],
                             "retention": record["gate"].get("retention"),
                             "verdict": f"{record['gate']['verdict']} (resumed)", "n": record["n"]})
        pytest.skip(f"resumed: record exists for the same configuration "
                    f"({self.results_dir / (case.id + '.json')}, finished "
                    f"{record['timestamps']['finished']})")
    def _check_committed(self, case, record) -> None:
        """Against benchmarks/baselines/<case>.json, if the case has one (benchmarks/regression.py):
        a loss beyond noise makes the case fail. With --update-baselines, rewrite the file instead."""
        from benchmarks import regression
        folder = regression.baselines_dir(getattr(self, "baselines_dir", None))
        path = regression.baseline_path(case.id, folder)
        gate = record["gate"]
        if getattr(self, "update_baselines", False):
            regression.write_baseline(record, folder, case.probe.main_metric)
            gate["committed_baseline"] = {"file": str(path), "verdict": "updated"}
            return
        if not path.is_file():
            return
        check = regression.compare(regression.read_baseline(path), record, str(path))
        gate["committed_baseline"] = check
        if check["verdict"] == "regression":
            gate["message"] = (gate["message"] + "\n" if gate["verdict"] == "fail" else "") + check["message"]
            gate["verdict"] = "fail"
