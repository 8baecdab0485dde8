"""A base model, a good and a damaged checkpoint of it, and facts it knows: the knowledge gate in
a minute, on any machine (tests/test_gate_action.py, the action's self-test, the docs).

    python -m benchmarks.demo_checkpoints OUT
    # OUT/base           the testbed's causal model (benchmarks/testbed.py), saved as safetensors
    # OUT/base-int8      bitsandbytes LLM.int8, serialized by transformers (a good checkpoint)
    # OUT/base-damaged   the same model with 90 % of its linear weights zeroed (magnitude), dense
    # OUT/facts          the facts it was trained on, LAMA layout (use with --lama-dir)

The base knows its facts by construction (P@1 >= 0.95 on them), so retention is measurable.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

DAMAGE = 0.9   # fraction of linear weights zeroed in the damaged checkpoint


def make(out: Path, family: str = "causal") -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from benchmarks.testbed import corpus, trained_model, write_corpus
    from compressors.measure import linear_modules
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / k for k in ("base", "base-int8", "base-damaged", "facts")}
    model, tok, _, _ = trained_model(family)
    model.save_pretrained(paths["base"], safe_serialization=True)
    tok.save_pretrained(paths["base"])
    q = AutoModelForCausalLM.from_pretrained(paths["base"], device_map={"": "cpu"},
                                             quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    q.save_pretrained(paths["base-int8"], safe_serialization=True)
    tok.save_pretrained(paths["base-int8"])
    with torch.no_grad():   # global magnitude: the smallest 90 % of the linear weights become 0
        scope = linear_modules(model)
        allw = torch.cat([m.weight.abs().flatten() for m in scope.values()])
        cut = allw.kthvalue(int(DAMAGE * allw.numel())).values
        for m in scope.values():
            m.weight[m.weight.abs() <= cut] = 0
    model.save_pretrained(paths["base-damaged"], safe_serialization=True)
    tok.save_pretrained(paths["base-damaged"])
    shutil.rmtree(paths["facts"], ignore_errors=True)
    shutil.copytree(write_corpus(corpus()) / "trained", paths["facts"])
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    for name, path in make(ap.parse_args(argv).out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
