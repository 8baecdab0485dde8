"""Bad input gets a clear error naming the problem and the fix: one test per error path,
asserting the message a user sees (LAMA data, ids, records, untrusted weights, resume keys).

    pytest tests/test_reliability.py -q
"""
import json
import os
import subprocess
import sys

import pytest

from benchmarks import models
from benchmarks.matrix import Case, select_models
from benchmarks.models import MODELS, ModelSpec, UnsafeCheckpoint
from benchmarks.record import (RecordError, check_case_id, config_key, read_records,
                               write_record)
from benchmarks.runner import Runner
from compressors import PRESETS, get_preset
from probes import PROBES, get_probe
from probes import lama_data, lama_verify
from probes.lama_data import LamaDataError, check_encodable, load_subset, subset_checksum
from tests.helpers import REPO, shared_lama, write_lama
from tests.test_record import make_record


# ------------------------------------------------------------------------------- LAMA data
def _append(root, line: bytes, rel="P19"):
    with open(root / "TREx" / f"{rel}.jsonl", "ab") as f:
        f.write(line + b"\n")


def test_non_utf8_line_is_reported_with_file_and_line(tmp_path):
    root = write_lama(tmp_path, [("A", "x"), ("B", "y")])
    _append(root, b'{"sub_label": "C", "obj_label": "\xff"}')
    with pytest.raises(LamaDataError, match=r"TREx/P19\.jsonl:3: not UTF-8 text \(byte 0xff\).*re-download"):
        load_subset(root, "trex")


@pytest.mark.parametrize("row, message", [
    ({"sub_label": "C", "obj_label": ["x"]}, r"P19\.jsonl:2: field\(s\) obj_label must be text"),
    ({"sub_label": 7, "obj_label": "x"}, r"P19\.jsonl:2: missing field\(s\) sub_label"),
    ({"sub_label": "C", "obj_label": "   "}, r"P19\.jsonl:2: missing field\(s\) obj_label"),
    ({"sub_label": "C [Y]", "obj_label": "x"}, r"P19\.jsonl:2: subject 'C \[Y\]' contains a slot marker"),
    ({"sub_label": "C", "obj_label": "x", "uuid": "u0"}, r"P19\.jsonl:2: fact id 'trex/P19/u0' repeats line 1"),
])
def test_malformed_fact_is_reported_with_file_and_line(tmp_path, row, message):
    root = write_lama(tmp_path, [("A", "x")])
    _append(root, json.dumps(row).encode())
    with pytest.raises(LamaDataError, match=message):
        load_subset(root, "trex")


def test_relation_without_template_names_the_file_and_the_fix(tmp_path):
    root = write_lama(tmp_path, [("A", "x")])
    (root / "TREx" / "P20.jsonl").write_text(json.dumps({"sub_label": "A", "obj_label": "x"}) + "\n")
    with pytest.raises(LamaDataError, match=r"P20\.jsonl: relation P20 has no template in .*"
                                            r"relations\.jsonl; add a line .*\"relation\": \"P20\".*remove P20\.jsonl"):
        load_subset(root, "trex")


def test_malformed_template_names_the_relation_and_line(tmp_path):
    root = write_lama(tmp_path, [("A", "x")], template="[X] was born somewhere .")
    with pytest.raises(LamaDataError, match=r"relations\.jsonl:1 \(P19\): template '\[X\] was born "
                                            r"somewhere \.' must contain \[X\] and \[Y\] exactly once"):
        load_subset(root, "trex")


def test_malformed_pararel_pattern_file_is_reported_with_line(tmp_path):
    root = write_lama(tmp_path, [("A", "x")], template="[Y] is the birthplace of [X] .")
    (root / "ParaRel").mkdir()
    (root / "ParaRel" / "P19.jsonl").write_text('{"pattern": "[Y] is where [X] was born."}\n{oops\n')
    with pytest.raises(LamaDataError, match=r"ParaRel/P19\.jsonl:2: not valid JSON"):
        load_subset(root, "trex")


def test_wrong_checksum_names_the_file_and_the_fix(tmp_path, monkeypatch):
    root = write_lama(tmp_path, [("A", "x")])
    monkeypatch.setattr(lama_verify, "PINNED", {"TREx/P19.jsonl": "0" * 64, "TREx/P404.jsonl": "1" * 64})
    monkeypatch.delenv(lama_data.VERIFY_VAR, raising=False)
    with pytest.raises(LamaDataError) as err:
        lama_data.lama_dir(str(root))
    msg = str(err.value)
    assert "1 LAMA file(s) do not match" in msg and "TREx/P19.jsonl: sha256" in msg
    assert "pinned 0000000000000000" in msg and "P404" not in msg   # missing files are not judged
    assert f"python -m probes.lama_data download --dest {root}" in msg and "KCB_LAMA_VERIFY=0" in msg
    monkeypatch.setenv(lama_data.VERIFY_VAR, "0")                    # on purpose: accepted
    assert lama_data.lama_dir(str(root)) == root


