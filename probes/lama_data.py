"""LAMA data: find it, verify it, read it into facts with a cloze slot.

    facts = load_subset(lama_dir(), "trex", limit=20)
    python -m probes.lama_data download --dest ~/.cache/knowledge-cost/lama   # users with network

The directory layout is the LAMA release's (``TREx/P19.jsonl``, ``Google_RE/*_test.jsonl``,
``Squad/test.jsonl``, ``ConceptNet/test.jsonl``, ``relations.jsonl``) plus ParaRel patterns
(``ParaRel/P19.jsonl``) used to give causal LMs a template whose slot is last. A missing,
unreadable or malformed file is an error that names the file (and line); files listed in
``lama_manifest.json`` are verified against their pinned sha256 when the folder is opened
(``KCB_LAMA_VERIFY=0`` to use other bytes on purpose: every record carries their checksum).
An object the model's tokenizer cannot encode stops the probe naming the object (check_encodable).

This file reads; finding the folder and checking its bytes against the pins is
probes/lama_verify.py, downloading it probes/lama_download.py. Their public names are
importable from here as before.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from probes.lama_download import download
from probes.lama_verify import (DEFAULT_DIR, ENV_VAR, GOOGLE_RE, PINNED, SUBSETS, VERIFY_VAR,
                                LamaDataError, lama_dir, pararel_files, subset_checksum,
                                subset_files, verify_checksums)

__all__ = ["DEFAULT_DIR", "ENV_VAR", "GOOGLE_RE", "PINNED", "SLOT", "SUBSETS", "VERIFY_VAR", "Fact",
           "LamaDataError", "Subset", "check_encodable", "download", "lama_dir", "load_subset",
           "read_pararel_patterns", "slot_is_last", "subset_checksum", "subset_files",
           "verify_checksums"]

SLOT = "[Y]"


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


def _read_jsonl(path: Path, required: tuple[str, ...], digest) -> list[dict]:
    if not path.is_file():
        raise LamaDataError(f"missing LAMA file {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LamaDataError(f"cannot read LAMA file {path}: {exc}") from exc
    digest.update(path.name.encode() + b"\0" + raw)
    rows = []
    for lineno, line in enumerate(_decode(raw, path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise LamaDataError(f"{path}:{lineno}: not valid JSON "
                                f"({getattr(exc, 'msg', 'nested too deeply')})") from None
        if not isinstance(row, dict):
            raise LamaDataError(f"{path}:{lineno}: expected a JSON object")
        missing = [k for k in required if not _present(row.get(k))]
        if missing:
            raise LamaDataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        wrong = [k for k in required if not isinstance(row[k], _TYPES.get(k, str))]
        if wrong:
            raise LamaDataError(f"{path}:{lineno}: field(s) {', '.join(wrong)} must be "
                                + " / ".join(_TYPE_WORDS.get(k, "text") for k in wrong))
        row["_line"] = lineno
        rows.append(row)
    if not rows:
        raise LamaDataError(f"{path}: no facts in file")
    return rows


# Field types where not plain text; everything else must be a non-empty string.
_TYPES = {"masked_sentences": (str, list)}
_TYPE_WORDS = {"masked_sentences": "a sentence or a list of sentences"}


def _present(value) -> bool:
    return isinstance(value, (str, list)) and bool(value.strip() if isinstance(value, str) else value)


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        lineno = raw[:exc.start].count(b"\n") + 1
        raise LamaDataError(f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
                            "the file is corrupt: re-download it") from None


def _check_template(template, where: str) -> str:
    if not isinstance(template, str) or template.count("[X]") != 1 or template.count(SLOT) != 1:
        raise LamaDataError(f"{where}: template {template!r} must contain [X] and [Y] exactly once")
    return template


def _check_subject(row: dict, path: Path) -> str:
    subject = row["sub_label"]
    if any(marker in subject for marker in ("[X]", SLOT, "[MASK]")):
        raise LamaDataError(f"{path}:{row['_line']}: subject {subject!r} contains a slot marker")
    return subject


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
    for pattern in read_pararel_patterns(pararel / f"{group}.jsonl"):
        if pattern.count(SLOT) == 1 and pattern.count("[X]") == 1 and slot_is_last(pattern) \
                and pattern.find("[X]") < pattern.find(SLOT):
            return pattern
    return None


def read_pararel_patterns(path: Path, digest=None) -> list[str]:
    """Every pattern of one ParaRel file, in file order; ``digest`` (a hashlib object), if given,
    takes the file's name and bytes. A malformed line raises LamaDataError naming file:line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LamaDataError(f"cannot read ParaRel file {path}: {exc}") from None
    if digest is not None:
        digest.update(path.name.encode() + b"\0" + raw)
    out = []
    for lineno, line in enumerate(_decode(raw, path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LamaDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "pattern" not in row:
            raise LamaDataError(f"{path}:{lineno}: expected a JSON object with a 'pattern'")
        pattern = row["pattern"]
        if not isinstance(pattern, str):
            raise LamaDataError(f"{path}:{lineno}: pattern must be text, not {type(pattern).__name__}")
        out.append(pattern)
    return out


def _unique(uid: str, path: Path, row: dict, seen: dict) -> None:
    if uid in seen:
        raise LamaDataError(f"{path}:{row['_line']}: fact id {uid!r} repeats line {seen[uid]}; "
                            "ids must be unique (paired comparisons match facts by id)")
    seen[uid] = row["_line"]


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
    seen: dict[str, int] = {}   # fact id -> line: a repeated id would pair the wrong facts

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
                    raise LamaDataError(
                        f"{p}: relation {rel} has no template in {root / 'relations.jsonl'}; add a "
                        f'line {{"relation": "{rel}", "template": "[X] ... [Y] ."}} there, or '
                        f"remove {p.name}")
                where = f"{root / 'relations.jsonl'}:{relations[rel]['_line']} ({rel})"
                groups.append((rel, p, _check_template(relations[rel]["template"], where),
                               relations[rel].get("type", "")))
        else:
            groups = [(g, root / "Google_RE" / f"{g}_test.jsonl", t, ty)
                      for g, (t, ty) in GOOGLE_RE.items()]
        for group, path, template, rtype in groups:
            causal = _causal_template(template, pararel, group)
            templates[group] = {"template": template, "causal_template": causal, "type": rtype}
            files.append(str(path.relative_to(root)))
            for i, row in enumerate(_read_jsonl(path, ("sub_label", "obj_label"), digest)):
                uid = f"{name}/{group}/{row.get('uuid') or i}"
                _unique(uid, path, row, seen)
                subject = _check_subject(row, path)
                add(group, Fact(uid, name, group, subject, row["obj_label"].strip(),
                                _fill(template, subject),
                                _fill(causal, subject) if causal else None))
        # The causal templates of some relations come from their ParaRel patterns: those files
        # change what is asked, so their bytes are part of the checksum (and of --resume's key).
        for path in pararel_files(root, [g for g, *_ in groups]):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            files.append(str(path.relative_to(root)))
    else:
        path = root / ("Squad/test.jsonl" if name == "squad" else "ConceptNet/test.jsonl")
        files.append(str(path.relative_to(root)))
        for i, row in enumerate(_read_jsonl(path, ("masked_sentences", "obj_label"), digest), 1):
            sentence = row["masked_sentences"][0] if isinstance(row["masked_sentences"], list) \
                else row["masked_sentences"]
            if not isinstance(row.get("sub_label", ""), str) or not isinstance(row.get("pred", ""), str):
                raise LamaDataError(f"{path}:{row['_line']}: sub_label and pred must be text")
            if not isinstance(sentence, str) or "[MASK]" not in sentence:
                raise LamaDataError(f"{path}:{row['_line']}: masked sentence has no [MASK]: {sentence!r}")
            if sentence.count("[MASK]") != 1:   # e.g. SQuAD "[MASK]ians ... following [MASK]."
                excluded.append({"line": row["_line"], "reason": "more than one [MASK]"})
                continue
            text = sentence.replace("[MASK]", SLOT)
            group = row.get("pred") or "squad"
            templates.setdefault(group, {"template": None, "causal_template": None, "type": ""})
            uid = f"{name}/{group}/{row.get('uuid') or row.get('id') or i}"
            _unique(uid, path, row, seen)
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


def check_encodable(subset: Subset, tokenizer) -> None:
    """Every candidate object must become tokens the model can score: an object that encodes to
    nothing would score log P = 0 (beating every real candidate), one with an unknown token
    would tie with other unknowns. Both stop the probe here, naming the objects and the fix."""
    unk = getattr(tokenizer, "unk_token_id", None)
    bad = {}
    for group, objects in sorted(subset.candidates.items()):
        for obj in objects:
            if obj in bad:
                continue
            ids = tokenizer(obj, add_special_tokens=False)["input_ids"]
            if not ids:
                bad[obj] = (group, "encodes to no tokens")
            elif unk is not None and unk in ids:
                bad[obj] = (group, f"contains the unknown token {tokenizer.unk_token!r}")
    if bad:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        listed = "; ".join(f"{o!r} ({g}): {why}" for o, (g, why) in list(bad.items())[:10])
        raise LamaDataError(
            f"{len(bad)} {subset.name} object(s) cannot be encoded by the tokenizer of {name}: "
            f"{listed}{' ...' if len(bad) > 10 else ''}. Their facts cannot be ranked fairly: remove "
            f"those lines from {', '.join(subset.files)} or probe a model whose tokenizer covers them.")


if __name__ == "__main__":   # `python -m probes.lama_data download`: the documented command
    from probes.lama_download import main
    main()
