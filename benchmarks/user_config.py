"""The user's matrix in one file, and the run's models and checkpoints given by path.

    [tool.knowledge-cost]            # in the user's pyproject.toml (or, without the header line,
    models = ["./base"]              #  at the top of a knowledge-cost.toml)
    checkpoints = ["./base-gptq-w4", "awq=./base-awq"]
    probes = ["trex", "google-re"]
    limit = 50
    checkpoint-floor = 0.9           # every checkpoint preset without its own floor
    [tool.knowledge-cost.floors]     # preset id -> retention floor; overrides benchmarks/matrix.py
    sparse-10 = 0.95

The file is found in the folder pytest was started from (knowledge-cost.toml first, then
pyproject.toml), or named with ``--config``. Relative paths in it are relative to the file.
Command-line options override the file, key by key (floors: preset by preset). Unknown keys are
an error naming the key and its near misses. ``configure(config)`` runs in pytest_configure: it
applies the file, resolves ``--models`` paths and hub ids (benchmarks/user_models.py) and
``--checkpoint`` folders (compressors/checkpoint.py) into registered ids, sets the floors, and
refuses ids that would make ``-k`` ambiguous (benchmarks/ids.py). It returns the lines that show
the user what each path became.
"""
from __future__ import annotations

import difflib
import os
import shlex
import tomllib
from pathlib import Path

# file key -> (pytest option dest, its flag, accepted types)
KEYS = {
    "models": ("models", "--models", (list, str)), "checkpoints": ("checkpoint", "--checkpoint", (list,)),
    "presets": ("presets", "--presets", (list, str)), "probes": ("probes", "--probes", (list, str)),
    "limit": ("limit", "--limit", (int,)), "floors": ("floor", "--floor", (dict,)),
    "checkpoint-floor": ("floor", "--floor", (float, int)),
    "trust-remote-code": ("trust_remote_code", "--trust-remote-code", (bool,)),
    "lama-dir": ("lama_dir", "--lama-dir", (str,)), "results-dir": ("results_dir", "--results-dir", (str,)),
}
_PATH_KEYS = ("lama-dir", "results-dir")


class UserConfigError(ValueError):
    """A config file or option that cannot be used; the message names it and the fix."""


def find(start: Path, explicit: str | None = None) -> tuple[Path, dict] | None:
    """(file, its knowledge-cost table) or None when there is none."""
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not path.is_file():
            raise UserConfigError(f"--config {explicit}: no such file")
        return path, _table(path, required=True)
    for name in ("knowledge-cost.toml", "pyproject.toml"):
        path = Path(start) / name
        if path.is_file():
            table = _table(path, required=name != "pyproject.toml")
            if table is not None:
                return path.resolve(), table
    return None


def _table(path: Path, required: bool) -> dict | None:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get("knowledge-cost")
    if table is None and path.name != "pyproject.toml":
        table = {k: v for k, v in data.items() if k != "tool"}   # knowledge-cost.toml: top level
    if table is None and required:
        raise UserConfigError(f"{path}: no [tool.knowledge-cost] table")
    return table


