"""Cache writers under concurrency and faults (issue 17): real processes on one fresh cache.

Two processes create the same entries at the same moment; a writer is SIGKILLed at random
moments; a truncated model in the cache is rebuilt; a dead writer's temp is cleaned and a live
writer's is not. The testbed's training is replaced by an untrained seeded model
(tests/helpers.fast_testbed_train): these tests are about the files, not the learning.
"""
import hashlib
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from benchmarks import testbed
from tests.helpers import REPO, fast_testbed_train, state_digest

TRIALS = 10      # before the fix 2 in 8 data and 5 in 8 model trials failed (issue 17)
KILLS = 20


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the cache's own bookkeeping."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parent != root}


def _race(seeds: list[int], barrier, results) -> None:
    """One of two processes: for each seed, at the same moment as the other, create the testbed
    data, the causal testbed model and a Wanda cache entry; report what it got or its error."""
    import torch
    from compressors import get_preset
    from compressors.ckpt_cache import reuse_or_make
    from compressors.measure import linear_modules
    torch.set_num_threads(1)
    testbed.train = fast_testbed_train
    for seed in seeds:
        try:
            barrier.wait(timeout=120)
            c = testbed.corpus(seed=seed, n_entities=12)
            data = _files(testbed.write_corpus(c))
            model = testbed.trained_model("causal", c)[0]
            modules = linear_modules(model)

            def make():
                with torch.no_grad():
                    for m in modules.values():
                        m.weight.mul_(0.5)
            reuse_or_make("wanda", model, get_preset("wanda-50"), {"model_info": {"id": f"race{seed}"}},
                          {"slice_sha256": "race"}, modules, make, "race-1")
            results.put((seed, None, data, state_digest(model)))
        except Exception as exc:   # reported and counted by the test; the next trial goes on
            results.put((seed, f"{type(exc).__name__}: {exc}", None, None))


