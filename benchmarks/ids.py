"""Case-id parts that come from outside the code (a user's folder, hub id, checkpoint): derived
deterministically, and checked against the rule that makes ``-k`` mean what users expect.

    sanitise("Org/My_Model@v2")      # -> "org-my-model-v2"
    ambiguous(cases)                 # [(case id, [other case ids "-k m and p and b" selects])]

The rule (tests/test_ids.py enforces it for the registered ids): ``-k "<model> and <preset> and
<probe>"`` selects exactly one case. A registered id is chosen by hand to keep it; an id derived
from a path is checked here, over the cases of the run, and a clash is an error that names the
cases and the fix (name the model or checkpoint yourself: ``NAME=PATH``).
"""
from __future__ import annotations

import re

PART = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# What pytest -k matches besides the id and the marks (tests/test_ids.py: _keywords).
_ALWAYS = ("test_case", "test_matrix.py", "benchmarks")


class IdError(ValueError):
    """An id part that cannot be used; the message says why and how to name it instead."""


def sanitise(text: str) -> str:
    """Lowercase; every run of characters outside [a-z0-9.] becomes one '-'; no leading or
    trailing '-' or '.'. Deterministic, so the same path always gives the same id."""
    out = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    if not PART.match(out):
        raise IdError(f"{text!r} gives no usable id part (need [a-z0-9.-], starting with a letter "
                      "or digit)")
    return out


def check_part(part: str, what: str) -> str:
    if not PART.match(part or ""):
        raise IdError(f"{what} {part!r} is not a valid id part: use lowercase letters, digits, "
                      "'.' and '-', starting with a letter or digit")
    return part


def ambiguous(cases) -> list[tuple[str, list[str]]]:
    """Cases that ``-k "<model> and <preset> and <probe>"`` would not select alone, each with the
    other cases the expression also selects. Exact: a string matches a case where it is inside
    the case's id, one of its marks, or one of the names every case carries (_ALWAYS)."""
    cases = list(cases)
    keys = [(c.model.id, c.preset.id, c.probe.id, *c.marks) for c in cases]
    everything = set(range(len(cases)))

    def hits(s: str) -> set[int]:
        if any(s in k for k in _ALWAYS):
            return everything
        return {i for i, ks in enumerate(keys) if any(s in k for k in ks)}

    sel = {s: hits(s) for c in cases for s in (c.model.id, c.preset.id, c.probe.id)}
    out = []
    for i, c in enumerate(cases):
        chosen = sel[c.model.id] & sel[c.preset.id] & sel[c.probe.id]
        if chosen != {i}:
            out.append((c.id, sorted(cases[j].id for j in chosen - {i})))
    return out
