"""The case-id rules: ids are selectable with -k exactly as users expect."""
import re
import subprocess
import sys

import pytest

from benchmarks.matrix import cases
from benchmarks.models import MODELS
from compressors import PRESETS
from probes import PROBES
from tests.helpers import REPO

PART = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
ALL = cases(list(MODELS.values()))


def test_id_parts_use_only_safe_characters():
    for kind in (MODELS, PRESETS, PROBES):
        for ident in kind:
            assert PART.match(ident), ident


def test_no_model_id_is_a_substring_of_another_model_id():
    clashes = [(a, b) for a in MODELS for b in MODELS if a != b and a in b]
    assert not clashes


def test_no_id_is_a_substring_of_another_kinds_id():
    kinds = {"model": set(MODELS), "preset": set(PRESETS), "probe": set(PROBES)}
    for a, ids_a in kinds.items():
        for b, ids_b in kinds.items():
            if a != b:
                clashes = [(x, y) for x in ids_a for y in ids_b if x in y]
                assert not clashes, f"{a} id inside {b} id: {clashes}"


def _keywords(case):
    # What pytest -k matches against: the item name, its parents, and its marks (substrings,
    # case-insensitive).
    return [f"test_case[{case.id}]", "test_case", "test_matrix.py", "benchmarks", *case.marks]


def _selected(expr_parts):
    return [c for c in ALL if all(any(p in k.lower() for k in _keywords(c)) for p in expr_parts)]


def test_model_preset_probe_selects_exactly_one_case():
    for case in ALL:
        parts = [case.model.id, case.preset.id, case.probe.id]
        assert _selected(parts) == [case], case.id


def test_arch_and_bits_marks_select_by_meaning():
    sel = _selected(["llama", "int8"])
    assert sel and all(c.model.arch == "llama" and c.preset.bits == 8 for c in sel)
    assert _selected(["llama", "int4"]) == [c for c in ALL if c.model.arch == "llama"
                                            and c.preset.bits == 4]


def _collect(*args):
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
                          *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    return out.returncode, [l for l in out.stdout.splitlines() if "::test_case[" in l]


def test_pytest_k_runs_exactly_that_cell():
    rc, items = _collect("-k", "smollm2 and sparse-50 and trex")
    assert rc == 0 and items == ["benchmarks/test_matrix.py::test_case[smollm2-135m__sparse-50__trex]"]


def test_pytest_k_by_architecture_and_bits():
    rc, items = _collect("-k", "llama and int8")
    llama_models = {m.id for m in MODELS.values() if m.arch == "llama" and m.default}
    expected = {f"benchmarks/test_matrix.py::test_case[{c.id}]" for c in ALL
                if c.model.id in llama_models and c.preset.bits == 8}
    # smollm2: 6 LAMA-data probes (4 subsets, pararel, negated) + 9 ability + 1 perplexity per
    # 8-bit preset; testbed-llama: its 2 testbed probes per 8-bit preset
    n_int8 = sum(p.bits == 8 for p in PRESETS.values())
    assert rc == 0 and set(items) == expected and len(expected) == n_int8 * (6 + 9 + 1 + 2)
    rc, items = _collect("-k", "gemma3")
    gguf_probes = [p for p in PROBES.values() if "pypi-gguf" in p.sources]   # + ability, perplexity
    assert rc == 0 and len(items) == len(PRESETS) * len(gguf_probes) and len(gguf_probes) == 6 + 9 + 1


def test_limits_skip_leaves_per_call_cases_out_and_the_plan_says_so():
    """The main job's per-call:conceptnet=skip: int8-dyn's ConceptNet case is not collected, the
    other presets' are, and the plan names what was left out."""
    args = ("--presets", "none,sparse-50,int8-dyn", "--probes", "trex,conceptnet",
            "--models", "smollm2-135m", "--limits", "trex=10,per-call:trex=1,per-call:conceptnet=skip")
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    items = {l.split("[")[1].rstrip("]") for l in out.stdout.splitlines() if "::test_case[" in l}
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert items == {f"smollm2-135m__{p}__{pr}" for p in ("none", "sparse-50", "int8-dyn")
                     for pr in ("trex", "conceptnet")} - {"smollm2-135m__int8-dyn__conceptnet"}
    assert "left out by --limits (skip): 1 case(s), e.g. smollm2-135m__int8-dyn__conceptnet" in out.stdout
