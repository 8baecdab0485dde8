"""probes/storage.py: the cache root, atomic writes, and cache entries that are published whole,
verified on read and rebuilt when damaged. (Processes and kills: tests/test_cache_safety.py.)"""
import json
import os
import re
from pathlib import Path

import pytest

from probes import storage
from probes.storage import CacheWarning


def test_the_cache_root_is_read_at_each_call(tmp_path, monkeypatch):
    monkeypatch.setenv("KCB_CACHE", str(tmp_path))
    assert storage.cache_root() == tmp_path
    monkeypatch.setenv("KCB_CACHE", "")
    assert storage.cache_root() == Path.home() / ".cache" / "knowledge-cost"


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "r.json"
    storage.atomic_write(path, "old")
    old_umask = os.umask(0o022)
    try:
        storage.atomic_write(path, b"new")
        assert path.read_bytes() == b"new" and (path.stat().st_mode & 0o777) == 0o644
        with pytest.raises(ZeroDivisionError):
            with storage.atomic_file(path) as f:
                f.write(b"half")
                1 / 0
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["r.json"]


def _build(files: dict[str, bytes]):
    def build(tmp: Path):
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
    return build


def test_an_entry_is_built_once_and_its_manifest_lists_every_file(tmp_path):
    calls = []
    build = _build({"w.bin": b"0123456789", "sub/t.json": b"{}"})
    assert storage.entry(tmp_path / "e", lambda tmp: (calls.append(1), build(tmp))) is False
    assert storage.entry(tmp_path / "e", lambda tmp: calls.append(2)) is True and calls == [1]
    listed = json.loads((tmp_path / "e" / storage.MANIFEST).read_text())["files"]
    assert sorted(listed) == ["sub/t.json", "w.bin"] and listed["w.bin"]["size"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock-e", "e"]


@pytest.mark.parametrize("damage, why", [
    (lambda e: os.truncate(e / "w.bin", 4), r"w\.bin has 4 bytes, its manifest says 10"),
    (lambda e: (e / "w.bin").write_bytes(b"01234X6789"), r"w\.bin does not match the sha256"),
    (lambda e: (e / "sub" / "t.json").unlink(), r"t\.json is missing"),
    (lambda e: (e / storage.MANIFEST).unlink(), r"no completion manifest"),
    (lambda e: (e / storage.MANIFEST).write_text("{"), r"unreadable manifest"),
])
def test_a_damaged_entry_is_named_removed_and_rebuilt(tmp_path, damage, why):
    entry = tmp_path / "e"
    build = _build({"w.bin": b"0123456789", "sub/t.json": b"{}"})
    storage.entry(entry, build)
    damage(entry)
    assert re.search(why, storage.problem(entry))
    with pytest.warns(CacheWarning, match=re.escape(str(entry)) + ".*" + why):
        assert storage.entry(entry, build) is False
    assert storage.problem(entry) is None and (entry / "w.bin").read_bytes() == b"0123456789"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_failed_build_publishes_nothing_and_leaves_no_temp(tmp_path):
    def build(tmp):
        (tmp / "w.bin").write_bytes(b"partial")
        raise RuntimeError("training diverged")
    with pytest.raises(RuntimeError, match="diverged"):
        storage.entry(tmp_path / "e", build)
    assert storage.problem(tmp_path / "e") == "absent"
    assert [p.name for p in tmp_path.iterdir()] == [".lock-e"]
    with pytest.raises(RuntimeError, match="wrote no files"):
        storage.entry(tmp_path / "e", lambda tmp: None)


def test_the_first_complete_writer_wins_where_locks_do_not_hold(tmp_path):
    """A writer that did not take the lock (a filesystem without flock) publishes while we
    build: our rename fails, the published entry stays, our temp goes."""
    entry = tmp_path / "e"

    def build(tmp):
        (tmp / "w.bin").write_bytes(b"ours")
        other = tmp_path / ".tmp-other"
        _build({"w.bin": b"theirs"})(other.mkdir() or other)
        storage._write_manifest(other)
        os.rename(other, entry)
    assert storage.entry(entry, build) is False
    assert (entry / "w.bin").read_bytes() == b"theirs" and storage.problem(entry) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
