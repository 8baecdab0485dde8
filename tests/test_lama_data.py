"""LAMA data: deterministic limits, paraphrases for causal models, clear errors, verified download."""
import hashlib
import json

import pytest

from probes import lama_data, lama_download
from probes.lama_data import LamaDataError, load_subset
from tests.helpers import shared_lama, write_lama


def test_real_subsets_load_with_expected_counts():
    root = shared_lama()
    trex = load_subset(root, "trex")
    assert len(trex.facts) == 29411 and len(trex.candidates) == 41
    assert len(load_subset(root, "google-re").facts) == 1825 + 2937 + 766
    assert len(load_subset(root, "conceptnet").facts) == 146
    squad = load_subset(root, "squad")
    assert len(squad.facts) == 302 and len(squad.excluded) == 3   # 3 sentences with two [MASK]s


def test_limit_is_per_relation_and_deterministic():
    root = shared_lama()
    a = load_subset(root, "trex", limit=5)
    b = load_subset(root, "trex", limit=5)
    assert [f.uid for f in a.facts] == [f.uid for f in b.facts]
    per = {}
    for f in a.facts:
        per[f.group] = per.get(f.group, 0) + 1
    assert len(per) == 41 and set(per.values()) == {5}
    full = load_subset(root, "trex")
    assert a.candidates == full.candidates       # limited runs rank against the same candidates


def test_causal_templates_put_the_slot_last():
    sub = load_subset(shared_lama(), "trex", limit=1)
    for fact in sub.facts:
        assert lama_data.slot_is_last(fact.causal_text), fact
    assert sub.templates["P413"]["causal_template"] == "[X] plays in the position of [Y]."
    assert sub.templates["P19"]["causal_template"] == "[X] was born in [Y] ."


def test_missing_data_dir_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(lama_data.ENV_VAR, raising=False)
    with pytest.raises(LamaDataError, match="--lama-dir.*KCB_LAMA_DIR.*download"):
        lama_data.lama_dir(str(tmp_path / "nowhere"))


def test_malformed_line_is_reported_with_file_and_line(tmp_path):
    root = write_lama(tmp_path, [("A", "x")])
    with open(root / "TREx" / "P19.jsonl", "a") as f:
        f.write("{broken\n")
    with pytest.raises(LamaDataError, match=r"P19\.jsonl:2: not valid JSON"):
        load_subset(root, "trex")


def test_missing_field_is_reported(tmp_path):
    root = write_lama(tmp_path, [("A", "x")])
    with open(root / "TREx" / "P19.jsonl", "a") as f:
        f.write(json.dumps({"sub_label": "B"}) + "\n")
    with pytest.raises(LamaDataError, match=r"P19\.jsonl:2: missing field\(s\) obj_label"):
        load_subset(root, "trex")


def test_missing_subset_file_is_named(tmp_path):
    root = write_lama(tmp_path, [("A", "x")])
    with pytest.raises(LamaDataError, match=r"missing LAMA file .*Google_RE/place_of_birth_test\.jsonl"):
        load_subset(root, "google-re")


def test_download_verifies_checksums_and_keeps_good_files(tmp_path, monkeypatch):
    src = shared_lama()
    pinned = {"TREx/P19.jsonl": hashlib.sha256((src / "TREx/P19.jsonl").read_bytes()).hexdigest(),
              "relations.jsonl": hashlib.sha256((src / "relations.jsonl").read_bytes()).hexdigest()}
    monkeypatch.setattr(lama_download, "PINNED", pinned)
    fetched = []

    def fake_fetch(url, dest):          # serve the shared copy as if it came from the network
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if url.endswith("data.zip"):
            import zipfile
            with zipfile.ZipFile(dest, "w") as zf:
                zf.write(src / "relations.jsonl", "data/relations.jsonl")
        else:
            dest.write_bytes((src / "TREx" / url.rsplit("/", 1)[1]).read_bytes())

    lama_data.download(tmp_path, fetch=fake_fetch)
    assert (tmp_path / "TREx/P19.jsonl").read_bytes() == (src / "TREx/P19.jsonl").read_bytes()
    assert any("trex_lms_vocab/P19.jsonl" in u for u in fetched)
    n = len(fetched)
    lama_data.download(tmp_path, fetch=fake_fetch)           # cached and verified: no refetch
    assert len(fetched) == n

    def corrupt_fetch(url, dest):
        fake_fetch(url, dest)
        if not url.endswith("data.zip"):
            dest.write_bytes(dest.read_bytes() + b"tampered\n")
    (tmp_path / "TREx/P19.jsonl").unlink()
    with pytest.raises(LamaDataError, match=r"P19\.jsonl: sha256 .* != pinned"):
        lama_data.download(tmp_path, fetch=corrupt_fetch)


def test_download_without_network_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error

    def refuse(*a, **k):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(lama_download.urllib.request, "urlopen", refuse)
    monkeypatch.setattr(lama_download, "PINNED", {"TREx/P19.jsonl": "0" * 64})
    with pytest.raises(LamaDataError, match=r"could not download .*P19\.jsonl.*--lama-dir"):
        lama_data.download(tmp_path)
    assert not list((tmp_path / "TREx").glob("*.part"))
