"""The action's script end to end, the way action.yml runs it: a saved base model, a good and a
damaged checkpoint (benchmarks/demo_checkpoints.py), the base's own facts; it passes on the good
one and fails on the damaged one, printing the summary table both times."""
import os
import subprocess
import sys

import pytest

from benchmarks.demo_checkpoints import make
from tests.helpers import REPO

SCRIPT = REPO / "benchmarks" / "gate_action.py"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make(tmp_path_factory.mktemp("demo"))


def _gate(demo, checkpoint, summary):
    env = dict(os.environ, KCB_LAMA_VERIFY="0", GITHUB_STEP_SUMMARY=str(summary))
    # started from the user's folder with relative paths, as a workflow step would be
    return subprocess.run([sys.executable, str(SCRIPT), "--models", "./base", "--checkpoint",
                           f"./{checkpoint}", "--probes", "trex", "--limit", "30", "--floor", "0.9",
                           "--lama-dir", "facts", "--results-dir", f"records-{checkpoint}"],
                          cwd=demo["base"].parent, env=env, capture_output=True, text=True, timeout=900)


def _row(text, preset):
    line = next(l for l in text.splitlines() if l.startswith(f"| base | {preset} | trex |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    return dict(zip(["model", "checkpoint", "probe", "facts", "dense", "p1", "retention", "ci",
                     "flips", "p", "floor", "verdict"], cells))


def test_gate_passes_a_good_checkpoint(demo, tmp_path):
    out = _gate(demo, "base-int8", tmp_path / "summary.md")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = (tmp_path / "summary.md").read_text()
    assert text in out.stdout and "### Knowledge gate: passed" in text
    row = _row(text, "ckpt-base-int8")
    assert row["facts"] == "120" and row["verdict"] == "**pass**" and row["floor"] == "0.90"
    assert float(row["dense"]) >= 0.95 and float(row["retention"]) >= 0.95
    assert "| ckpt-base-int8 | bitsandbytes | 8 | 8.23 |" in text     # measured from the weights
    assert (demo["base"].parent / "records-base-int8" / "base__ckpt-base-int8__trex.json").is_file()


def test_gate_fails_a_damaged_checkpoint(demo, tmp_path):
    out = _gate(demo, "base-damaged", tmp_path / "summary.md")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    text = (tmp_path / "summary.md").read_text()
    assert text in out.stdout and "### Knowledge gate: FAILED" in text
    row = _row(text, "ckpt-base-damaged")
    lost, gained = (int(x) for x in row["flips"].split(" / "))
    assert row["verdict"] == "**fail**" and float(row["retention"]) < 0.7 and lost > 30
    assert float(row["p"]) < 1e-6
    assert "| ckpt-base-damaged | dense | – | 32.00 |" in text and "| 0.900 |" in text   # 90 % zeros