def test_two_processes_fill_one_fresh_cache_at_once(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KCB_CACHE", str(cache))      # the children inherit it from the start
    monkeypatch.setattr(testbed, "train", fast_testbed_train)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(list(range(TRIALS)), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in range(2 * TRIALS)]
    for p in procs:
        p.join(timeout=60)
    errors = sorted({f"trial {s}: {e}" for s, e, _, _ in got if e})
    failed = {s for s, e, _, _ in got if e}
    assert not errors, f"{len(failed)} of {TRIALS} trials failed:\n" + "\n".join(errors)
    by_seed = {}
    for seed, _, data, weights in got:
        by_seed.setdefault(seed, []).append((data, weights))
    assert all(a == b for a, b in by_seed.values()), "the two processes read different entries"
    # what they left is complete: this process reuses it as is (a rebuild would warn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed, [(data, weights), _] in sorted(by_seed.items()):
            c = testbed.corpus(seed=seed, n_entities=12)
            assert _files(testbed.write_corpus(c)) == data
            fresh = fast_testbed_train("causal", c)[0]
            assert state_digest(testbed.trained_model("causal", c)[0]) == state_digest(fresh)


def test_a_truncated_model_in_the_cache_is_rebuilt_naming_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KCB_CACHE", str(tmp_path))
    monkeypatch.setattr(testbed, "train", fast_testbed_train)
    c = testbed.corpus(seed=3, n_entities=12)
    first = state_digest(testbed.trained_model("masked", c)[0])
    (weights,) = tmp_path.glob("testbed/*/masked-*/model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    # a CacheWarning (probes/storage.py), matched by its base class so the test runs on old code
    with pytest.warns(UserWarning, match=re.escape(str(weights.parent)) + ".*model.safetensors"):
        again = testbed.trained_model("masked", c)[0]
    assert state_digest(again) == first and weights.stat().st_size > 0


# A writer with no torch (the testbed data): starts in a fraction of a second, so it can be
# killed many times. It prints each seed before writing it.
_WRITER = """
import sys
from benchmarks import testbed
for seed in range(int(sys.argv[1]), 10**9):
    print(seed, flush=True)
    testbed.write_corpus(testbed.corpus(seed=seed, n_entities=300))
"""


def test_a_writer_killed_at_any_moment_never_leaves_an_entry_that_reads_complete(tmp_path, monkeypatch):
    """An entry the next run reuses must be whole: if a killed writer left a part that reads as
    complete, the next run returns it and its files differ from a fresh copy."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KCB_CACHE", str(cache))
    rng = random.Random(17)
    env = {**os.environ, "KCB_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    started = []
    for kill in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(kill * 10_000)], cwd=REPO,
                                 env=env, stdout=subprocess.PIPE, text=True)
        child.stdout.readline()                         # imported, writing its first entry
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        seeds = [kill * 10_000, *map(int, child.stdout.read().split())]
        child.wait()
        for seed in seeds:
            c = testbed.corpus(seed=seed, n_entities=300)
            want = _files(testbed.write_corpus(c, tmp_path / "ref" / c.key))
            assert _files(testbed.write_corpus(c)) == want, f"kill {kill}, seed {seed}"
        started += seeds
    # what the dead writers left goes once it is stale (aged here) at the next write beside it
    folders = {p.parent for p in cache.glob("testbed/*/data")}
    hour_ago = time.time() - 3600
    for p in (p for f in folders for p in f.iterdir() if ".tmp" in p.name):
        os.utime(p, (hour_ago, hour_ago))
    for seed in started:
        testbed.write_corpus(testbed.corpus(seed=seed, n_entities=300))
    assert not [p for f in folders for p in f.iterdir() if ".tmp" in p.name]


def test_a_stale_temp_is_cleaned_by_the_next_write(tmp_path, monkeypatch):
    monkeypatch.setenv("KCB_CACHE", str(tmp_path))
    c = testbed.corpus(seed=5, n_entities=12)
    folder = tmp_path / "testbed" / c.key
    dead = folder / ".tmp-data.4242.0123abcd"           # what a killed writer leaves
    (dead / "trained").mkdir(parents=True)
    (dead / "trained" / "relations.jsonl").write_text("{")
    dead_part = folder / ".tmp-notes.json.4242.0123abcd.part"
    dead_part.write_text("{")
    fresh = folder / ".tmp-other.4243.89abcdef"          # young: maybe a writer about to lock it
    fresh.mkdir()
    hour_ago = time.time() - 3600
    for p in (dead, dead_part):
        os.utime(p, (hour_ago, hour_ago))
    testbed.write_corpus(c)
    assert not dead.exists() and not dead_part.exists() and fresh.exists()


_LIVE = """
import sys, time
from pathlib import Path
from probes import storage
target = Path(sys.argv[1])

def wait(phase):   # until the test says go
    print(phase, flush=True)
    while not target.with_name(f"go-{phase}").exists():
        time.sleep(0.01)

with storage.atomic_file(target.with_name("notes.json")) as f:
    f.write(b"{")
    wait("file")
    f.write(b"}")

def build(tmp):
    (tmp / "a.bin").write_bytes(b"x" * 1000)
    wait("folder")
storage.entry(target, build)
"""


def test_a_live_writers_temps_are_never_cleaned(tmp_path):
    from probes import storage
    target = tmp_path / "entry"
    child = subprocess.Popen([sys.executable, "-c", _LIVE, str(target)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                             text=True)
    try:
        for phase in ("file", "folder"):
            assert child.stdout.readline().strip() == phase
            (live,) = tmp_path.glob(".tmp-*")
            os.utime(live, (time.time() - 3600,) * 2)   # old, but its writer holds the lock
            assert storage.clean_stale(tmp_path, max_age=0) == [] and live.exists(), phase
            (tmp_path / f"go-{phase}").touch()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
    assert (tmp_path / "notes.json").read_text() == "{}"
    assert storage.problem(target) is None and (target / "a.bin").read_bytes() == b"x" * 1000
    assert not list(tmp_path.glob(".tmp-*"))
