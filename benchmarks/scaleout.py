"""Scale-out: deterministic shards of the matrix (several machines) and worker placement
(pytest-xdist on one machine), both keeping a model's cases together.

    pytest benchmarks --shard 2/8 --results-dir results/shard-2     # one machine of eight
    pytest benchmarks -n 2 --dist loadgroup                         # two workers, one model each

A shard is a set of whole *units*: a model with all its cases, so a machine loads a model once
and compresses each preset once. When there are fewer models than shards, the unit becomes
(model, preset), so every shard gets work; each such shard then probes the dense model once for
the gate's baseline (it needs the dense answers on the same facts) but writes no baseline
record of its own, so merged folders hold each case exactly once.
"""
from __future__ import annotations

import os
import re


class ShardError(ValueError):
    pass


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' (1 <= K <= N) -> (K, N); None when not sharding."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ShardError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
    return int(m.group(1)), int(m.group(2))


def unit(case, n_models: int, n_shards: int) -> str:
    """The indivisible piece of work a case belongs to (see the module docstring)."""
    if n_models >= n_shards:
        return case.model.id
    return f"{case.model.id}/{case.preset.id}"


def assign(cases, n_shards: int) -> dict[str, int]:
    """Case id -> shard (1-based). Greedy balance by case count: the largest unit first goes to
    the least-loaded shard (ties: lowest shard number; units in id order). Depends only on the
    matrix given (the collected models), never on -k, so every machine computes the same split."""
    n_models = len({c.model.id for c in cases})
    units: dict[str, list] = {}
    for c in cases:
        units.setdefault(unit(c, n_models, n_shards), []).append(c)
    load = [0] * n_shards
    out = {}
    for key in sorted(units, key=lambda k: (-len(units[k]), k)):
        k = min(range(n_shards), key=lambda i: (load[i], i))
        load[k] += len(units[key])
        for c in units[key]:
            out[c.id] = k + 1
    return out


def xdist_group(case) -> str:
    """The pytest-xdist group of a case (with --dist loadgroup, a group runs on one worker)."""
    return case.model.id


def worker_device(device: str, worker: str | None = None, n_gpus: int | None = None) -> str:
    """Pin xdist worker gwN to GPU N mod (number of GPUs) when --device cuda and several GPUs
    are visible; otherwise the device as given. ``worker`` defaults to $PYTEST_XDIST_WORKER."""
    worker = worker if worker is not None else os.environ.get("PYTEST_XDIST_WORKER")
    if device != "cuda" or not worker:
        return device
    if n_gpus is None:
        import torch
        n_gpus = torch.cuda.device_count()
    m = re.fullmatch(r"gw(\d+)", worker)
    if n_gpus <= 1 or not m:
        return device
    return f"cuda:{int(m.group(1)) % n_gpus}"
