"""Scale-out: deterministic shards of the matrix (several machines) and worker placement
(pytest-xdist on one machine), both keeping a model's cases together.

    pytest benchmarks --shard 2/8 --results-dir results/shard-2     # one machine of eight
    pytest benchmarks -n 2 --dist loadgroup                         # two workers, one model each
    (a pytest plugin, registered by conftest.py: its scheduler keeps a model's cases on one worker)

A shard is a set of whole *units*: a model with all its cases, so a machine loads a model once
and compresses each preset once. When there are fewer models than shards, the unit becomes
(model, preset), so every shard gets work; each such shard then probes the dense model once for
the gate's baseline (it needs the dense answers on the same facts) but writes no baseline
record of its own, so merged folders hold each case exactly once.
"""
from __future__ import annotations

import os
import re

import pytest


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
    return group_of(case.id)


def group_of(case_id: str) -> str:
    """The group of a case id: its model (<model>__<preset>__<probe>)."""
    return case_id.split("__", 1)[0]


_CASE_NODE = re.compile(r"::test_case\[([^\]]+)\](?:@[^\]]*)?$")


def case_of_node(nodeid: str) -> str | None:
    """The case id of a pytest node id (xdist may append '@<group>'), or None."""
    m = _CASE_NODE.search(nodeid)
    return m.group(1) if m else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` grouped by the case's model, read from the node id. pytest-xdist 3.8
    groups by a suffix it writes into ``item._nodeid``, which pytest 9.2 no longer reads (a node
    keeps its id in ``_id``): every case then ran on whichever worker was free, each worker
    loading and compressing every model (seen: `-n 2` ran one testbed model's two cases on gw0
    and gw1). Other tests keep xdist's own loadgroup scopes."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class CaseGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            case = case_of_node(nodeid)
            return f"model:{group_of(case)}" if case else super()._split_scope(nodeid)

        def _reschedule(self, node) -> None:
            """Give a worker its next group only at its last item (xdist tops it up at two
            left). A case can take minutes (Gemma's one-call-per-candidate T-REx: ~3), so
            with two left the main job's last testbed model was queued behind Gemma's last two
            cases while the other worker idled (2026-12-02: ~3 minutes). Not at zero: a worker
            keeps its last item until it knows the next one."""
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)
    return CaseGroupScheduling(config, log)


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
