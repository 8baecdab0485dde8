"""The preset menu's registry, marks and the --presets selection."""
import subprocess
import sys

import pytest

from benchmarks.matrix import METHOD_MARK, cases, select_presets
from benchmarks.models import MODELS
from compressors import PRESETS
from tests.helpers import REPO


def test_default_presets_are_the_main_jobs_subset():
    ids = [p.id for p in select_presets("default")]
    assert set(ids) == {"none", *(f"sparse-{n}" for n in range(10, 100, 20)), "int8-dyn",
                        "bnb-int8", "nf4-single", "wanda-50"}
    assert len(select_presets("all")) == len(PRESETS)
    assert [p.id for p in select_presets("nf4-single, gptq-w4")] == ["nf4-single", "gptq-w4"]
    with pytest.raises(KeyError, match="did you mean"):
        select_presets("nf4-singel")


def test_every_method_has_a_mark_and_bits_give_the_width_mark():
    llama = MODELS["smollm2-135m"]
    for case in cases([llama]):
        p = case.preset
        assert p.method in METHOD_MARK
        if p.bits:
            assert f"int{p.bits}" in case.marks
        assert ("cuda" in case.marks) == p.cuda
    four_bit = {p.id for p in PRESETS.values() if p.bits == 4}
    assert {"nf4-single", "nf4-double", "fp4-single", "fp4-double", "quanto-w4", "gptq-w4",
            "ao-w4", "p20-nf4", "p40-nf4"} == four_bit


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
