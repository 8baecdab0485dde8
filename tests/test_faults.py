"""Faults: a failing case leaves an error record and clean state; concurrent writers never
clobber each other; a killed run keeps every finished record and --resume completes it.

    pytest tests/test_faults.py -q
"""
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from benchmarks import runner as runner_mod
from benchmarks.matrix import Case
from benchmarks.models import MODELS
from benchmarks.record import read_record, read_records
from benchmarks.runner import GateFailure, Runner
from compressors import PRESETS, CompressionError
from probes import PROBES
from tests.helpers import REPO, write_lama


class FakeBenchmark:
    """What Runner.run needs of pytest-benchmark's fixture, as under --benchmark-disable."""

    def __init__(self):
        self.extra_info, self.stats = {}, None

    def pedantic(self, fn, **_):
        fn()


def _case(preset, model="tiny-causal"):
    return Case(MODELS[model], PRESETS[preset], PROBES["trex"])


@pytest.fixture
def runner(tmp_path):
    root = write_lama(tmp_path / "lama", [("Alice", "Paris"), ("Bob", "Rome"), ("Carol", "Paris")])
    return Runner(root, tmp_path / "records", limit=None)


def _run(runner, case):
    """What benchmarks/test_matrix.py does for one case."""
    with runner.recording_failures(case):
        runner.dense(case.model)
        return runner.run(case, FakeBenchmark())


