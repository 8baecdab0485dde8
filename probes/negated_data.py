"""Negated LAMA data (Kassner & Schuetze, ACL 2020): find it, read it, download and verify it.

    pos, neg, candidates, checksum, files = load(negated_dir(lama_root), limit=10)
    python -m probes.negated_data download --dest ~/.cache/knowledge-cost/lama-negated

Negated LAMA's T-REx files (``lama-negated/TREx/P*.jsonl``: ``masked_sentences`` and
``masked_negations``, e.g. "X was born in [MASK] ." / "X was not born in [MASK] .") are found at
``$KCB_NEGATED_DIR``, else ``lama-negated`` beside the LAMA folder, else the download cache.
``limit`` facts per relation, chosen by a hash of the fact id as for LAMA. The download takes
the "random" variant at a pinned commit (the same bytes as ../shared/data/lama-negated).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from probes.lama_data import SLOT, Fact, LamaDataError, slot_is_last
from probes.storage import cache_root

ENV_VAR = "KCB_NEGATED_DIR"
DEFAULT_NEGATED = cache_root() / "lama-negated"
_SOURCE = ("https://raw.githubusercontent.com/norakassner/LAMA_primed_negated/"
           "690437fd8018ac3c127f7e3aeff07a89e5f5b50b/data/TREx/random")
PINNED = json.loads(Path(__file__).with_name("negated_manifest.json").read_text())


def negated_dir(lama_root: Path | None = None) -> Path:
    """$KCB_NEGATED_DIR, else ``lama-negated`` beside the LAMA folder, else the download cache."""
    raw = os.environ.get(ENV_VAR)
    tried = [Path(raw).expanduser()] if raw else []
    if not raw:
        if lama_root is not None:
            tried.append(Path(lama_root).resolve().parent / "lama-negated")
        tried.append(DEFAULT_NEGATED)
    for path in tried:
        if (path / "TREx").is_dir():
            return path
    raise LamaDataError(f"Negated-LAMA data not found (looked in {', '.join(map(str, tried))}). Set "
                        f"{ENV_VAR}=DIR or download it: python -m probes.negated_data download")


def _read(path: Path, digest) -> list[dict]:
    raw = path.read_bytes()
    digest.update(path.name.encode() + b"\0" + raw)
    rows = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pos, neg = row["masked_sentences"][0], row["masked_negations"][0]
            sub, obj = row["sub_label"], row["obj_label"].strip()
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise LamaDataError(f"{path}:{lineno}: expected sub_label, obj_label, masked_sentences "
                                "and masked_negations") from None
        if pos.count("[MASK]") != 1 or neg.count("[MASK]") != 1:
            raise LamaDataError(f"{path}:{lineno}: each sentence needs exactly one [MASK]")
        rows.append({"uuid": row.get("uuid", lineno), "sub": sub, "obj": obj,
                     "pos": pos.replace("[MASK]", SLOT), "neg": neg.replace("[MASK]", SLOT)})
    if not rows:
        raise LamaDataError(f"{path}: no facts in file")
    return rows


def load(root: Path, limit: int | None):
    """(positive facts, negated facts, candidates, checksum, files): pairs in the same order."""
    paths = sorted((root / "TREx").glob("P*.jsonl"))
    if not paths:
        raise LamaDataError(f"no Negated-LAMA T-REx files (P*.jsonl) in {root / 'TREx'}")
    digest = hashlib.sha256()
    pos, neg, candidates = [], [], {}
    for path in paths:
        rel = path.stem
        rows = _read(path, digest)
        candidates[rel] = sorted({r["obj"] for r in rows})
        for r in rows:
            r["uid"] = f"negated/{rel}/{r['uuid']}"
        rows.sort(key=lambda r: hashlib.sha256(r["uid"].encode()).hexdigest())
        for r in rows[:limit] if limit else rows:
            for out, text, suffix in ((pos, r["pos"], ""), (neg, r["neg"], "~not")):
                out.append(Fact(r["uid"] + suffix, "negated", rel, r["sub"], r["obj"], text,
                                text if slot_is_last(text) else None))
    return pos, neg, candidates, digest.hexdigest(), [str(p.relative_to(root)) for p in paths]


def download(dest: Path = DEFAULT_NEGATED, fetch=None) -> Path:
    """Download Negated-LAMA's T-REx files (pinned commit) and verify each sha256."""
    from probes.lama_download import fetch_url
    fetch = fetch or fetch_url
    bad = []
    for rel_path, expected in sorted(PINNED.items()):
        target = Path(dest) / rel_path
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
            continue
        fetch(f"{_SOURCE}/{Path(rel_path).stem}_random.jsonl", target)
        actual = hashlib.sha256(target.read_bytes()).hexdigest()
        if actual != expected:
            bad.append(f"{target}: sha256 {actual} != pinned {expected}")
    if bad:
        raise LamaDataError("downloaded Negated-LAMA files do not match their pinned checksums "
                            "(delete them and retry):\n  " + "\n  ".join(bad))
    return Path(dest)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Download and verify Negated-LAMA's T-REx files")
    ap.add_argument("command", choices=["download"])
    ap.add_argument("--dest", type=Path, default=DEFAULT_NEGATED)
    args = ap.parse_args()
    try:
        print(download(args.dest))
    except LamaDataError as exc:
        raise SystemExit(f"error: {exc}")
