"""Download LAMA and the ParaRel patterns (users with network), each file checked against its pin.

    python -m probes.lama_data download --dest ~/.cache/knowledge-cost/lama   # the documented command
    download(dest)                                                             # the same, from Python

Separate from probes/lama_data.py (reading) and probes/lama_verify.py (the pins) because it is
the only LAMA code that touches the network (probes/negated_data.py fetches with ``fetch_url``
too); lama_data re-exports ``download`` so its command keeps working. Files come from LAMA's
release zip, ParaRel's repository and Negated-LAMA's ConceptNet file (the layout of
probes/lama_data.py); what is already present with its pinned sha256 is kept.
"""
from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
from pathlib import Path

from probes.lama_verify import DEFAULT_DIR, ENV_VAR, PINNED, LamaDataError
from probes.storage import atomic_file, atomic_write

_PARAREL = "https://raw.githubusercontent.com/yanaiela/pararel/main/data"
_NEGATED = ("https://raw.githubusercontent.com/norakassner/LAMA_primed_negated/"
            "690437fd8018ac3c127f7e3aeff07a89e5f5b50b")
_LAMA_ZIP = "https://dl.fbaipublicfiles.com/LAMA/data.zip"


def _source(rel_path: str) -> tuple[str, str | None]:
    """(url, zip member or None) for a file of the layout above."""
    top, _, rest = rel_path.partition("/")
    if top == "TREx":
        return f"{_PARAREL}/trex_lms_vocab/{rest}", None
    if top == "ParaRel":
        return f"{_PARAREL}/pattern_data/graphs_json/{rest}", None
    if rel_path == "ConceptNet/test.jsonl":   # the offline subset is Negated-LAMA's ConceptNet file
        return f"{_NEGATED}/data/ConceptNet/random/ConceptNet.jsonl", None
    if rel_path == "common_vocab_cased.txt":
        return "https://dl.fbaipublicfiles.com/LAMA/common_vocab_cased.txt", None
    return _LAMA_ZIP, f"data/{rel_path}"


def fetch_url(url: str, dest: Path) -> None:
    """``url`` into ``dest``, atomically (a failed download leaves no partial file)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_file(dest) as out:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 20)
    except OSError as exc:   # URLError, timeouts, refused connections
        raise LamaDataError(f"could not download {url} ({exc}). Without network, copy a LAMA "
                            f"folder here and pass --lama-dir or set {ENV_VAR}.") from None


def download(dest: Path = DEFAULT_DIR, fetch=fetch_url, verify: bool = True) -> Path:
    """Download every pinned file into ``dest``, verify its sha256, keep what is already good."""
    dest = Path(dest)
    zip_cache = dest / ".cache" / "lama-data.zip"
    bad = []
    for rel_path, expected in sorted(PINNED.items()):
        target = dest / rel_path
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
            continue
        url, member = _source(rel_path)
        if member is None:
            fetch(url, target)
        else:
            if not zip_cache.is_file():
                fetch(url, zip_cache)
            with zipfile.ZipFile(zip_cache) as zf:
                try:
                    data = zf.read(member)
                except KeyError:
                    raise LamaDataError(f"{url} has no member {member}") from None
            atomic_write(target, data)
        actual = hashlib.sha256(target.read_bytes()).hexdigest()
        if actual != expected:
            bad.append(f"{target}: sha256 {actual} != pinned {expected}")
    if bad and verify:
        raise LamaDataError("downloaded LAMA files do not match their pinned checksums (the "
                            "source changed or the download is corrupt):\n  " + "\n  ".join(bad)
                            + "\nDelete them and retry, or pass --no-verify to keep them "
                            "(their real checksum is recorded in every result).")
    return dest


def main(argv: list[str] | None = None) -> None:
    """``python -m probes.lama_data download [--dest DIR] [--no-verify]``: prints the folder."""
    import argparse
    ap = argparse.ArgumentParser(description="LAMA data: find it, verify it, read it into facts "
                                             "with a cloze slot.")   # lama_data's, as before
    ap.add_argument("command", choices=["download"])
    ap.add_argument("--dest", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    try:
        print(download(args.dest, verify=not args.no_verify))
    except LamaDataError as exc:
        raise SystemExit(f"error: {exc}")


if __name__ == "__main__":
    main()