def test_the_shared_lama_folder_matches_its_pinned_checksums():
    lama_data.verify_checksums(shared_lama())   # raises naming any file that differs


def test_object_the_tokenizer_cannot_encode_stops_the_probe_naming_it(tmp_path):
    from benchmarks.tiny import tokenizer
    tok = tokenizer()

    class DropsSymbols:   # a tokenizer that silently drops what it does not know (some do)
        unk_token_id, unk_token, name_or_path = None, None, "drops-symbols"

        def __call__(self, text, **kw):
            return {"input_ids": [] if text == "\u2603" else tok(text, **kw)["input_ids"]}
    root = write_lama(tmp_path, [("A", "Paris"), ("B", "東京"), ("C", "\u2603")])
    with pytest.raises(LamaDataError) as err:
        check_encodable(load_subset(root, "trex"), tok)
    msg = str(err.value)
    assert msg.startswith("2 trex object(s) cannot be encoded by the tokenizer of")
    assert "'東京' (P19): contains the unknown token '<unk>'" in msg
    assert "remove those lines from relations.jsonl, TREx/P19.jsonl" in msg
    with pytest.raises(LamaDataError, match="1 trex object.* of drops-symbols: '\u2603' \\(P19\\): encodes to no tokens"):
        check_encodable(load_subset(root, "trex"), DropsSymbols())
    check_encodable(load_subset(write_lama(tmp_path / "ok", [("A", "Paris")]), "trex"), tok)


def test_probe_score_refuses_unencodable_objects_before_scoring(tmp_path):
    from benchmarks.tiny import build
    model, tok = build("causal")
    root = write_lama(tmp_path, [("A", "Paris"), ("B", "東京")])
    with pytest.raises(LamaDataError, match="'東京' \\(P19\\): contains the unknown token"):
        PROBES["trex"].score(model, tok, "causal", root, limit=1)


@pytest.mark.parametrize("subset", lama_data.SUBSETS)
def test_checksum_from_bytes_equals_the_loaders(subset):
    root = shared_lama()
    assert subset_checksum(root, subset) == load_subset(root, subset, limit=1).checksum


# ------------------------------------------------------------------------------- ids
def test_unknown_model_on_the_command_line_is_a_usage_error_with_the_near_miss():
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--models", "smolm2", "--co",
                          "-q", "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, KCB_LAMA_DIR=str(shared_lama())), timeout=300)
    assert out.returncode == 4, out.stdout + out.stderr                  # pytest's usage error
    assert "ERROR: --models: unknown model 'smolm2'; did you mean smollm2-135m?" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("lookup, bad, near", [
    (select_models, "testbed-lama", "testbed-llama"), (get_preset, "sparse50", "sparse-50"),
    (get_probe, "trexx", "trex")])
def test_unknown_ids_name_the_near_misses(lookup, bad, near):
    with pytest.raises(KeyError, match=f"unknown .*'{bad}'; did you mean .*{near}"):
        lookup(bad)


@pytest.mark.parametrize("bad", [
    "../m__none__trex", "m__none__../../etc", "m__none__trex/../../x", "/abs__none__trex",
    "m__none__/abs", "m\\x__none__trex", "..__none__trex", ".hidden__none__trex", "m____trex",
    "__none__trex", "m__none__", "", "m__none__trex\n", "m__none__trex\x00", "mé__none__trex",
    "m__ｎone__trex", "m__none__trex.json/", "M__none__trex", "m__none__trex__x", "m__none"])
def test_no_case_id_escapes_the_results_folder(tmp_path, bad):
    with pytest.raises(RecordError, match="invalid case id"):
        check_case_id(bad)
    with pytest.raises(RecordError, match="invalid case id"):
        write_record(tmp_path / "records", make_record(case_id=bad) if "__" in bad else
                     {**make_record(), "case_id": bad})
    assert not (tmp_path / "records").exists()


def test_every_registered_case_id_is_a_safe_file_name():
    from benchmarks.matrix import cases
    for case in cases(list(MODELS.values())):
        assert check_case_id(case.id) == case.id


# ------------------------------------------------------------------------------- records
def test_reader_ignores_temp_files_left_by_a_killed_writer(tmp_path):
    write_record(tmp_path, make_record())
    (tmp_path / ".tmp-m__none__trex.123.abc.part").write_text('{"schema": "knowledge-')   # truncated
    (tmp_path / ".tmp-old.json").write_text("{")        # the previous naming, also hidden
    assert [r["case_id"] for r in read_records(tmp_path)] == ["m__none__trex"]


