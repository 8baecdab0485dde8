"""A new compression method is one file: discovered at import, marked, run and recorded."""
import json
import subprocess
import sys
import textwrap

from tests.helpers import REPO

DUMMY = textwrap.dedent('''
    """A dummy method for the registry test: zero every other weight of the linear layers."""
    import torch
    from compressors import Preset, handler, register_preset
    from compressors.measure import linear_modules, sparsity, weight_bytes

    register_preset(Preset("dummy-half", "dummy-halving", default=False, params={"every": 2}))


    @handler("dummy-halving", kind="pruning", version="dummy-1", effect=("modules_pruned",))
    def apply(model, preset, family):
        mods = linear_modules(model)
        with torch.no_grad():
            for m in mods.values():
                m.weight.view(-1)[::preset.params["every"]] = 0
        return {"changed": True, "backend": "test", "sparsity": sparsity(mods)[0], "bits": None,
                "quantized_modules": 0, "weight_bytes": weight_bytes(model),
                "modules_pruned": len(mods)}
''')


def test_a_method_in_one_file_is_collected_marked_and_recorded(tmp_path):
    method = tmp_path / "dummy_method.py"
    method.write_text(DUMMY)
    env_cmd = [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "-p", "no:cacheprovider",
               "--presets", "none,dummy-half", "-k", "tiny-causal and trex"]
    env = {**__import__("os").environ, "KCB_METHODS": str(method)}
    listed = subprocess.run([*env_cmd, "-m", "pruning", "--collect-only", "-q"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    assert "tiny-causal__dummy-half__trex" in listed.stdout, listed.stdout[-2000:] + listed.stderr[-2000:]
    run = subprocess.run([*env_cmd, "--limit", "1", "--results-dir", str(tmp_path / "r"),
                          "--benchmark-disable", "-q"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rec = json.loads((tmp_path / "r" / "tiny-causal__dummy-half__trex.json").read_text())
    assert rec["preset"]["method"] == "dummy-halving"
    assert abs(rec["preset"]["effect"]["sparsity"] - 0.5) < 0.01
    assert rec["preset"]["effect"]["modules_pruned"] > 0


def test_a_method_that_omits_a_declared_effect_field_is_refused(monkeypatch):
    import dataclasses

    import pytest
    from benchmarks.tiny import build
    from compressors import METHODS, CompressionError, compress
    real = METHODS["global-magnitude"]

    def no_bytes(model, preset, family):
        effect = real.apply(model, preset, family)
        del effect["weight_bytes"]
        return effect
    monkeypatch.setitem(METHODS, "global-magnitude", dataclasses.replace(real, apply=no_bytes))
    model, _ = build("causal")
    with pytest.raises(CompressionError, match="did not report 'weight_bytes'"):
        compress(model, "sparse-50", "causal")


PROBE_KIND = textwrap.dedent('''
    """A user's probe in one file: T-REx under its own id and scorer version."""
    from probes.registry import Probe, register_probe


    class FirstRelations(Probe):
        def scorer_version(self) -> str:
            return "first-relations-1+" + super().scorer_version()


    register_probe(FirstRelations("trex-first", "lama", "trex", default=False))
''')


def test_a_probe_in_one_file_is_discovered_collected_and_recorded(tmp_path):
    probe = tmp_path / "my_probe.py"
    probe.write_text(PROBE_KIND)
    env = {**__import__("os").environ, "KCB_PROBES": str(probe)}
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--tiny", "-p", "no:cacheprovider",
           "--presets", "none", "--probes", "trex-first", "-k", "tiny-causal"]
    run = subprocess.run([*cmd, "--limit", "1", "--results-dir", str(tmp_path / "r"),
                          "--benchmark-disable", "-q"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rec = json.loads((tmp_path / "r" / "tiny-causal__none__trex-first.json").read_text())
    assert rec["probe"]["version"].startswith("first-relations-1+lama-")
    # without the file, the id is unknown: nothing was registered by hand anywhere else
    env.pop("KCB_PROBES")
    gone = subprocess.run([*cmd, "--collect-only", "-q"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert gone.returncode == 4 and "trex-first" in gone.stdout + gone.stderr


def test_the_probe_files_of_this_package_are_found_without_a_list():
    import probes
    src = (REPO / "probes" / "__init__.py").read_text()
    assert "negated" not in src.split("_discover()")[-1] and {"negated", "pararel"} <= set(probes.PROBES)
