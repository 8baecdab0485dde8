"""The project's pinned versions, read from pyproject.toml: the one place versions live. Install
hints in error messages (and scripts/setup.sh) are built from it, so they never drift.

    pin("bitsandbytes")                        # "bitsandbytes==0.50.2"
    install_hint("torchao", no_deps=True)      # "pip install --no-deps torchao==0.18.0"
"""
from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~;\s]", requirement, 1)[0].lower().replace("_", "-")


@functools.cache
def pins() -> dict[str, str]:
    """normalised package name -> its requirement as pinned (every dependency list)."""
    try:
        project = tomllib.loads(PYPROJECT.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}   # an installed copy without its pyproject: hints fall back to bare names
    lists = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
    return {_name(r): r.strip() for group in lists for r in group}


def pin(package: str) -> str:
    return pins().get(_name(package), package)


def extra(name: str) -> list[str]:
    """The requirements of one optional-dependency group of pyproject.toml."""
    try:
        return list(tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"][name])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []


def install_hint(*packages: str, no_deps: bool = False) -> str:
    return "pip install " + ("--no-deps " if no_deps else "") + " ".join(pin(p) for p in packages)
