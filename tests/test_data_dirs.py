"""scripts/lama_dir.sh, sourced by bench.sh, test.sh and gate.sh, finds LAMA and WikiText-2 (the
variable, else ../shared/data beside the checkout, else a verified download into the cache), and
without them and without network stops at once with one line naming the variable (exit 4)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source(cwd: Path, env: dict) -> subprocess.CompletedProcess:
    script = 'set -e; . scripts/lama_dir.sh; echo "KCB_WIKITEXT=$KCB_WIKITEXT"'
    base = {k: v for k, v in os.environ.items() if not k.startswith("KCB_")}
    base.update(PATH=f"{Path(sys.executable).parent}:{base.get('PATH', '')}", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=base, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def checkout(tmp_path):
    """A checkout with nothing beside it (no ../shared) and a LAMA folder of its own."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "lama_dir.sh", repo / "scripts")
    lama = tmp_path / "lama"
    lama.mkdir()
    (lama / "relations.jsonl").write_text("{}\n")
    return repo, lama


def test_no_wikitext_and_no_network_is_one_line_and_exit_4(checkout, tmp_path):
    repo, lama = checkout
    res = _source(repo, {"KCB_LAMA_DIR": str(lama), "KCB_CACHE": str(tmp_path / "cache"),
                         "KCB_WIKITEXT_URL": "http://127.0.0.1:9/none.zip"})
    assert res.returncode == 4, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "KCB_WIKITEXT" in lines[0] and "Traceback" not in res.stderr


def test_a_wikitext_already_in_the_cache_is_used(checkout, tmp_path):
    repo, lama = checkout
    cached = tmp_path / "cache" / "wikitext-2"
    cached.mkdir(parents=True)
    (cached / "wiki.test.raw").write_text("x")     # read_verified checks it where it is read
    res = _source(repo, {"KCB_LAMA_DIR": str(lama), "KCB_CACHE": str(tmp_path / "cache"),
                         "KCB_WIKITEXT_URL": "http://127.0.0.1:9/none.zip"})
    assert res.returncode == 0, res
    assert res.stdout.strip() == f"KCB_WIKITEXT={cached}"


def test_a_set_variable_wins(checkout, tmp_path):
    repo, lama = checkout
    res = _source(repo, {"KCB_LAMA_DIR": str(lama), "KCB_WIKITEXT": "/somewhere/else"})
    assert res.returncode == 0 and res.stdout.strip() == "KCB_WIKITEXT=/somewhere/else"
