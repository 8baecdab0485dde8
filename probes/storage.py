"""Shared file facts: where the cache lives, how a file is written atomically, and how a cache
entry (a folder) is built once, published whole, verified on every read and healed.
Standard library only, so every layer (probes, compressors, benchmarks, the site) can use it.

    root = cache_root()                 # $KCB_CACHE, default ~/.cache/knowledge-cost
    atomic_write(path, data)            # readers see the old file or the new one, never a part
    reused = entry(folder, build)       # build(tmp) fills an empty folder, then it is published

Entries. ``build`` writes into a unique temporary folder beside the entry; a manifest (every
file's name, size and sha256) is written last, and the folder is renamed into place. A reader
checks the manifest (sizes, then sha256: about 1 GB/s on this CPU, about as long as loading the
bytes), so a truncated, partial or edited entry is never used: it is reported by path (a
CacheWarning), removed and rebuilt. One builder per entry at a time: an fcntl lock
(``.lock-<name>`` beside the entry) makes other processes wait and reuse the result instead of
repeating minutes of training, quantization or conversion, and the kernel drops the lock when
its holder dies, so a killed build blocks no one. Where locks do not work (some network
filesystems) the first complete writer still wins: a rename onto a published entry fails, and
the later writer keeps the published one.

Temporaries (``.tmp-<name>.<pid>.<random>[.part]``) are flock-ed by their writer while it lives.
Writers remove the temps in their folder that are unlocked and older than STALE_SECONDS: what
killed writers left.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sys
import time
import warnings
from pathlib import Path

MANIFEST = "kcb-manifest.json"
TMP_PREFIX = ".tmp-"
# A temp is locked microseconds after it is created; the age only covers that gap, so a killed
# writer's leftovers go at the next write in the folder a minute later.
STALE_SECONDS = 60


class CacheWarning(UserWarning):
    """A damaged or partial cache entry was found; it is removed and rebuilt."""


def cache_root() -> Path:
    """The cache folder: ``$KCB_CACHE``, default ``~/.cache/knowledge-cost`` (read at each call)."""
    return Path(os.environ.get("KCB_CACHE") or Path.home() / ".cache" / "knowledge-cost").expanduser()


def _tmp_path(path: Path, suffix: str = "") -> Path:
    return path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def _lock(fd: int, block: bool = True) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)   # garbage: a concurrent cleaner may race us
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale(folder: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove the temps in ``folder`` that no live writer holds and that are older than
    ``max_age`` seconds. Returns the paths removed."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        path = Path(folder) / name
        try:
            if time.time() - path.lstat().st_mtime < max_age:
                continue
            fd = os.open(path, os.O_RDONLY)   # folders too: flock works on any open file
        except OSError:                       # published or removed meanwhile
            continue
        try:
            if _lock(fd, block=False):
                _remove(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb"):
    """An open file that becomes ``path`` on success (flushed, fsynced, renamed over it); on any
    failure the temp is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    tmp = _tmp_path(path, ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies
    try:
        _lock(fd)
        with open(fd, mode, closefd=False, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            with open(p, "rb") as f:
                os.fsync(f.fileno())   # the bytes reach the disk before the entry is published
            files[p.relative_to(folder).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    if not files:
        raise RuntimeError(f"building cache entry {folder} wrote no files")
    atomic_write(folder / MANIFEST, json.dumps({"files": files}, indent=1, sort_keys=True))


def problem(folder: Path) -> str | None:
    """None when ``folder`` is a complete entry whose files match its manifest, else what is wrong."""
    folder = Path(folder)
    if not folder.exists():
        return "absent"
    try:
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        for rel, want in listed.items():           # sizes first: cheap, and catch truncation
            size = (folder / rel).stat().st_size
            if size != want["size"]:
                return f"{rel} has {size} bytes, its manifest says {want['size']} (truncated or rewritten)"
        for rel, want in listed.items():
            if sha256_file(folder / rel) != want["sha256"]:
                return f"{rel} does not match the sha256 in its manifest"
    except FileNotFoundError as exc:
        if exc.filename and Path(exc.filename).name == MANIFEST:
            return "no completion manifest (an interrupted write, or one made before manifests)"
        return f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable manifest or files ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def _held(lock: Path, what: Path):
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _lock(fd, block=False):
            print(f"waiting for another process to finish {what}", file=sys.stderr, flush=True)
            _lock(fd)
        yield
    finally:
        os.close(fd)


def entry(path: Path, build) -> bool:
    """Make ``path`` a complete, verified cache folder: reuse it (returns True), or have
    ``build(tmp)`` fill the empty folder ``tmp`` and publish it (returns False). A damaged or
    partial entry is reported (CacheWarning, naming the path), removed and rebuilt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    if problem(path) is None:
        return True
    with _held(path.with_name(f".lock-{path.name}"), path):
        why = problem(path)
        if why is None:                  # another process built it while we waited
            return True
        if why != "absent":
            warnings.warn(f"cache entry {path} is damaged: {why}; removing it and rebuilding it",
                          CacheWarning, stacklevel=2)
            aside = _tmp_path(path, ".old")
            os.rename(path, aside)       # readers stop seeing it at once; then delete at leisure
            _remove(aside)
        tmp = _tmp_path(path)
        tmp.mkdir()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            _lock(fd)
            build(tmp)
            _write_manifest(tmp)
            try:
                os.rename(tmp, path)
            except OSError:              # published by a writer that did not lock: first one wins
                if problem(path) is not None:
                    raise
                _remove(tmp)
        except BaseException:
            _remove(tmp)
            raise
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
    return False