def test_out_of_memory_in_compress_records_the_failure_and_resets_the_models(runner, monkeypatch):
    _run(runner, _case("none"))
    real = runner_mod.compress

    def oom(model, preset_id, family, **kwargs):
        if preset_id == "sparse-50":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, preset_id, family, **kwargs)
    monkeypatch.setattr(runner_mod, "compress", oom)
    with pytest.raises(torch.OutOfMemoryError):
        _run(runner, _case("sparse-50"))
    rec = read_record(runner.results_dir / "tiny-causal__sparse-50__trex.error.json")
    assert rec["status"] == "error" and "metrics" not in rec
    assert rec["error"] == {"type": "OutOfMemoryError", "phase": "compress",
                            "message": "CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert rec["model"]["revision"] == "built-in" and rec["preset"]["params"]["amount"] == 0.5
    assert runner._dense is None and runner._compressed is None       # the next case starts clean
    # The next case runs on a fresh load and the failed one reruns fine once memory is there.
    assert _run(runner, _case("sparse-10"))["status"] == "ok"
    monkeypatch.setattr(runner_mod, "compress", real)
    ok = _run(runner, _case("sparse-50"))
    assert ok["status"] == "ok" and ok["preset"]["effect"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert read_record(runner.results_dir / "tiny-causal__sparse-50__trex.json")["status"] == "ok"
    assert not (runner.results_dir / "tiny-causal__sparse-50__trex.error.json").exists()   # superseded


def test_compression_error_keeps_the_dense_model(runner, monkeypatch):
    _run(runner, _case("none"))
    dense = runner._dense

    def broken(*_, **__):
        raise CompressionError("sparse-50 changed nothing: 0 weights were zeroed")
    monkeypatch.setattr(runner_mod, "compress", broken)
    with pytest.raises(CompressionError):
        _run(runner, _case("sparse-50"))
    rec = read_record(runner.results_dir / "tiny-causal__sparse-50__trex.error.json")
    assert rec["error"]["phase"] == "compress" and rec["error"]["type"] == "CompressionError"
    assert "changed nothing" in rec["error"]["message"]
    assert runner._dense is dense and runner._compressed is None        # no OOM: dense kept


def test_backend_error_while_probing_is_recorded_as_a_probe_failure(runner, monkeypatch):
    import probes.lama

    def broken(*_, **__):
        raise RuntimeError("fbgemm: unsupported CPU")
    monkeypatch.setattr(probes.lama, "score_subset", broken)
    with pytest.raises(RuntimeError, match="fbgemm"):
        _run(runner, _case("int8-dyn"))
    rec = read_record(runner.results_dir / "tiny-causal__int8-dyn__trex.error.json")
    assert rec["error"] == {"type": "RuntimeError", "message": "fbgemm: unsupported CPU", "phase": "probe"}


def test_load_failure_is_recorded_with_what_is_known_of_the_model(runner, monkeypatch):
    def corrupt(spec, device="cpu"):
        raise ValueError(f"{spec.id}: model.gguf has sha256 0000, expected 1111: the file is corrupt")
    monkeypatch.setattr(runner_mod.model_registry, "load", corrupt)
    with pytest.raises(ValueError, match="corrupt"):
        _run(runner, _case("none", model="tiny-seq2seq"))
    rec = read_record(runner.results_dir / "tiny-seq2seq__none__trex.error.json")
    assert rec["error"]["phase"] == "load" and rec["error"]["type"] == "ValueError"
    assert rec["model"]["id"] == "tiny-seq2seq" and rec["model"]["family"] == "seq2seq"


def test_failure_while_recording_is_recorded(runner, monkeypatch):
    real = runner_mod.write_record

    def disk_full_for_ok_records(folder, record):
        if record["status"] == "ok":
            raise OSError(28, "No space left on device")
        return real(folder, record)
    monkeypatch.setattr(runner_mod, "write_record", disk_full_for_ok_records)
    with pytest.raises(OSError, match="No space left"):
        _run(runner, _case("none"))
    rec = read_record(runner.results_dir / "tiny-causal__none__trex.error.json")
    assert rec["error"]["phase"] == "record" and "No space left on device" in rec["error"]["message"]


def test_gate_failure_writes_the_ok_record_not_an_error(runner, monkeypatch):
    from benchmarks import derive
    real = derive.compare

    def failing(base, rec, floor=None, protocol="lenient"):
        c = real(base, rec, floor, protocol)
        if rec["case_id"].split("__")[1] != "none":
            c.verdict, c.message = "fail", "retention 0.500 below 0.90"
        return c
    monkeypatch.setattr(derive, "compare", failing)
    with pytest.raises(GateFailure, match="retention 0.500 below 0.90"):
        _run(runner, _case("sparse-10"))
    rec = read_record(runner.results_dir / "tiny-causal__sparse-10__trex.json")
    assert rec["status"] == "ok" and rec["gate"]["verdict"] == "fail" and rec["n"] == 3


def test_interrupt_while_writing_leaves_no_record_and_no_temp_file(runner, monkeypatch):
    """Ctrl-C in the middle of writing a record (after the temp file has bytes, before the
    rename): no record appears, and the temp file is removed (probes/storage.atomic_file)."""
    import probes.storage
    seen = []

    def ctrl_c(fd):
        seen.extend(p.name for p in runner.results_dir.iterdir())   # the temp file, half written
        raise KeyboardInterrupt
    monkeypatch.setattr(probes.storage.os, "fsync", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        _run(runner, _case("none"))
    assert any(name.startswith(".tmp-") for name in seen), "the write was not interrupted"
    assert list(runner.results_dir.iterdir()) == []


def test_error_message_is_bounded_and_never_empty(runner):
    rec = runner._error_record(_case("none"), MemoryError(), "probe", "2026-01-01T00:00:00+00:00")
    assert rec["error"]["message"] == "MemoryError()"
    rec = runner._error_record(_case("none"), RuntimeError("x" * 10000), "probe", "t")
    assert len(rec["error"]["message"]) == 4000


# --------------------------------------------------------------------- concurrent writers
_WRITER = """
import sys
from pathlib import Path
from benchmarks.record import write_record
from tests.test_record import make_record
folder, writer = Path(sys.argv[1]), int(sys.argv[2])
for i in range(150):
    write_record(folder, make_record(case_id="m__none__trex", memory={
        "peak_rss_bytes": i, "weight_bytes": writer, "pad": "x" * 20000}))
"""


def test_two_processes_writing_one_case_never_leave_a_partial_file(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), str(n)], cwd=REPO)
             for n in (1, 2)]
    seen = set()
    while any(p.poll() is None for p in procs):
        path = folder / "m__none__trex.json"
        if path.exists():
            rec = read_record(path)          # raises on a partial or torn file
            seen.add(rec["memory"]["weight_bytes"])
    assert [p.wait() for p in procs] == [0, 0]
    final = read_records(folder)
    assert len(final) == 1 and final[0]["memory"]["weight_bytes"] in (1, 2)
    assert final[0]["memory"]["peak_rss_bytes"] == 149                   # a complete last write
    assert [p.name for p in folder.iterdir()] == ["m__none__trex.json"]   # no temp files left
    assert seen, "the reader never saw the file while the writers ran"


# --------------------------------------------------------------------- kill and resume
# Testbed models: trained in seconds (cached in $KCB_CACHE), their cases take a few seconds each.
SELECTION = ["--models", "testbed", "-k", "testbed-llama and (none or sparse-50 or int8-dyn) "
             "and fact-trained", "--benchmark-disable", "-q", "-p", "no:cacheprovider", "-rs"]
CASES = {f"testbed-llama__{p}__fact-trained" for p in ("none", "sparse-50", "int8-dyn")}


