"""Our in-memory lm-eval path gives what the `lm-eval run` CLI reports for the same saved model.

A tiny causal model is built in code, saved (safetensors + tokenizer) and evaluated twice on
the project's task configs: in memory through probes.harness, and by the lm-eval CLI as a
subprocess that loads the saved folder. Metrics and standard errors must agree to 1e-6.
"""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.tiny import build
from probes import get_probe, harness
from tests.helpers import REPO

LIMIT, BATCH = 5, 4
PROBES = ["piqa", "lambada", "triviaqa"]   # one of each lm-eval output type we use


def test_in_memory_scores_equal_the_lm_eval_cli(tmp_path):
    model, tok = build("causal")
    folder = tmp_path / "model"
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()

    ours = {}
    for pid in PROBES:
        probe = get_probe(pid)
        ours[probe.subset] = probe, harness.score(probe, model, tok, "causal", limit=LIMIT,
                                                  batch_size=BATCH)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
           "--model_args", f"pretrained={folder},dtype=float32", "--device", "cpu",
           "--tasks", ",".join(ours), "--include_path", str(harness.TASKS_DIR),
           "--num_fewshot", "0", "--limit", str(LIMIT), "--batch_size", str(BATCH),
           "--output_path", str(tmp_path / "out")]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    files = list((tmp_path / "out").rglob("results_*.json"))
    assert len(files) == 1, files
    cli = json.loads(files[0].read_text())["results"]

    compared = 0
    for task, (probe, res) in ours.items():
        filt = res.meta["filter"]
        for name, m in res.metrics.items():
            assert cli[task][f"{name},{filt}"] == pytest.approx(m["value"], abs=1e-6), (task, name)
            se = cli[task].get(f"{name}_stderr,{filt}")
            if m["stderr"] is not None:
                assert float(se) == pytest.approx(m["stderr"], abs=1e-6), (task, name)
            compared += 1
        assert cli[task]["sample_len"] == res.n == LIMIT
    assert compared == 2 + 2 + 1   # piqa acc/acc_norm, lambada perplexity/acc, triviaqa exact_match
