"""Record schema: round trip, atomic writes, and errors that name the file and the field."""
import json
import re

import pytest

from benchmarks.record import (RecordError, SCHEMA, SCHEMA_VERSION, check_case_id, read_record, validate,
                               read_records, write_record)


def make_record(case_id="m__none__trex", **over):
    rec = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "case_id": case_id, "status": "ok",
        "model": {"id": "m", "family": "causal", "arch": "llama", "source": "tiny", "ref": "x",
                  "revision": "r", "baseline": "random", "params": 10},
        "preset": {"id": case_id.split("__")[1], "method": "none", "params": {}, "bits": None,
                   "effect": {"weight_bytes": 100, "sparsity": 0.0, "bits": None,
                              "quantized_modules": 0, "backend": "none"}},
        "probe": {"id": "trex", "kind": "lama", "version": "lama-2", "data_checksum": "abc",
                  "limit": 2, "main_metric": "p_at_1"},
        "scoring": {"batch_size": 64, "requested_batch_size": 64, "policy": "packed-cache",
                    "padding_side": "none", "attn_implementation": "sdpa", "dtype": "float32",
                    "torch_threads": 2, "device": "cpu"},
        "metrics": {"p_at_1": {"value": 0.5, "stderr": 0.1, "higher_is_better": True},
                    "mrr": {"value": 0.6, "stderr": 0.1, "higher_is_better": True}},
        "n": 2, "groups": {"P19": {"n": 2, "p_at_1": 0.5}},
        "examples": [{"uid": "a", "group": "P19", "gold": "x", "prediction": "x", "rank": 1,
                      "text": "t", "mode": "slot-last"},
                     {"uid": "b", "group": "P19", "gold": "y", "prediction": "x", "rank": 2,
                      "text": "t", "mode": "slot-last"}],
        "latency": {"ms_per_example": 1.0, "tokens_per_s": 10.0, "rounds": 5, "probe_wall_s": 0.1},
        "memory": {"peak_rss_bytes": 1000, "weight_bytes": 100},
        "gate": {"floor": None, "verdict": "baseline", "protocol": "lenient"},
        "environment": {"python": "3.11", "torch": "2", "transformers": "5", "device": "cpu",
                        "git_sha": "abc"},
        "timestamps": {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:01+00:00"},
    }
    rec.update(over)
    return rec


def test_round_trip(tmp_path):
    rec = make_record()
    path = write_record(tmp_path, rec)
    assert path.name == "m__none__trex.json"
    assert read_record(path) == rec
    assert [p.name for p in tmp_path.iterdir()] == ["m__none__trex.json"]   # no temp files left


def test_missing_field_is_named(tmp_path):
    rec = make_record()
    del rec["latency"]["tokens_per_s"]
    with pytest.raises(RecordError, match="latency.tokens_per_s"):
        write_record(tmp_path, rec)
    assert not list(tmp_path.iterdir())


def test_probe_that_scored_nothing_is_refused(tmp_path):
    with pytest.raises(RecordError, match="scored nothing"):
        write_record(tmp_path, make_record(n=0))


def test_unknown_schema_version_names_the_file(tmp_path):
    path = tmp_path / "m__none__trex.json"
    path.write_text(json.dumps(make_record(schema_version=99)))
    with pytest.raises(RecordError, match=r"m__none__trex\.json.*schema_version 99"):
        read_records(tmp_path)


def test_corrupt_file_names_the_file(tmp_path):
    (tmp_path / "bad__none__trex.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"bad__none__trex\.json: unreadable"):
        read_records(tmp_path)


@pytest.mark.parametrize("bad", ["../x__none__trex", "a/b__none__trex", "A__none__trex",
                                 "m__none", "m__none__trex__x", "m__<s>__trex"])
def test_case_ids_cannot_escape_the_results_folder(bad):
    with pytest.raises(RecordError, match="invalid case id"):
        check_case_id(bad)


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["probe"].update(templates={"P19": {"type": ["N-1"]}}), "probe.templates.P19.type"),
    (lambda r: r["probe"].update(templates={"P19": "[X] was born in [Y]"}), "probe.templates.P19"),
    (lambda r: r["probe"].update(candidate_counts={"P19": "8"}), "probe.candidate_counts.P19"),
    (lambda r: r["examples"][0].update(fact=["f"]), "example 0 field fact"),
    (lambda r: (r["probe"].update(kind="ability"), r["examples"][0].update(fact="f", pattern=1),
                r["examples"][0].pop("group")), "lacks its group and rank"),
    (lambda r: r["examples"][0].update(open={"answer": 3, "correct": True}), "open.answer"),
    (lambda r: r["examples"][0].update(open={"answer": "x"}), "open.correct"),
    (lambda r: r["examples"][0].update(nll=1e300, tokens=10), "nats per token"),
    (lambda r: r["examples"][0].update(nll=-1.0, tokens=10), "nats per token"),
])
def test_fields_readers_use_inside_examples_and_templates_are_checked(edit, field):
    """Each of these passed validation and then crashed a reader (tests/test_record_fuzz.py)."""
    rec = make_record()
    edit(rec)
    with pytest.raises(RecordError, match=re.escape(field)):
        validate(rec, "x.json")
