"""--checkpoint: checkpoints the tests make on the testbed's causal model (width 128, it knows its
facts) in each format transformers loads, saved to disk, then measured as presets against it.

Bits per weight are checked against the slow obvious count from each format's layout; retention
against the base's dense result on the facts the base was trained on."""
import os
import subprocess
import sys

import pytest
import torch

from benchmarks import user_models
from benchmarks.models import load
from benchmarks.record import read_records
from benchmarks.testbed import corpus, training_sentences, write_corpus
from compressors import PRESETS, compress
from benchmarks.user_checkpoints import resolve
from compressors.checkpoint import CheckpointError
from probes.lama import score_subset
from tests.helpers import REPO

FORMATS = ["bnb-int8", "bnb-nf4", "torchao-int8", "ct-int8", "ct-w4g64", "gptq-w4"]


def _layers(model):
    from compressors.measure import linear_modules
    return [tuple(m.weight.shape) for m in linear_modules(model).values()]   # (out, in)


def _expected_bits(fmt, layers):
    """Bytes each layout stores per layer (weights + its statistics), over the weights."""
    n = sum(o * i for o, i in layers)
    per_layer = {
        "bnb-int8": lambda o, i: o * i + 4 * o + 1,              # int8 + fp32 row absmax + format byte
        "torchao-int8": lambda o, i: o * i + 4 * o + o,          # int8 + fp32 scale + int8 zero point
        "ct-int8": lambda o, i: o * i + 4 * o,                   # int8 + fp32 channel scale
        "ct-w4g64": lambda o, i: o * i // 2 + 4 * o * i // 64 + 16,   # packed int4 + fp32 group scale + shape
        # packed int4 + int4 zeros + fp16 group scales (group 128) + int32 group index per input
        "gptq-w4": lambda o, i: o * i // 2 + (i // 128) * o // 2 + (i // 128) * o * 2 + 4 * i,
    }[fmt]
    return 8 * sum(per_layer(o, i) for o, i in layers) / n


def _save_ct(base, out, bits, strategy, group):
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (QuantizationArgs, QuantizationConfig,
                                                 QuantizationScheme, QuantizationStatus,
                                                 apply_quantization_config)
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=True, strategy=strategy, group_size=group)
    apply_quantization_config(model, QuantizationConfig(
        config_groups={"g": QuantizationScheme(targets=["Linear"], weights=args)}, ignore=["lm_head"],
        quantization_status=QuantizationStatus.INITIALIZED))
    qmax = 2 ** (bits - 1) - 1   # symmetric absmax scales, what llm-compressor's minmax observer gives
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "weight_scale"):
                w = m.weight if group is None else m.weight.reshape(m.weight.shape[0], -1, group)
                m.weight_scale.copy_((w.abs().amax(dim=-1) / qmax).reshape(m.weight_scale.shape))
    comp = ModelCompressor.from_pretrained_model(
        model, quantization_format="int-quantized" if bits == 8 else "pack-quantized")
    comp.compress_model(model)
    model.save_pretrained(out, safe_serialization=True)
    comp.update_config(out)


def _save_gptq(base, out, tok):
    from compressors.backends import gptq_cpu_workers as cpu_workers
    cpu_workers()
    from gptqmodel import GPTQModel, QuantizeConfig
    ids = tok(" ".join(t.replace("[Y]", o) for t, o in training_sentences(corpus())))["input_ids"]
    rows = [{"input_ids": ids[k * 128:(k + 1) * 128], "attention_mask": [1] * 128} for k in range(16)]
    qm = GPTQModel.load(str(base), QuantizeConfig(bits=4, group_size=128, desc_act=False), device="cpu")
    qm.quantize(rows, calibration_data_min_length=1)
    qm.save(str(out))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TorchAoConfig
    from torchao.quantization import Int8WeightOnlyConfig

    from benchmarks.testbed import trained_model
    root = tmp_path_factory.mktemp("ckpt")
    model, tok, _, _ = trained_model("causal")
    base = root / "base"
    model.save_pretrained(base, safe_serialization=True)
    tok.save_pretrained(base)
    quant = {"bnb-int8": BitsAndBytesConfig(load_in_8bit=True),
             "bnb-nf4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                           bnb_4bit_compute_dtype=torch.float32),
             "torchao-int8": TorchAoConfig(Int8WeightOnlyConfig())}
    for fmt, qc in quant.items():
        q = AutoModelForCausalLM.from_pretrained(base, quantization_config=qc, device_map={"": "cpu"})
        q.save_pretrained(root / fmt, safe_serialization=True)
        tok.save_pretrained(root / fmt)
    _save_ct(base, root / "ct-int8", 8, "channel", None)
    _save_ct(base, root / "ct-w4g64", 4, "group", 64)
    _save_gptq(base, root / "gptq-w4", tok)
    spec = user_models.resolve(str(base))   # not registered: other tests iterate the registries
    return root, spec, load(spec)


