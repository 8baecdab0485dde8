"""The preset menu's registry, marks and the --presets selection."""
import subprocess
import sys

import pytest

from benchmarks.matrix import cases, select_presets
from benchmarks.models import MODELS
from compressors import KINDS, METHODS, PRESETS
from tests.helpers import REPO


def test_default_presets_are_the_main_jobs_subset():
    chosen = select_presets("default")
    assert [p.id for p in chosen] == [p.id for p in PRESETS.values() if p.default]
    assert chosen[0].id == "none"                                      # the baseline runs first
    kinds = {METHODS[p.method].kind for p in chosen}
    assert set(KINDS) - {"checkpoint"} <= {k for kind in kinds for k in ((kind,) if isinstance(kind, str) else kind)}
    assert len(select_presets("all")) == len(PRESETS)
    assert [p.id for p in select_presets("nf4-single, gptq-w4")] == ["nf4-single", "gptq-w4"]
    with pytest.raises(KeyError, match="did you mean"):
        select_presets("nf4-singel")


def test_every_method_has_a_mark_and_bits_give_the_width_mark():
    llama = MODELS["smollm2-135m"]
    for case in cases([llama]):
        p = case.preset
        kind = METHODS[p.method].kind
        assert set((kind,) if isinstance(kind, str) else kind) <= set(case.marks)
        if p.bits:
            assert f"int{p.bits}" in case.marks
        assert ("cuda" in case.marks) == p.cuda
    four_bit = {c.preset.id for c in cases([llama]) if "int4" in c.marks}
    assert four_bit == {p.id for p in PRESETS.values() if p.bits == 4} and len(four_bit) >= 4


def test_presets_option_selects_at_collection():
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
                          "-k", "smollm2 and trex", "--presets", "none,nf4-double"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    items = [l for l in out.stdout.splitlines() if "::test_case[" in l]
    assert out.returncode == 0 and [i.split("[")[1] for i in items] == [
        "smollm2-135m__none__trex]", "smollm2-135m__nf4-double__trex]"]
    bad = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
                          "--presets", "nf4"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "unknown compression preset 'nf4'" in bad.stderr + bad.stdout