def read(path: Path, table: dict) -> dict:
    """The table validated: known keys, right types, paths anchored at the file's folder."""
    out = {}
    for key, value in table.items():
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=3, cutoff=0.5)
            raise UserConfigError(f"{path}: unknown key {key!r} in [tool.knowledge-cost]"
                                  + (f"; did you mean {', '.join(near)}?" if near else
                                     f"; known keys: {', '.join(KEYS)}"))
        types = KEYS[key][2]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise UserConfigError(f"{path}: {key} must be {' or '.join(t.__name__ for t in types)}, "
                                  f"not {type(value).__name__}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise UserConfigError(f"{path}: {key} must be a list of strings")
        out[key] = value
    base = path.parent
    for key in ("models", "checkpoints"):
        if key in out:
            items = out[key] if isinstance(out[key], list) else out[key].split(",")
            out[key] = [_anchor(v.strip(), base) for v in items if v.strip()]
    for key in _PATH_KEYS:
        if key in out:
            out[key] = str((base / Path(out[key]).expanduser()).resolve())
    return out


def _anchor(entry: str, base: Path) -> str:
    """A models/checkpoints entry with its path made absolute (NAME=PATH keeps its NAME)."""
    name, sep, ref = entry.partition("=") if "=" in entry and not entry.startswith((".", "/", "~")) \
        else ("", "", entry)
    if ref.startswith((".", "~")) or (not Path(ref).is_absolute() and (base / ref).exists()):
        ref = str((base / Path(ref).expanduser()).resolve())
    return f"{name}{sep}{ref}"


def given(config, flag: str) -> bool:
    """Whether ``flag`` is on the command line (or in PYTEST_ADDOPTS): those win over the file."""
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    return any(a == flag or a.startswith(flag + "=") for a in map(str, args))


def apply_file(config) -> tuple[Path | None, set]:
    """Set every option the file names and the command line does not; (file, keys it set)."""
    found = find(config.invocation_params.dir, config.getoption("--config"))
    if found is None:
        return None, set()
    path, values = found[0], read(*found)
    file_floors = [f"{k}={v}" for k, v in values.pop("floors", {}).items()]
    if "checkpoint-floor" in values:
        file_floors.insert(0, str(values.pop("checkpoint-floor")))
    applied = set()
    if file_floors:   # floor by floor: the command line's come later and win
        config.option.floor = file_floors + list(config.getoption("--floor") or [])
        applied.add("floors")
    for key, value in values.items():
        dest, flag, _ = KEYS[key]
        if not given(config, flag):
            setattr(config.option, dest, value if key == "checkpoints" or not isinstance(value, list)
                    else ",".join(value))
            applied.add(key)
    return path, applied


def configure(config) -> list[str]:
    """Apply the file, register the models and checkpoints given by path, set the floors."""
    from benchmarks import user_models
    from benchmarks.models import MODELS, register_model
    from benchmarks import user_checkpoints as checkpoint
    path, applied = apply_file(config)
    lines = [f"settings from {path} (command-line options override them)"] if path else []
    trust = bool(config.getoption("--trust-remote-code"))
    which, user = config.getoption("--models"), []
    if which and which not in user_models.KEYWORDS:
        ids = []
        for token in filter(None, (t.strip() for t in which.split(","))):
            if token in MODELS or not user_models.looks_like_user_model(token):
                ids.append(token)   # registered, or unknown: select_models names the near misses
                continue
            spec = register_model(user_models.resolve(token, trust))
            user.append(spec)
            ids.append(spec.id)
            lines.append(f"model {token} -> id {spec.id} ({spec.source}, {spec.family}, {spec.arch})")
        config.option.models = ",".join(ids)
    ckpts = [checkpoint.register(checkpoint.resolve(t, user, trust))
             for t in config.getoption("--checkpoint") or []]
    for token, p in zip(config.getoption("--checkpoint") or [], ckpts):
        lines.append(f"checkpoint {token} -> preset {p.id} ({p.params['format']}, declares "
                     f"{p.bits or 'no'} bits, base model {p.params['base']})")
    if ckpts:
        presets = config.getoption("--presets")
        if not (given(config, "--presets") or "presets" in applied):
            config.option.presets = ",".join(["none", *(p.id for p in ckpts)])
        elif presets not in ("all", "default"):
            have = [x.strip() for x in presets.split(",") if x.strip()]
            config.option.presets = ",".join(dict.fromkeys(["none", *have, *(p.id for p in ckpts)]))
    lines += set_floors(config.getoption("--floor") or [], ckpts)
    if user or ckpts:
        _check_ids(config)
    return lines


def set_floors(entries: list[str], ckpts: list) -> list[str]:
    """``ID=X`` sets preset ID's floor, a bare ``X`` every checkpoint's without its own; later
    entries win. Overrides benchmarks/matrix.py's FLOORS for this run."""
    from benchmarks.matrix import FLOORS
    from compressors import PRESETS
    floors, default = {}, None
    for entry in entries:
        pid, _, raw = str(entry).rpartition("=")
        try:
            value = float(raw)
        except ValueError:
            raise UserConfigError(f"floor {entry!r}: expected PRESET=VALUE or VALUE, with VALUE a "
                                  "retention between 0 and 1") from None
        if not 0 < value <= 1:
            raise UserConfigError(f"floor {entry!r}: a retention floor is in (0, 1]")
        if pid and pid not in PRESETS:
            near = difflib.get_close_matches(pid, PRESETS, n=3)
            raise UserConfigError(f"floor {entry!r}: unknown preset {pid!r}"
                                  + (f"; did you mean {', '.join(near)}?" if near else ""))
        if pid:
            floors[pid] = value
        else:
            default = value
    if default is not None and not ckpts:
        raise UserConfigError(f"floor {default}: a floor without a preset id applies to checkpoints "
                              "(--checkpoint), and there are none; use PRESET=VALUE")
    if default is not None:
        for p in ckpts:
            floors.setdefault(p.id, default)
    FLOORS.update(floors)
    return [f"floor {pid}: {v}" for pid, v in sorted(floors.items())]


def _check_ids(config) -> None:
    from benchmarks.ids import ambiguous
    from benchmarks.matrix import cases, select_models, select_presets, select_probes
    which = "tiny" if config.getoption("--tiny") else (config.getoption("--models") or "default")
    try:
        run = cases(select_models(which), select_presets(config.getoption("--presets")),
                    select_probes(config.getoption("--probes")))
    except KeyError:
        return   # an unknown id: reported as a usage error where the option is read
    bad = ambiguous(run)
    if bad:
        case, others = bad[0]
        m, p, b = case.split("__")
        raise UserConfigError(
            f"-k \"{m} and {p} and {b}\" would select {len(others) + 1} cases ({case} and "
            f"{', '.join(others[:3])}): an id given by path clashes with another id of this run. "
            "Name the model or checkpoint yourself: --models NAME=PATH, --checkpoint NAME=PATH")
