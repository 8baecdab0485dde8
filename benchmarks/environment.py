"""Where a case ran: package versions, device, threads, git commit; and a peak-memory sampler.

    env = environment("cpu")             # the record's ``environment`` field
    speed_ms()                           # this machine's speed now (a fixed matmul workload)
    with PeakRSS() as mem: ...; mem.peak # bytes, sampled every 20 ms
"""
from __future__ import annotations

import os
import platform
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import torch


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class PeakRSS:
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


def git_sha() -> str:
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


_SPEED: list[float] = []


def speed_ms(fresh: bool = False) -> float:
    """Milliseconds of a fixed fp32 workload at this process's torch thread count: 4 products of
    a (128 x 576) by a (576 x 1536) matrix (SmolLM2's width and MLP width: the shape of the
    suite's own work), median of 5 samples after a warm-up: 0.9 GFLOP, under a second even on a
    loaded 2-core machine (170 ms a sample at load 13 there). Records carry
    it, so timings taken under other load or on another machine can be compared
    (benchmarks/plan.py scales them by the ratio). Measured once per process unless ``fresh``."""
    if _SPEED and not fresh:
        return _SPEED[0]
    import time
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(128, 576, generator=g), torch.randn(576, 1536, generator=g)
    samples = []
    for i in range(6):
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        if i:   # the first is the warm-up
            samples.append(1000 * (time.perf_counter() - t0))
    value = round(sorted(samples)[len(samples) // 2], 3)
    _SPEED[:] = [value]
    return value


def environment(device: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": v("transformers"), "gguf": v("gguf"), "lm_eval": v("lm_eval"),
            "pytest_benchmark": v("pytest-benchmark"), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available()
            else device,
            "git_sha": git_sha(), "speed_ms": speed_ms(),
            "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER")}
