"""Running one case: load once, compress once per preset, probe, time, record, gate.

    runner = Runner(lama_root, results_dir, limit); record = runner.run(case, benchmark)

Holds at most one dense model (cases are ordered model by model) and one compressed model (its
probes run back to back), and the baseline of each (model, probe) for the gate. The record's
layout is benchmarks/record.py's, every derived number benchmarks/derive.py's, the latency
workload benchmarks/latency.py's, --resume's key benchmarks/resume.py's; this file only runs.

Faults: a case that fails for a reason other than its gate (out of memory, a backend error, a
compressor or probe error) writes an error record beside any earlier good one, drops the cached
models it may have spoiled, and re-raises; the other cases go on.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import time
import warnings
from pathlib import Path

import torch

from benchmarks import derive, latency, models as model_registry
from benchmarks.environment import PeakRSS, environment, now
from benchmarks.record import error_record, ok_record, write_record
from compressors import compress
from probes.callscope import scoring_threads

LOAD_DTYPE = "float32"      # every loader builds fp32 weights (benchmarks/models.py)


class GateFailure(AssertionError):
    """A case broke its knowledge floor: a finding, reported in one line (no traceback)."""


class Runner:
    def __init__(self, lama_root: Path, results_dir: Path, limit: int | None, device: str = "cpu",
                 batch_size: int | None = None,  # None: each probe's own
                 protocol: str = derive.DEFAULT_PROTOCOL,
                 floors: dict | None = None):
        self.lama_root, self.results_dir = lama_root, Path(results_dir)
        self.limit, self.device, self.batch_size = limit, device, batch_size
        self.limits: dict[str, int | None] = {}   # probe id -> its own limit (--limits), else limit
        self.protocol = protocol
        self.floors = floors          # preset id -> floor, overriding benchmarks/matrix.py
        self._dense = None          # (model id, model, tokenizer, info)
        self._compressed = None     # (model id, preset id, model, effect)
        self._dense_effect = None   # ((model id, id of the dense model), its `none` effect)
        self._baselines: dict = {}  # (model id, probe id) -> the baseline's record (dict)
        self._unavailable: dict = {}  # model id -> ModelUnavailable (asked once per session)
        self.summary: list[dict] = []
        self.env = environment(device)
        self.resume = False         # --resume: skip cases whose ok record has the same config key
        self.update_baselines = False
        self.baselines_dir = None
        self._phase = "load"        # what run() is doing, for the error record of a failed case
        self.case_errors = 0        # cases that failed to run (not their gate): exit code 6

    # -- what every record of this run is asked to be scored with -------------------------------
    def request(self) -> dict:
        """The inputs of scoring that --resume's key covers (record.REQUEST_KEYS)."""
        return {"requested_batch_size": self.batch_size, "dtype": LOAD_DTYPE,
                "torch_threads": torch.get_num_threads(), "device": self.device}

    def limit_for(self, probe, preset=None) -> int | None:
        """The limit this run applies to ``probe`` under ``preset``: a per-call preset's own
        (``per-call:probe=N`` in --limits), else the probe's own (--limits), else --limit."""
        from benchmarks.matrix import case_limit
        return case_limit(self.limits, self.limit, probe.id, preset)

    def floor(self, case) -> float | None:
        if self.floors is not None and case.preset.id in self.floors:
            return self.floors[case.preset.id] if case.probe.kind in derive.GATED else None
        return case.floor

    # -- models ------------------------------------------------------------------------------
    def dense(self, spec):
        if spec.id in self._unavailable:
            raise self._unavailable[spec.id]
        if self._dense is None or self._dense[0] != spec.id:
            self._dense = self._compressed = None
            gc.collect()
            t0 = time.perf_counter()
            try:
                model, tok, info = model_registry.load(spec, self.device)
            except model_registry.ModelUnavailable as exc:
                self._unavailable[spec.id] = exc
                raise
            # what loading cost this session (a first GGUF conversion included): the plan's input
            info = {**info, "load_seconds": round(time.perf_counter() - t0, 3)}
            self._dense = (spec.id, model, tok, info)
        return self._dense[1:]

    def compressed(self, spec, preset):
        model, tok, info = self.dense(spec)
        if preset.id == "none":   # measures the dense model; changes nothing, copies nothing
            key = (spec.id, id(model))   # not the model itself: that would keep it alive
            if self._dense_effect is None or self._dense_effect[0] != key:
                # measured once per loaded model: the sizes and zero count of the same weights
                self._dense_effect = (key, compress(model, "none", spec.family)[1])
            return model, dict(self._dense_effect[1])
        if self._compressed is None or self._compressed[:2] != (spec.id, preset.id):
            self._compressed = None
            gc.collect()
            # A checkpoint preset loads its own model from disk and only reads the dense one
            # (compressors/checkpoint.py): nothing to copy.
            work = model if preset.method == "checkpoint" else copy.deepcopy(model)
            c0 = time.process_time()
            work, effect = compress(work, preset.id, spec.family, tokenizer=tok, model_info=info)
            # CPU seconds beside compress()'s wall seconds: the plan's input on a loaded machine
            effect = {**effect, "compression_cpu_seconds": round(time.process_time() - c0, 3)}
            self._compressed = (spec.id, preset.id, work, effect)
        return self._compressed[2], self._compressed[3]

    def _score(self, model, spec, probe, preset=None):
        tok = self._dense[2]
        with scoring_threads(model):   # one thread for a model scored one call per sequence
            return probe.score(model, tok, spec.family, self.lama_root,
                               limit=self.limit_for(probe, preset), batch_size=self.batch_size)

    def _probe_fields(self, probe, preset=None) -> dict:
        return {"id": probe.id, "kind": probe.kind, "version": probe.scorer_version(),
                "limit": self.limit_for(probe, preset), "main_metric": probe.main_metric}

    def _view(self, case_id, info, probe, result, preset=None) -> dict:
        """The fields derive.compare reads, for a probe result not (yet) written as a record."""
        return {"case_id": case_id, "status": "ok", "model": info,
                "probe": {**self._probe_fields(probe, preset), "data_checksum": result.meta["data_checksum"]},
                "metrics": result.metrics, "examples": result.examples}

    def baseline(self, spec, probe) -> dict:
        """The dense model's record on this probe: from this session, else scored now."""
        key = (spec.id, probe.id)
        if key not in self._baselines:
            model, _, info = self.dense(spec)
            result = self._score(model, spec, probe)
            self._baselines[key] = self._view(f"{spec.id}__none__{probe.id}", info, probe, result)
        return self._baselines[key]

    def scoring(self, model, result) -> dict:
        """What the probe says about how it scored, plus what this run asked for."""
        said = result.meta.get("scoring")
        said = dict(said) if isinstance(said, dict) else {}
        cfg = getattr(model, "config", None)
        return {"batch_size": said.pop("batch_size", self.batch_size),
                "policy": said.pop("policy", "unspecified"),
                "padding_side": said.pop("padding_side", "unspecified"),
                "attn_implementation": said.pop("attn_implementation",
                                                getattr(cfg, "_attn_implementation", None)),
                **said, **self.request()}

    # -- one case ----------------------------------------------------------------------------
    def run(self, case, benchmark) -> dict:
        started = now()
        spec, preset, probe = case.model, case.preset, case.probe
        _, tok, info = self.dense(spec)
        self._phase = "compress"
        model, effect = self.compressed(spec, preset)
        self._phase = "probe"
        t0, c0 = time.perf_counter(), time.process_time()
        with PeakRSS() as mem:
            if torch.cuda.is_available() and self.device != "cpu":
                torch.cuda.reset_peak_memory_stats()
            result = self._score(model, spec, probe, preset)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        view = self._view(case.id, info, probe, result, preset)
        base = view if preset.id == "none" else self.baseline(spec, probe)
        if preset.id == "none":
            self._baselines[(spec.id, probe.id)] = view
        comparison = derive.compare(base, view, self.floor(case), self.protocol)
        self._phase = "latency"
        texts = result.workload or [e["text"] for e in result.examples[:latency.ROWS]]
        fn, shape = latency.workload(model, tok, spec.family, texts)
        benchmark.extra_info["case_id"] = case.id
        timing = latency.measure(benchmark, fn, shape)
        # CPU seconds beside wall: on a loaded machine they say what the probe itself cost
        timing.update(probe_wall_s=round(wall, 3), probe_cpu_s=round(cpu, 3),
                      facts_per_s=result.n / wall)
        self._phase = "record"
        record = ok_record(
            case_id=case.id, model=info, effect=effect, result=result,
            preset={"id": preset.id, "method": preset.method, "params": preset.params,
                    "bits": preset.bits},
            probe={**self._probe_fields(probe, preset), "data_checksum": result.meta["data_checksum"]},
            scoring=self.scoring(model, result), latency=timing,
            memory={"peak_rss_bytes": mem.peak, "weight_bytes": effect["weight_bytes"],
                    "cuda_peak_bytes": torch.cuda.max_memory_allocated()
                    if torch.cuda.is_available() and self.device != "cpu" else None},
            gate=comparison.gate(), environment=self.env, started=started, finished=now())
        bad_baseline = self._check_committed(case, record)
        write_record(self.results_dir, record)
        if bad_baseline is not None:   # the measurement is kept; the case still fails
            raise bad_baseline
        self._summarise(case, record, comparison)
        if record["gate"]["verdict"] == "fail":
            raise GateFailure(record["gate"]["message"])
        return record

    def _summarise(self, case, record, comparison, note=""):
        main = record["metrics"][case.probe.main_metric]
        self.summary.append({"case_id": case.id, "metric": case.probe.main_metric,
                             "value": main["value"],
                             # lm-eval reports no stderr for one example: print nan
                             "stderr": float("nan") if main.get("stderr") is None else main["stderr"],
                             "retention": comparison.retention,
                             "verdict": record["gate"]["verdict"] + note, "n": record["n"],
                             "facts_per_s": record["latency"].get("facts_per_s"),
                             "kind": case.probe.kind})

    def row(self, case_id: str) -> dict | None:
        """This session's summary row of a case, if it has one (the progress line reads it)."""
        return next((r for r in reversed(self.summary) if r["case_id"] == case_id), None)

    def _check_committed(self, case, record):
        """Against benchmarks/baselines/<case>.json, if the case has one (benchmarks/regression.py)."""
        from benchmarks import regression
        return regression.check_record(case, record, self.baselines_dir, self.update_baselines)

    # -- faults --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def recording_failures(self, case):
        """Around one case: any Exception but GateFailure writes an error record (beside the
        last good one), resets the cached models and re-raises. Skips and Ctrl-C
        (BaseException) pass through untouched: --resume reruns an interrupted case."""
        self._phase, started = "load", now()
        try:
            yield
        except GateFailure:
            raise
        except Exception as exc:
            self.case_errors += 1
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
        return error_record(
            case_id=case.id, model=info,
            error={"type": type(exc).__name__, "message": message[:4000], "phase": phase},
            preset={"id": preset.id, "method": preset.method, "params": preset.params,
                    "bits": preset.bits},
            probe={"id": probe.id, "kind": probe.kind, "limit": self.limit_for(probe, preset)},
            environment=self.env, started=started, finished=now())

    # -- resume --------------------------------------------------------------------------------
    def skip_if_resumed(self, case) -> None:
        """pytest-skip a case --resume finds done (benchmarks/resume.py); its verdict is derived
        again from the record and the current baseline, and a resumed baseline serves the gate."""
        if not self.resume:
            return
        from benchmarks.resume import finished_record
        record = finished_record(self, case)
        if record is None:
            return
        import pytest
        if case.preset.id == "none":
            self._baselines.setdefault((case.model.id, case.probe.id), record)
        from benchmarks.resume import stored_baseline
        base = self._baselines.get((case.model.id, case.probe.id)) or stored_baseline(self, case)
        comparison = derive.compare(record if case.preset.id == "none" else base, record,
                                    self.floor(case), self.protocol)
        self._summarise(case, {**record, "gate": comparison.gate()}, comparison, " (resumed)")
        pytest.skip(f"resumed: record exists for the same configuration "
                    f"({self.results_dir / (case.id + '.json')}, finished "
                    f"{record['timestamps']['finished']})")