def test_truncated_record_is_reported_by_name(tmp_path):
    path = write_record(tmp_path, make_record())
    path.write_text(path.read_text()[:200])
    with pytest.raises(RecordError, match=r"m__none__trex\.json: unreadable record"):
        read_records(tmp_path)


def test_config_key_changes_with_each_part_of_the_configuration():
    base = make_record()
    key = config_key(base)
    assert config_key(json.loads(json.dumps(base))) == key                # stable across JSON
    assert config_key({**base, "environment": {}, "latency": {}, "timestamps": {}}) == key
    changed = [
        {**base, "model": {**base["model"], "revision": "r2"}},
        {**base, "preset": {**base["preset"], "params": {"sparsity": 0.5}}},
        {**base, "probe": {**base["probe"], "version": "lama-3"}},
        {**base, "scoring": {**base["scoring"], "requested_batch_size": 1}},
        {**base, "scoring": {**base["scoring"], "torch_threads": 1}},
        {**base, "scoring": {**base["scoring"], "dtype": "bfloat16"}},
        {**base, "scoring": {**base["scoring"], "device": "cuda"}},
        {**base, "probe": {**base["probe"], "data_checksum": "abd"}},
        {**base, "probe": {**base["probe"], "limit": 3}},
        {**base, "case_id": "m__none__squad"}]
    assert len({config_key(r) for r in changed} | {key}) == len(changed) + 1


# ------------------------------------------------------------------------------- untrusted weights
def _pickle_only_model(tmp_path):
    from benchmarks.tiny import build
    import torch
    model, tok = build("causal")
    model.config.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    return model, ModelSpec("pickled", "causal", "llama", "hub", str(tmp_path), "b", install="x")


def test_pickled_checkpoint_is_refused_naming_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(models.ALLOW_PICKLE_VAR, raising=False)
    _, spec = _pickle_only_model(tmp_path)
    with pytest.raises(UnsafeCheckpoint, match=r"pickled: .* has only pickled weights \(pytorch_model\.bin\); "
                                               r"pickle files can run code .*KCB_ALLOW_PICKLE=1.*weights_only=True"):
        models.load(spec)


def test_pickled_checkpoint_loads_only_when_asked_and_with_weights_only(tmp_path, monkeypatch):
    import torch
    model, spec = _pickle_only_model(tmp_path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setenv(models.ALLOW_PICKLE_VAR, "1")
    loaded, _, _ = models.load(spec)
    assert calls and all(w is True for w in calls)
    for name, t in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], t), name


def test_hub_loads_ask_for_safetensors_and_no_remote_code(monkeypatch):
    import transformers
    seen = []

    def model_loader(ref, **kwargs):
        seen.append(kwargs)
        raise OSError("offline")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda ref, **kw: seen.append(kw))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_loader)
    monkeypatch.delenv(models.ALLOW_PICKLE_VAR, raising=False)
    with pytest.raises(models.ModelUnavailable, match="gpt2: weights for gpt2 not found"):
        models._load_hub(MODELS["gpt2"])
    tok_kwargs, model_kwargs = seen
    assert tok_kwargs == {"trust_remote_code": False}
    assert model_kwargs["use_safetensors"] is True and model_kwargs["weights_only"] is True
    assert model_kwargs["trust_remote_code"] is False


# ------------------------------------------------------------------------------- resume keys
def test_planned_key_equals_the_key_of_the_record_the_case_writes(tmp_path):
    """--resume compares a key computed before running with the key of the finished record."""
    root = write_lama(tmp_path / "lama", [("A", "x"), ("B", "y"), ("C", "x")])
    runner = Runner(root, tmp_path / "records", limit=2)
    case = Case(MODELS["tiny-causal"], PRESETS["sparse-50"], PROBES["trex"])
    from tests.test_faults import FakeBenchmark
    record = runner.run(case, FakeBenchmark())
    from benchmarks.resume import planned_key
    assert planned_key(runner, case) == config_key(record)
    assert planned_key(Runner(root, tmp_path / "records", limit=3), case) != config_key(record)
    assert planned_key(Runner(root, tmp_path / "records", limit=2, batch_size=1), case) \
        != config_key(record)


def test_expected_revision_matches_what_load_records():
    assert models.expected_revision(MODELS["tiny-masked"]) == "built-in"
    assert models.expected_revision(MODELS["smollm2-135m"]) == f"sha256:{MODELS['smollm2-135m'].sha256}"
    from benchmarks.testbed import model_key
    assert models.expected_revision(MODELS["testbed-t5"]) == f"testbed:{model_key('seq2seq')}"
