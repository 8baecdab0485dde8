"""Where the LAMA folder is, which files a subset reads, and whether their bytes are the pinned ones.

    root = lama_dir()                        # --lama-dir, $KCB_LAMA_DIR or the cache; verified
    subset_checksum(root, "trex")            # = load_subset(root, "trex").checksum, bytes only

Separate from probes/lama_data.py (which parses the files into facts) because all of this works
on bytes and paths alone: --resume compares a subset's checksum before running a case, and the
download (probes/lama_download.py) checks the same pins, without reading a fact. Files listed in
``lama_manifest.json`` are verified against their pinned sha256 when the folder is opened
(``KCB_LAMA_VERIFY=0`` to use other bytes on purpose: every record carries their checksum).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from probes.storage import cache_root

ENV_VAR = "KCB_LAMA_DIR"
VERIFY_VAR = "KCB_LAMA_VERIFY"
DEFAULT_DIR = cache_root() / "lama"
SUBSETS = ("trex", "google-re", "conceptnet", "squad")
# Google-RE relations are not in LAMA's relations.jsonl; these are LAMA's own Google-RE templates.
# They live here because Google-RE's files are named by these relations (subset_files).
GOOGLE_RE = {
    "place_of_birth": ("[X] was born in [Y] .", "N-1"),
    "date_of_birth": ("[X] (born [Y]).", "N-1"),
    "place_of_death": ("[X] died in [Y] .", "N-1"),
}
# sha256 of the files this project was validated on (the same bytes as ../shared/data/lama).
PINNED = json.loads((Path(__file__).with_name("lama_manifest.json")).read_text())


class LamaDataError(RuntimeError):
    """Missing, unreadable or malformed LAMA data; the message names the file."""


def lama_dir(option: str | None = None) -> Path:
    """The LAMA directory: --lama-dir, else $KCB_LAMA_DIR, else the download cache."""
    raw = option or os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else DEFAULT_DIR
    if not (path / "relations.jsonl").is_file():
        raise LamaDataError(
            f"LAMA data not found at {path} (no relations.jsonl). Pass --lama-dir DIR, set "
            f"{ENV_VAR}=DIR, or download it: python -m probes.lama_data download --dest {DEFAULT_DIR}")
    if os.environ.get(VERIFY_VAR, "1") != "0":
        verify_checksums(path)
    return path


def verify_checksums(root: Path) -> None:
    """Every pinned file present under ``root`` must have its pinned sha256 (missing files are
    reported by the probe that needs them; files not in the manifest are not judged)."""
    bad = []
    for rel_path, expected in sorted(PINNED.items()):
        target = Path(root) / rel_path
        if not target.is_file():
            continue
        try:
            actual = hashlib.sha256(target.read_bytes()).hexdigest()
        except OSError as exc:
            raise LamaDataError(f"cannot read LAMA file {target}: {exc}") from None
        if actual != expected:
            bad.append(f"{target}: sha256 {actual[:16]}..., pinned {expected[:16]}...")
    if bad:
        raise LamaDataError(
            f"{len(bad)} LAMA file(s) do not match the checksums pinned in probes/lama_manifest.json "
            "(corrupt, truncated or a different release):\n  " + "\n  ".join(bad) +
            f"\nRe-download them (good files are kept): python -m probes.lama_data download --dest "
            f"{root}\nor set {VERIFY_VAR}=0 to use these bytes on purpose (records carry their checksum).")


def pararel_files(root: Path, groups) -> list[Path]:
    """The ParaRel pattern files of these relations that exist (causal templates come from them)."""
    folder = Path(root) / "ParaRel"
    return [folder / f"{g}.jsonl" for g in sorted(groups) if (folder / f"{g}.jsonl").is_file()]


def subset_files(root: Path, name: str) -> list[Path]:
    """The files load_subset reads for ``name``, in the order its checksum covers them."""
    root = Path(root)
    if name == "trex":
        rels = sorted((root / "TREx").glob("*.jsonl"))
        return [root / "relations.jsonl", *rels, *pararel_files(root, [p.stem for p in rels])]
    if name == "google-re":
        return [*(root / "Google_RE" / f"{g}_test.jsonl" for g in GOOGLE_RE),
                *pararel_files(root, GOOGLE_RE)]
    if name in ("squad", "conceptnet"):
        return [root / ("Squad/test.jsonl" if name == "squad" else "ConceptNet/test.jsonl")]
    raise LamaDataError(f"unknown LAMA subset {name!r}; known: {', '.join(SUBSETS)}")


def subset_checksum(root: Path, name: str) -> str:
    """load_subset(root, name).checksum without parsing (bytes only): --resume compares it
    before running a case. tests/test_reliability.py checks the two agree."""
    digest = hashlib.sha256()
    for path in subset_files(root, name):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError as exc:
            raise LamaDataError(f"cannot read LAMA file {path}: {exc}") from None
    return digest.hexdigest()