def _p1(model, tok):
    return score_subset(model, tok, "causal", write_corpus(corpus()) / "trained",
                        "trex").metrics["p_at_1"]["value"]


def _registered(monkeypatch, preset):
    monkeypatch.setitem(PRESETS, preset.id, preset)   # for this test only
    return preset


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_measured_from_its_weights(made, fmt, monkeypatch):
    root, spec, (dense, tok, info) = made
    preset = _registered(monkeypatch, resolve(str(root / fmt), [spec]))
    assert preset.id == f"ckpt-{fmt}" and preset.params["base"] == spec.id
    assert preset.bits == (8 if "8" in fmt else 4)               # as the config declares
    model, effect = compress(dense, preset.id, "causal", tokenizer=tok, model_info=info)
    layers = _layers(dense)
    assert effect["quantized_modules"] == len(layers) == 14
    assert effect["bits_per_weight"] == pytest.approx(_expected_bits(fmt, layers)
                                                      if fmt != "bnb-nf4" else 4.55, abs=0.01 if
                                                      fmt != "bnb-nf4" else 0.06)
    # quantization noise, not a layout error: 8-bit ~0.7 % of the weights' norm, 4-bit ~10-15 %
    assert 0 < effect["relative_weight_change"] < (0.01 if "8" in fmt else 0.2)
    assert effect["weight_bytes"] < effect["weight_bytes_before"]
    base_p1, ckpt_p1 = _p1(dense, tok), _p1(model, tok)
    assert base_p1 >= 0.95                                       # the testbed knows its facts
    # measured 1.000 for every format here (the testbed memorised 240 facts; 4-bit keeps them)
    assert ckpt_p1 / base_p1 >= (0.95 if "8" in fmt else 0.9), (fmt, ckpt_p1, base_p1)


def test_a_checkpoint_that_is_its_base_is_refused(made, monkeypatch):
    from compressors import CompressionError
    root, spec, (dense, tok, info) = made
    preset = _registered(monkeypatch, resolve(f"same={root / 'base'}", [spec]))
    assert preset.params["format"] == "dense" and preset.bits is None
    with pytest.raises(CompressionError, match="left the model unchanged"):
        compress(dense, preset.id, "causal", tokenizer=tok, model_info=info)


def test_a_checkpoint_of_another_model_is_refused(made, tmp_path):
    root, spec, _ = made
    from benchmarks.tiny import build
    other, tok = build("causal", width=64)
    other.save_pretrained(tmp_path / "other", safe_serialization=True)
    with pytest.raises(CheckpointError, match="matches 0 of the run's models"):
        resolve(str(tmp_path / "other"), [spec])


def test_checkpoints_run_as_presets_through_pytest(made, tmp_path):
    root, _, (dense, _, _) = made
    env = dict(os.environ, KCB_LAMA_VERIFY="0")   # the testbed's own facts, not LAMA's files
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--models", str(root / "base"),
         "--checkpoint", str(root / "ct-w4g64"), "--checkpoint", f"ao={root / 'torchao-int8'}",
         "--floor", "0.5", "--lama-dir", str(write_corpus(corpus()) / "trained"), "--probes", "trex",
         "--results-dir", str(tmp_path), "-q", "-p", "no:cacheprovider", "--benchmark-disable"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recs = {r["case_id"]: r for r in read_records(tmp_path)}
    assert set(recs) == {"base__none__trex", "base__ckpt-ct-w4g64__trex", "base__ckpt-ao__trex"}
    for cid, fmt in (("base__ckpt-ct-w4g64__trex", "compressed-tensors"), ("base__ckpt-ao__trex", "torchao")):
        rec = recs[cid]
        assert rec["preset"]["effect"]["format"] == fmt
        assert rec["gate"]["baseline_case"] == "base__none__trex" and rec["gate"]["floor"] == 0.5
        assert rec["gate"]["verdict"] == "pass" and rec["gate"]["retention"] >= 0.9
        assert rec["memory"]["weight_bytes"] == rec["preset"]["effect"]["weight_bytes"]
    assert recs["base__ckpt-ao__trex"]["preset"]["effect"]["bits_per_weight"] == pytest.approx(
        _expected_bits("torchao-int8", _layers(dense)), abs=0.01)
