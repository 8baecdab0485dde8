"""LAMA data: find it, verify it, read it into facts with a cloze slot.

    facts = load_subset(lama_dir(), "trex", limit=20)
    python -m probes.lama_data download --dest ~/.cache/knowledge-cost/lama   # users with network

The directory layout is the LAMA release's (``TREx/P19.jsonl``, ``Google_RE/*_test.jsonl``,
``Squad/test.jsonl``, ``ConceptNet/test.jsonl``, ``relations.jsonl``) plus ParaRel patterns
(``ParaRel/P19.jsonl``) used to give causal LMs a template whose slot is last. A missing,
unreadable or malformed file is an error that names the file (and line).
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "KCB_LAMA_DIR"
DEFAULT_DIR = Path(os.environ.get("KCB_CACHE", Path.home() / ".cache" / "knowledge-cost")) / "lama"
SLOT = "[Y]"

# Google-RE relations are not in LAMA's relations.jsonl; these are LAMA's own Google-RE templates.
GOOGLE_RE = {
    "place_of_birth": ("[X] was born in [Y] .", "N-1"),
    "date_of_birth": ("[X] (born [Y]).", "N-1"),
    "place_of_death": ("[X] died in [Y] .", "N-1"),
}
SUBSETS = ("trex", "google-re", "conceptnet", "squad")


class LamaDataError(RuntimeError):
    """Missing, unreadable or malformed LAMA data; the message names the file."""


@dataclass(frozen=True)
class Fact:
    uid: str          # stable across runs: "<subset>/<group>/<uuid or line>"
    subset: str       # trex | google-re | conceptnet | squad
    group: str        # relation (P19, place_of_birth, IsA) or "squad"
    subject: str
    obj: str
    text: str         # cloze with the slot "[Y]" (subject filled in), any slot position
    causal_text: str | None = None  # same fact with the slot last, for left-to-right models


@dataclass
class Subset:
    name: str
    facts: list[Fact]
    candidates: dict[str, list[str]]   # group -> the candidate objects ranked for that group
    templates: dict[str, dict]         # group -> {"template", "causal_template", "type"}
    checksum: str                      # sha256 over every file read, in order
    files: list[str]
    excluded: list[dict]               # facts left out of scoring, each with its reason


def lama_dir(option: str | None = None) -> Path:
    """The LAMA directory: --lama-dir, else $KCB_LAMA_DIR, else the download cache."""
    raw = option or os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else DEFAULT_DIR
    if not (path / "relations.jsonl").is_file():
        raise LamaDataError(
            f"LAMA data not found at {path} (no relations.jsonl). Pass --lama-dir DIR, set "
            f"{ENV_VAR}=DIR, or download it: python -m probes.lama_data download --dest {DEFAULT_DIR}")
    return path


def _read_jsonl(path: Path, required: tuple[str, ...], digest) -> list[dict]:
    if not path.is_file():
        raise LamaDataError(f"missing LAMA file {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LamaDataError(f"cannot read LAMA file {path}: {exc}") from exc
    digest.update(path.name.encode() + b"\0" + raw)
    rows = []
    for lineno, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LamaDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise LamaDataError(f"{path}:{lineno}: expected a JSON object")
        missing = [k for k in required if not isinstance(row.get(k), (str, list)) or not row.get(k)]
        if missing:
            raise LamaDataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise LamaDataError(f"{path}: no facts in file")
    return rows


def _fill(template: str, subject: str) -> str:
    if template.count("[X]") != 1 or template.count(SLOT) != 1:
        raise LamaDataError(f"template {template!r} must contain [X] and [Y] exactly once")
    return template.replace("[X]", subject)


def slot_is_last(text: str) -> bool:
    """True when nothing but closing punctuation follows the slot (dropped from causal prompts)."""
    return text.split(SLOT, 1)[1].strip(" .)") == ""


def _causal_template(template: str, pararel: Path | None, group: str) -> str | None:
    """LAMA's template if its slot is last, else the first ParaRel paraphrase with the slot last."""
    if slot_is_last(template) and template.find("[X]") < template.find(SLOT):
        return template
    if pararel is None or not (pararel / f"{group}.jsonl").is_file():
        return None
    for line in (pararel / f"{group}.jsonl").read_text().splitlines():
        pattern = json.loads(line).get("pattern", "") if line.strip() else ""
        if pattern.count(SLOT) == 1 and pattern.count("[X]") == 1 and slot_is_last(pattern) \
                and pattern.find("[X]") < pattern.find(SLOT):
            return pattern
    return None


