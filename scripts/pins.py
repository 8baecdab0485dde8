"""The project's pins, read from pyproject.toml (their one home), for scripts/setup.sh.

    python scripts/pins.py check                 # exit 0 when every pin is installed (the fast path)
    python scripts/pins.py get torch             # one package's pin: torch==2.13.0
    python scripts/pins.py build                 # what must be installed before the narrowed builds
    python scripts/pins.py narrow DEST           # the narrowed wheels, built or fetched once into DEST
    python scripts/pins.py requirements DEST     # core + setup extras, narrowed ones as DEST's wheels

A *narrowed* package ([tool.knowledge-cost-setup.narrowed] in pyproject.toml) is installed from a local
wheel of the pinned release whose metadata drops (and may add) the requirements listed there, and
whose version carries the local label ``kcb.<hash of that listing>``: pip's resolver then has
nothing to complain about, and `pip list` shows the metadata is ours. Standard library only (it
runs before anything is installed), except ``check``, which compares versions with ``packaging``
(pip's own copy when the package is not installed yet).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


class PinError(RuntimeError):
    pass


def canonical(name: str) -> str:
    """PEP 503 name normalisation (Foo_Bar == foo-bar)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split(requirement: str) -> tuple[str, set[str], str, str]:
    """'lm-eval[hf]==0.4.13; python_version<"4"' -> ('lm-eval', {'hf'}, '==0.4.13', marker)."""
    m = _REQ.match(requirement)
    if not m:
        raise PinError(f"cannot read requirement {requirement!r}")
    extras = {e.strip() for e in (m.group(2) or "[]")[1:-1].split(",") if e.strip()}
    return m.group(1), extras, m.group(3).replace(" ", ""), (m.group(4) or "")[1:].strip()


def project(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())


def setup_table(cfg: dict) -> dict:
    """[tool.knowledge-cost-setup]: the extras setup.sh installs, its build requirements, the
    narrowed packages."""
    return cfg.get("tool", {}).get("knowledge-cost-setup", {})


def wanted(cfg: dict) -> list[str]:
    """Core dependencies and the extras setup.sh installs, in pyproject order."""
    extras = cfg["project"].get("optional-dependencies", {})
    out = list(cfg["project"]["dependencies"])
    for name in setup_table(cfg).get("extras", []):
        if name not in extras:
            raise PinError(f"[tool.knowledge-cost-setup] extras names {name!r}, which "
                           "[project.optional-dependencies] does not define")
        out += extras[name]
    return out


def pin(cfg: dict, name: str) -> str:
    for req in wanted(cfg):
        if canonical(split(req)[0]) == canonical(name):
            return req
    raise PinError(f"pyproject.toml pins no {name!r}")


def narrowed(cfg: dict) -> dict[str, dict]:
    """canonical name -> its narrowing (drop, add, from, env) with ``version`` and ``label``."""
    out = {}
    for name, spec in setup_table(cfg).get("narrowed", {}).items():
        version = split(pin(cfg, name))[2]
        if not version.startswith("==") or "," in version:
            raise PinError(f"narrowed package {name!r} needs an exact pin (==X), not {version!r}")
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
        out[canonical(name)] = {**spec, "name": name, "version": version[2:],
                                "label": f"kcb.{digest}"}
    return out


# -- the narrowed wheel ---------------------------------------------------------------------------
def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def narrow_metadata(text: str, drop: list[str], add: list[str], version: str) -> str:
    """METADATA with ``Version`` replaced and the Requires-Dist lines of ``drop`` removed ("*":
    every requirement outside an extra); lines of extras are kept (they install nothing by
    default); ``add`` goes after the last kept requirement outside an extra (else after the
    Version line). The description is untouched."""
    head, sep, body = text.partition("\n\n")
    drop_all, names = "*" in drop, {canonical(d) for d in drop if d != "*"}
    out, last_req = [], None
    for line in head.split("\n"):
        key, _, value = line.partition(":")
        if key == "Version":
            line = f"Version: {version}"
            last_req = len(out) if last_req is None else last_req
        elif key == "Requires-Dist":
            name, _, _, marker = split(value.strip())
            if "extra" in marker:
                out.append(line)
                continue
            if drop_all or canonical(name) in names:
                continue
            last_req = len(out)
        out.append(line)
    at = len(out) if last_req is None else last_req + 1
    out[at:at] = [f"Requires-Dist: {req}" for req in add]
    return "\n".join(out) + sep + body