def _bench(results, *extra):
    return [sys.executable, "-m", "pytest", "benchmarks", *SELECTION, "--results-dir", str(results), *extra]


def _measurement(rec):
    """What a rerun must reproduce exactly: everything but timings and timestamps."""
    return {k: rec[k] for k in ("case_id", "status", "metrics", "n", "groups", "examples", "gate")} | {
        "effect": {k: v for k, v in rec["preset"]["effect"].items() if "seconds" not in k and "time" not in k},
        "probe": rec["probe"]["data_checksum"], "revision": rec["model"]["revision"]}


def test_killed_run_keeps_finished_records_and_resume_completes_it(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    done = subprocess.run(_bench(full), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reference = {r["case_id"]: r for r in read_records(full)}
    assert set(reference) == CASES

    proc = subprocess.Popen(_bench(cut), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(cut.glob("*.json"))) >= 1:
            proc.send_signal(signal.SIGKILL)     # mid-run: at least one case finished, not all
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = {r["case_id"]: r for r in read_records(cut)}   # leftover temp files are ignored
    assert 1 <= len(finished) < len(CASES)
    for case_id, rec in finished.items():
        assert _measurement(rec) == _measurement(reference[case_id])

    resumed = subprocess.run(_bench(cut, "--resume"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.stdout.count("resumed: record exists for the same configuration") == len(finished)
    assert f"{len(CASES) - len(finished)} passed, {len(finished)} skipped" in resumed.stdout
    after = {r["case_id"]: r for r in read_records(cut)}
    assert set(after) == CASES                                           # nothing lost, no duplicates
    assert sorted(p.name for p in cut.glob("*.json")) == sorted(f"{c}.json" for c in CASES)
    for case_id, rec in after.items():
        assert _measurement(rec) == _measurement(reference[case_id]), case_id
        if case_id in finished:                                          # skipped, not rewritten
            assert rec["timestamps"] == finished[case_id]["timestamps"]


def test_resume_reruns_error_records_and_changed_configurations(tmp_path):
    from benchmarks.resume import finished_record
    root = write_lama(tmp_path / "lama", [("Alice", "Paris"), ("Bob", "Rome")])
    first = Runner(root, tmp_path / "records", limit=1)
    _run(first, _case("none"))
    _run(first, _case("sparse-10"))
    path = tmp_path / "records" / "tiny-causal__sparse-10__trex.json"
    rec = json.loads(path.read_text())
    path.unlink()                                                        # only a failed run left
    path.with_suffix(".error.json").write_text(json.dumps(
        {k: rec[k] for k in ("schema", "schema_version", "case_id", "model", "preset", "probe",
                             "environment", "timestamps")}
        | {"status": "error", "error": {"type": "MemoryError", "message": "", "phase": "probe"}}))
    again = Runner(root, tmp_path / "records", limit=1)
    again.resume = True
    with pytest.raises(pytest.skip.Exception, match="resumed: record exists"):
        again.skip_if_resumed(_case("none"))
    assert ("tiny-causal", "trex") in again._baselines                  # the gate reuses it
    again.skip_if_resumed(_case("sparse-10"))                           # error record: rerun
    assert finished_record(Runner(root, tmp_path / "records", limit=2), _case("none")) is None
    other = Runner(root, tmp_path / "records", limit=2)
    other.resume = True
    other.skip_if_resumed(_case("none"))                                 # other limit: rerun
    (tmp_path / "records" / "tiny-causal__none__trex.json").write_text('{"schema": "knowl')
    with pytest.warns(UserWarning, match=r"--resume: .*tiny-causal__none__trex\.json: unreadable "
                                         r"record .*; running the case again"):
        again.skip_if_resumed(_case("none"))                            # corrupt: named, rerun


@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadgroup"]], ids=["one-process", "xdist"])
def test_a_case_that_cannot_run_exits_6_in_one_process_and_under_xdist(tmp_path, workers):
    """bitsandbytes 4-bit refuses the tiny model's 32-wide layers (its block is 64 weights): an
    error record, and exit 6, not the gate's 1 (scripts/bench.sh runs two xdist workers, whose
    controller has no runner: it counted nothing before and the run exited 1)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "--limit", "1", "-p", "no:cacheprovider",
         "-k", "tiny-causal and (none or nf4-single) and trex", "--results-dir", str(tmp_path / "r"),
         "--benchmark-disable", "-q", *workers], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 6, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "r" / "tiny-causal__nf4-single__trex.error.json").is_file()
    assert (tmp_path / "r" / "tiny-causal__none__trex.json").is_file()