def _stable_order(facts: list[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: hashlib.sha256(f.uid.encode()).hexdigest())


def load_subset(root: Path, name: str, limit: int | None = None) -> Subset:
    """Read one LAMA subset. ``limit``: at most that many facts per group, chosen by a hash of the
    fact id (deterministic, and a spread rather than the file's first lines). Candidates are
    always drawn from the whole group, so a limited run ranks against the same set as a full one."""
    if name not in SUBSETS:
        raise LamaDataError(f"unknown LAMA subset {name!r}; known: {', '.join(SUBSETS)}")
    digest = hashlib.sha256()
    by_group: dict[str, list[Fact]] = {}
    templates: dict[str, dict] = {}
    files: list[str] = []
    excluded: list[dict] = []
    pararel = root / "ParaRel" if (root / "ParaRel").is_dir() else None

    def add(group, fact):
        by_group.setdefault(group, []).append(fact)

    if name in ("trex", "google-re"):
        if name == "trex":
            relations = {r["relation"]: r for r in _read_jsonl(
                root / "relations.jsonl", ("relation", "template"), digest)}
            files.append("relations.jsonl")
            trex_dir = root / "TREx"
            if not trex_dir.is_dir():
                raise LamaDataError(f"missing LAMA folder {trex_dir}")
            paths = sorted(trex_dir.glob("*.jsonl"))
            if not paths:
                raise LamaDataError(f"no T-REx relation files (*.jsonl) in {trex_dir}")
            groups = []
            for p in paths:
                rel = p.stem
                if rel not in relations:
                    raise LamaDataError(f"{p}: relation {rel} has no template in relations.jsonl")
                groups.append((rel, p, relations[rel]["template"], relations[rel].get("type", "")))
        else:
            groups = [(g, root / "Google_RE" / f"{g}_test.jsonl", t, ty)
                      for g, (t, ty) in GOOGLE_RE.items()]
        for group, path, template, rtype in groups:
            causal = _causal_template(template, pararel, group)
            templates[group] = {"template": template, "causal_template": causal, "type": rtype}
            files.append(str(path.relative_to(root)))
            for i, row in enumerate(_read_jsonl(path, ("sub_label", "obj_label"), digest)):
                uid = f"{name}/{group}/{row.get('uuid') or i}"
                add(group, Fact(uid, name, group, row["sub_label"], row["obj_label"].strip(),
                                _fill(template, row["sub_label"]),
                                _fill(causal, row["sub_label"]) if causal else None))
    else:
        path = root / ("Squad/test.jsonl" if name == "squad" else "ConceptNet/test.jsonl")
        files.append(str(path.relative_to(root)))
        for i, row in enumerate(_read_jsonl(path, ("masked_sentences", "obj_label"), digest), 1):
            sentence = row["masked_sentences"][0] if isinstance(row["masked_sentences"], list) \
                else row["masked_sentences"]
            if not isinstance(sentence, str) or "[MASK]" not in sentence:
                raise LamaDataError(f"{path}:{i}: masked sentence has no [MASK]: {sentence!r}")
            if sentence.count("[MASK]") != 1:   # e.g. SQuAD "[MASK]ians ... following [MASK]."
                excluded.append({"line": i, "reason": "more than one [MASK]"})
                continue
            text = sentence.replace("[MASK]", SLOT)
            group = row.get("pred") or "squad"
            templates.setdefault(group, {"template": None, "causal_template": None, "type": ""})
            uid = f"{name}/{group}/{row.get('uuid') or row.get('id') or i}"
            add(group, Fact(uid, name, group, row.get("sub_label", ""), row["obj_label"].strip(), text,
                            text if slot_is_last(text) else None))

    # Candidates: objects of the same relation (T-REx, Google-RE: typed, as in the literature on
    # decoder LAMA); for ConceptNet and SQuAD, whose groups are tiny or single, the whole subset.
    if name in ("trex", "google-re"):
        candidates = {g: sorted({f.obj for f in fs}) for g, fs in by_group.items()}
    else:
        pool = sorted({f.obj for fs in by_group.values() for f in fs})
        candidates = {g: pool for g in by_group}
    facts = []
    for group in sorted(by_group):
        chosen = _stable_order(by_group[group])
        facts.extend(chosen[:limit] if limit else chosen)
    return Subset(name, facts, candidates, templates, digest.hexdigest(), files, excluded)


# ---------------------------------------------------------------- download (users with network)
_PARAREL = "https://raw.githubusercontent.com/yanaiela/pararel/main/data"
_NEGATED = ("https://raw.githubusercontent.com/norakassner/LAMA_primed_negated/"
            "690437fd8018ac3c127f7e3aeff07a89e5f5b50b")
_LAMA_ZIP = "https://dl.fbaipublicfiles.com/LAMA/data.zip"
# sha256 of the files this project was validated on (the same bytes as ../shared/data/lama).
PINNED = json.loads((Path(__file__).with_name("lama_manifest.json")).read_text())


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


def _fetch(url: str, dest: Path) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:  # noqa: S310
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except OSError as exc:   # URLError, timeouts, refused connections
        tmp.unlink(missing_ok=True)
        raise LamaDataError(f"could not download {url} ({exc}). Without network, copy a LAMA "
                            f"folder here and pass --lama-dir or set {ENV_VAR}.") from None
    os.replace(tmp, dest)


def download(dest: Path = DEFAULT_DIR, fetch=_fetch, verify: bool = True) -> Path:
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
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        actual = hashlib.sha256(target.read_bytes()).hexdigest()
        if actual != expected:
            bad.append(f"{target}: sha256 {actual} != pinned {expected}")
    if bad and verify:
        raise LamaDataError("downloaded LAMA files do not match their pinned checksums (the "
                            "source changed or the download is corrupt):\n  " + "\n  ".join(bad)
                            + "\nDelete them and retry, or pass --no-verify to keep them "
                            "(their real checksum is recorded in every result).")
    return dest


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["download"])
    ap.add_argument("--dest", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    try:
        print(download(args.dest, verify=not args.no_verify))
    except LamaDataError as exc:
        raise SystemExit(f"error: {exc}")
