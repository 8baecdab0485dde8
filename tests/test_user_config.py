"""[tool.knowledge-cost] / knowledge-cost.toml: validation, paths, precedence, floors."""
import os
import re
import subprocess
import sys

import pytest

from benchmarks import matrix
from benchmarks.user_config import UserConfigError, find, read, set_floors
from tests.helpers import REPO


def _write(folder, text, name="pyproject.toml"):
    (folder / name).write_text(text)
    return folder / name


def test_unknown_keys_name_the_key_and_the_near_misses(tmp_path):
    _write(tmp_path, '[tool.knowledge-cost]\nprobe = ["trex"]\n')
    with pytest.raises(UserConfigError, match="unknown key 'probe'.*did you mean probes"):
        read(*find(tmp_path))
    _write(tmp_path, '[tool.knowledge-cost]\ntrust_remote_code = true\n')
    with pytest.raises(UserConfigError, match="did you mean trust-remote-code"):
        read(*find(tmp_path))
    _write(tmp_path, '[tool.knowledge-cost]\nlimit = "20"\n')
    with pytest.raises(UserConfigError, match="limit must be int, not str"):
        read(*find(tmp_path))


def test_paths_are_relative_to_the_file_and_knowledge_cost_toml_comes_first(tmp_path):
    (tmp_path / "base").mkdir()
    _write(tmp_path, '[tool.knowledge-cost]\nmodels = ["smollm2-135m"]\n')
    _write(tmp_path, 'models = ["./base", "b=base", "acme/x@v1"]\nlama-dir = "facts"\n',
           "knowledge-cost.toml")
    path, table = find(tmp_path)
    assert path.name == "knowledge-cost.toml"
    got = read(path, table)
    assert got["models"] == [str(tmp_path / "base"), f"b={tmp_path / 'base'}", "acme/x@v1"]
    assert got["lama-dir"] == str(tmp_path / "facts")
    assert find(tmp_path / "base") is None     # no file there: nothing applies


def test_floors_override_matrix_for_the_run(monkeypatch):
    monkeypatch.setattr(matrix, "FLOORS", dict(matrix.FLOORS))
    assert set_floors(["sparse-10=0.95", "sparse-10=0.97"], []) == ["floor sparse-10: 0.97"]
    assert matrix.FLOORS["sparse-10"] == 0.97 and matrix.FLOORS["sparse-20"] == 0.85
    with pytest.raises(UserConfigError, match="unknown preset 'sparse-11'.*sparse-10"):
        set_floors(["sparse-11=0.9"], [])
    with pytest.raises(UserConfigError, match=r"in \(0, 1\]"):
        set_floors(["sparse-10=1.5"], [])
    with pytest.raises(UserConfigError, match="applies to checkpoints"):
        set_floors(["0.9"], [])


def test_the_file_sets_the_matrix_and_the_command_line_wins(tmp_path):
    from benchmarks.tiny import build
    model, tok = build("causal")
    model.save_pretrained(tmp_path / "mine", safe_serialization=True)
    tok.save_pretrained(tmp_path / "mine")
    _write(tmp_path, '[tool.knowledge-cost]\nmodels = ["./mine"]\npresets = ["none", "sparse-50"]\n'
                     'probes = ["trex", "squad"]\n[tool.knowledge-cost.floors]\nsparse-50 = 0.3\n')

    def collect(*args):
        out = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "--collect-only",
                              "-q", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600, env=dict(os.environ))
        return (out.returncode, sorted(set(re.findall(r"test_case\[([^\]]+)\]", out.stdout))),
                out.stdout + out.stderr)
    rc, ids, text = collect()
    assert rc == 0, text[-2000:]
    assert ids == ["mine__none__squad", "mine__none__trex", "mine__sparse-50__squad",
                   "mine__sparse-50__trex"], text[-2000:]
    rc, ids, text = collect("--probes", "trex", "-v")
    assert rc == 0 and ids == ["mine__none__trex", "mine__sparse-50__trex"], text[-2000:]
    assert "floor sparse-50: 0.3" in text and "settings from" in text
    _write(tmp_path, '[tool.knowledge-cost]\nmodel = ["./mine"]\n')
    rc, _, text = collect()
    assert rc == 4 and "unknown key 'model'" in text and "models" in text
