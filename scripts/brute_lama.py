"""The slow, obvious LAMA scorer, to check a record's ranks against (causal models).

    python scripts/brute_lama.py published/records/smollm2-135m__int8-dyn__trex.json --facts 5

Loads the record's model and preset as the suite does (benchmarks/models.py, compressors/), then,
for the first N slot-last facts of the record, runs ONE plain forward per candidate over exactly
``prompt + candidate`` (batch 1, no padding, no cache, nothing shared), sums the candidate's token
log-probs, and ranks the gold among the relation's candidates (ties go to the gold, as in the
suite). Shares nothing with probes/lama.py's scoring code. Prints each fact's rank in the record
and here; exits 1 on the first disagreement in rank or top prediction.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def candidate_logp(model, ctx: list[int], cand: list[int]) -> float:
    import torch
    ids = torch.tensor([ctx + cand])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return float(sum(logp[len(ctx) - 1 + j, t] for j, t in enumerate(cand)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("record")
    ap.add_argument("--facts", type=int, default=5)
    ap.add_argument("--lama-dir", default=os.environ.get("KCB_LAMA_DIR", "../shared/data/lama"))
    args = ap.parse_args(argv)
    import torch
    from benchmarks.models import MODELS, load
    from compressors import compress
    from probes.lama_data import load_subset
    rec = json.loads(Path(args.record).read_text())
    spec = MODELS[rec["model"]["id"]]
    if spec.family != "causal":
        raise SystemExit("this check is written for causal models")
    model, tok, info = load(spec)
    model, _ = compress(model, rec["preset"]["id"], spec.family, tokenizer=tok,
                        model_info=info)
    model.eval()
    torch.manual_seed(0)
    subset = load_subset(Path(args.lama_dir), rec["probe"]["subset"], limit=rec["probe"]["limit"])
    facts = [e for e in rec["examples"] if e["mode"] == "slot-last"][:args.facts]
    bad = 0
    for e in facts:
        prompt = e["text"].split("[Y]")[0]
        sep = prompt[len(prompt.rstrip()):]
        ctx = tok(prompt.rstrip())["input_ids"]
        cands = subset.candidates[e["group"]]
        scores = {c: candidate_logp(model, ctx, tok(sep + c, add_special_tokens=False)["input_ids"])
                  for c in cands}
        gold = scores[e["gold"]]
        rank = 1 + sum(1 for c, s in scores.items() if c != e["gold"] and s > gold)
        top = max(scores, key=scores.get)
        same = rank == e["rank"] and (top == e["prediction"] or scores[top] == scores[e["prediction"]])
        bad += not same
        print(f"{e['uid']}: rank {e['rank']} in the record, {rank} here; top {e['prediction']!r} / "
              f"{top!r} ({len(cands)} candidates){'' if same else '  <-- differs'}")
    print(f"{len(facts) - bad} of {len(facts)} facts agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