def narrow_wheel(wheel: Path, spec: dict, dest: Path) -> Path:
    """A copy of ``wheel`` with narrowed metadata and version ``<version>+<label>``, written
    atomically into ``dest``; RECORD lists every file's new hash."""
    with zipfile.ZipFile(wheel) as zin:
        meta = [n for n in zin.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(meta) != 1:
            raise PinError(f"{wheel.name}: expected one .dist-info/METADATA, found {meta}")
        old = meta[0].split("/")[0][:-len(".dist-info")]        # <dist>-<version>
        dist, version = old.rsplit("-", 1)
        if version != spec["version"]:
            raise PinError(f"{wheel.name}: version {version}, but pyproject.toml pins "
                           f"{spec['name']}=={spec['version']}")
        new_version = f"{version}+{spec['label']}"
        new = f"{dist}-{new_version}"
        files = {}
        for info in zin.infolist():
            if info.is_dir():
                continue
            name = info.filename
            for suffix in (".dist-info/", ".data/"):
                if name.startswith(old + suffix):
                    name = new + name[len(old):]
            data = zin.read(info)
            if info.filename == meta[0]:
                data = narrow_metadata(data.decode("utf-8"), spec.get("drop", []),
                                       spec.get("add", []), new_version).encode("utf-8")
            files[name] = (info, data)
    record_name = f"{new}.dist-info/RECORD"
    files.pop(record_name, None)
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, (_, d) in files.items())
    record += f"{record_name},,\n"
    tags = wheel.name[len(old) + 1:]
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{new}-{tags}"
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".tmp-", suffix=".whl")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
            for name, (info, data) in files.items():
                zi = zipfile.ZipInfo(name, info.date_time)
                zi.external_attr, zi.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
                zout.writestr(zi, data)
            zout.writestr(zipfile.ZipInfo(record_name, (1980, 1, 1, 0, 0, 0)), record)
        os.chmod(tmp, 0o644)   # mkstemp makes it private; a wheel cache is readable
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def wheel_dir(base: Path) -> Path:
    """Built wheels are specific to this interpreter and platform."""
    return base / f"cp{sys.version_info.major}{sys.version_info.minor}-{sysconfig.get_platform()}"


def built(spec: dict, dest: Path) -> Path | None:
    """The narrowed wheel of ``spec`` already in ``dest``, if any."""
    stem = re.sub(r"[-_.]+", "_", spec["name"])   # wheel file names use underscores
    found = sorted(dest.glob(f"{stem}-{spec['version']}+{spec['label']}-*.whl"))
    return found[0] if found else None


def narrowed_wheel(spec: dict, dest: Path) -> Path:
    """The narrowed wheel of ``spec``: from ``dest`` when built before, else fetched (or built
    from the sdist, ``from = "sdist"``) with pip and narrowed."""
    found = built(spec, dest)
    if found:
        return found
    with tempfile.TemporaryDirectory() as tmp:
        req = f"{spec['name']}=={spec['version']}"
        if spec.get("from") == "sdist":   # against the installed torch: no build isolation
            cmd = ["wheel", "--no-deps", "--no-build-isolation", "--no-binary", spec["name"],
                   "-w", tmp, req]
        else:
            cmd = ["download", "--no-deps", "--only-binary", ":all:", "-d", tmp, req]
        env = {**os.environ, **{k: str(v) for k, v in spec.get("env", {}).items()}}
        subprocess.run([sys.executable, "-m", "pip", *cmd, "--quiet"], check=True, env=env)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise PinError(f"pip {cmd[0]} {req} gave {[w.name for w in wheels]}, not one wheel")
        return narrow_wheel(wheels[0], spec, dest)


# -- is everything installed? ---------------------------------------------------------------------
def _packaging():
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:   # a fresh venv: pip's vendored copy reads versions the same way
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    return Requirement, Version


def unmet(cfg: dict) -> list[str]:
    """What keeps the environment from matching pyproject.toml: each pin (and the requirements of
    the extras it asks for) installed at a matching version, narrowed packages as our build."""
    Requirement, Version = _packaging()
    narrow = narrowed(cfg)
    problems = []

    def need(req_text: str, why: str = "") -> None:
        req = Requirement(req_text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            return
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} is not installed{why}")
            return
        if not req.specifier.contains(Version(have), prereleases=True):
            problems.append(f"{req.name} {have} does not match {req.specifier}{why}")
        spec = narrow.get(canonical(req.name))
        if spec and Version(have).local != spec["label"]:
            problems.append(f"{req.name} {have} is not the narrowed build +{spec['label']}")

    for text in wanted(cfg):
        need(text)
        req = Requirement(text)
        for extra in req.extras:   # one level: what `pkg[extra]` adds
            for sub in metadata.requires(req.name) or []:
                r = Requirement(sub)
                if r.marker is not None and r.marker.evaluate({"extra": extra}) \
                        and not r.marker.evaluate({"extra": ""}):
                    need(f"{r.name}{r.specifier}", f" (for {req.name}[{extra}])")
    return problems


def main(argv: list[str]) -> int:
    cfg = project()
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "check":
        try:
            problems = unmet(cfg)
        except ImportError:
            problems = ["no packaging library to compare versions with"]
        for p in problems if "--quiet" not in args else problems[:3]:
            print(f"  {p}")
        return 1 if problems else 0
    if cmd == "get" and len(args) == 1:
        print(pin(cfg, args[0]))
        return 0
    if cmd == "build":
        print("\n".join([pin(cfg, "torch"), *setup_table(cfg).get("build", [])]))
        return 0
    if cmd in ("narrow", "requirements") and len(args) == 1:
        dest = wheel_dir(Path(args[0]))
        wheels = {name: narrowed_wheel(spec, dest) if cmd == "narrow" else None
                  for name, spec in narrowed(cfg).items()}
        if cmd == "narrow":
            print("\n".join(str(w) for w in wheels.values()))
            return 0
        for req in wanted(cfg):
            name = canonical(split(req)[0])
            if name in wheels:
                spec = narrowed(cfg)[name]
                found = built(spec, dest)
                if found is None:
                    raise PinError(f"no narrowed wheel of {spec['name']} in {dest}: run "
                                   f"`python scripts/pins.py narrow {args[0]}` first")
                req = f"{spec['name']} @ {found.resolve().as_uri()}"
            print(req)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except PinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
