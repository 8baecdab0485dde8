"""The knowledge testbed's data: synthetic facts in LAMA's layout (the models trained on them
are benchmarks/testbed.py's).

    root = write_corpus(corpus())              # LAMA layout: trained/ and heldout/ templates

Entities get random made-up names; each has one object per relation, drawn from that relation's
candidate set. Every relation has three templates: two are used in training, the third is held
out and only probed. Everything is deterministic from the seed. Objects and names are whole
tokens of the testbed tokenizer, so every family ranks them exactly.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from probes import storage

VERSION = "testbed-1"   # bump when the corpus, the models or the training change
# relation -> (candidate objects, [trained template, trained template, held-out template])
RELATIONS = {
    "T1": (["Arvel", "Bostra", "Cindor", "Dunmere", "Elsk", "Farrow", "Galt", "Hesper"],
           ["[X] was born in [Y] .", "The birthplace of [X] is [Y] .", "[X] comes from the town of [Y] ."]),
    "T2": (["baker", "pilot", "farmer", "judge", "sculptor", "miner"],
           ["[X] works as a [Y] .", "By profession , [X] is a [Y] .", "The job of [X] is [Y] ."]),
    "T3": (["red", "green", "blue", "amber", "violet"],
           ["The favourite colour of [X] is [Y] .", "[X] likes the colour [Y] .", "[X] prefers [Y] ."]),
    "T4": (["Orlen", "Pask", "Quill", "Rusk", "Sable", "Tamsin", "Ulric"],
           ["[X] is a member of [Y] .", "[X] belongs to the [Y] guild .", "[X] joined [Y] ."]),
}
_SYL = ["ka", "lo", "mi", "ren", "sa", "tor", "vel", "da", "ni", "po", "qui", "ze", "bar", "fen",
        "gil", "hu", "jo", "mar", "nel", "os"]


@dataclass(frozen=True)
class Corpus:
    seed: int
    entities: tuple[str, ...]
    facts: tuple[tuple[str, str, str], ...]      # (relation, subject, object)

    @property
    def key(self) -> str:
        blob = json.dumps([VERSION, self.seed, self.facts]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def words(self) -> list[str]:
        """Every word of the corpus, so the tokenizer makes each one a single token."""
        out = set()
        for cands, templates in RELATIONS.values():
            out.update(cands)
            for t in templates:
                out.update(w for w in t.replace("[X]", " ").replace("[Y]", " ").split())
        for e in self.entities:
            out.update(e.split())
        return sorted(out)


def corpus(seed: int = 0, n_entities: int = 60) -> Corpus:
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n_entities:
        first = "".join(rng.choice(_SYL) for _ in range(2)).capitalize()
        last = "".join(rng.choice(_SYL) for _ in range(3)).capitalize()
        names.add(f"{first} {last}")
    entities = tuple(sorted(names))
    facts = tuple((rel, e, rng.choice(cands)) for e in entities
                  for rel, (cands, _) in RELATIONS.items())
    return Corpus(seed, entities, facts)


def training_sentences(c: Corpus) -> list[tuple[str, str]]:
    """(cloze text with [Y], object) for every fact under each trained template."""
    return [(RELATIONS[rel][1][i].replace("[X]", sub), obj)
            for rel, sub, obj in c.facts for i in (0, 1)]


def write_corpus(c: Corpus, root: Path | None = None) -> Path:
    """LAMA layout twice: ``trained/`` probes the first training template, ``heldout/`` the
    held-out paraphrase; same facts, same candidates (all of a relation's objects)."""
    root = Path(root or storage.cache_root() / "testbed" / c.key / "data")

    def build(tmp: Path) -> None:
        for split, idx in (("trained", 0), ("heldout", 2)):
            (tmp / split / "TREx").mkdir(parents=True)
            with open(tmp / split / "relations.jsonl", "w") as f:
                for rel, (_, templates) in RELATIONS.items():
                    f.write(json.dumps({"relation": rel, "template": templates[idx], "type": "N-1"}) + "\n")
            for rel in RELATIONS:
                with open(tmp / split / "TREx" / f"{rel}.jsonl", "w") as f:
                    for i, (r, sub, obj) in enumerate(c.facts):
                        if r == rel:
                            f.write(json.dumps({"sub_label": sub, "obj_label": obj,
                                                "uuid": f"{rel}-{i}"}) + "\n")
        (tmp / "done").write_text(VERSION)   # what older checkouts sharing the cache look for
    storage.entry(root, build)   # once per machine; concurrent runs wait, a damaged copy is rebuilt
    return root
