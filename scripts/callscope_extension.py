"""How often does appending a LAMA candidate to its prompt change a call-scoped module's statistic?

    python scripts/callscope_extension.py smollm2-135m int8-dyn --facts 10 --candidates 40

If it rarely did, a prompt's KV cache could be reused (exactly) for most candidates of a model
whose quantizer takes a statistic over the whole call (probes/callscope.py). For each fact the
prompt runs alone and each call-scoped module's statistic is recorded; then each candidate runs
as one call over prompt + candidate, and the statistics are compared module by module. A
candidate is "clean" if every module took the prompt's statistic. Prints the counts, and the
earliest module (in execution order) where the candidates that changed a statistic did so.
The facts are T-REx at --limit 1 (one per relation), every ``len/facts``-th; each fact's first
``--candidates`` candidates. Reads $KCB_LAMA_DIR.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("preset")
    ap.add_argument("--facts", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=40)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)   # small single calls: a second thread only waits on a shared machine
    from benchmarks.models import MODELS, load
    from compressors import compress
    from probes.callscope import call_scoped
    from probes.lama_data import SLOT, lama_dir, load_subset

    model, tok, info = load(MODELS[args.model])
    model, _ = compress(model, args.preset, "causal", tokenizer=tok, model_info=info)
    model.eval()
    scoped = call_scoped(model)
    if not scoped:
        print(f"{args.preset}: no call-scoped module: every row is computed apart")
        return 0
    order = list(scoped)
    seen: dict = {}
    hooks = [m.register_forward_pre_hook(
        lambda mod, a, name=name, s=s: seen.__setitem__(name, s.stat(a[0].reshape(-1, a[0].shape[-1]))))
        for name, (m, s) in scoped.items()]
    sub = load_subset(lama_dir(None), "trex", limit=1)
    facts = sub.facts[::max(1, len(sub.facts) // args.facts)][:args.facts]
    total = clean = 0
    first = collections.Counter()
    with torch.inference_mode():
        for f in facts:
            prompt = (f.causal_text or f.text).split(SLOT)[0].rstrip()
            ctx = tok(prompt)["input_ids"]
            model(input_ids=torch.tensor([ctx]))
            alone = dict(seen)
            cands = sub.candidates[f.group][:args.candidates]
            moved_here = 0
            for c in cands:
                seq = tok(" " + c, add_special_tokens=False)["input_ids"]
                model(input_ids=torch.tensor([ctx + seq]))
                moved = [n for n in order if not torch.equal(seen[n], alone[n])]
                total += 1
                if moved:
                    moved_here += 1
                    first[moved[0]] += 1
                else:
                    clean += 1
            print(f"{f.group}: {len(cands)} candidates, {moved_here} change a statistic", flush=True)
    for h in hooks:
        h.remove()
    print(f"{args.model} {args.preset}: {total} candidates of {len(facts)} facts; {clean} clean "
          f"({clean / total:.1%}), {total - clean} change at least one of {len(order)} statistics")
    print("earliest module that changed:", first.most_common(8))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
