"""Print what one compression preset cost one model, probe by probe, from its records.

    python -m benchmarks.report results/records --model smollm2-135m --preset sparse-50

For each probe with both a baseline (``none``) and a ``--preset`` record: facts lost and gained,
retention with its paired-bootstrap interval, the one-sided McNemar p, the relations that lost
most, the breakdown by relation type, weight bytes, and ParaRel consistency / negated-LAMA
top-1 before and after where the probe measures them. ``--json`` prints the summaries instead.
Standard library only (benchmarks/analysis.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.analysis import knowledge_summary, pair_records, relation_types
from benchmarks.record import RecordError, read_latest


def _pct(x):
    return "n/a" if x is None else f"{x:.3f}"


def _mib(n):
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


def render(s: dict, top: int = 5) -> str:
    ci = s["retention_ci"]
    m = s["ci_method"]
    lines = [
        f"== {s['model']} at {s['preset']} on {s['probe']} ({s['n_shared']} facts shared with "
        f"{s['baseline_case']})",
        f"  correct: {s['baseline_correct']} -> {s['compressed_correct']}   (P@1 "
        f"{s['baseline_acc']:.3f} -> {s['compressed_acc']:.3f})",
        f"  facts lost: {s['facts_lost']}   facts gained: {s['facts_gained']}   "
        f"McNemar one-sided exact p = {s['mcnemar_p']:.3g}",
        f"  retention: {_pct(s['retention'])}   {int(m['level'] * 100)}% CI "
        + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a")
        + f"   ({m['kind']}, {m['resamples']} resamples, seed {m['seed']})",
        f"  weights: {_mib(s['weight_bytes']['baseline'])} -> {_mib(s['weight_bytes']['compressed'])}",
    ]
    rels = [(r, row) for r, row in s["by_relation"].items() if row["lost"]][:top]
    if rels:
        lines.append(f"  relations that lost most (lost/gained of n, P@1 before -> after):")
        for r, row in rels:
            lines.append(f"    {r:16} {row['type']:>7}  -{row['lost']}/+{row['gained']} of "
                         f"{row['n']:<4} {row['baseline_acc']:.2f} -> {row['compressed_acc']:.2f}")
    if len(s["by_type"]) > 1 or "unknown" not in s["by_type"]:
        lines.append("  by relation type: " + "   ".join(
            f"{t}: -{row['lost']}/+{row['gained']} of {row['n']}, retention {_pct(row['retention'])}"
            for t, row in s["by_type"].items()))
    cons = s.get("consistency")
    if cons and cons["baseline"] and cons["compressed"]:
        b, c = cons["baseline"], cons["compressed"]
        lines.append(f"  paraphrase consistency (ParaRel, share of agreeing pattern pairs): "
                     f"{b['value']:.3f} ± {b['stderr']:.3f} -> {c['value']:.3f} ± {c['stderr']:.3f} "
                     f"({c['n_facts']} facts); right under every pattern: "
                     f"{b['all_patterns_correct']:.3f} -> {c['all_patterns_correct']:.3f}")
    neg = s.get("negation")
    if neg and neg["baseline"] and neg["compressed"]:
        b, c = neg["baseline"], neg["compressed"]
        lines.append(f"  negated LAMA, object still ranked first under negation (lower is better): "
                     f"{b['negated_top1']:.3f} -> {c['negated_top1']:.3f} of {c['n']} facts; "
                     f"among known facts {_pct(b['negated_top1_known'])} (n={b['n_known']}) -> "
                     f"{_pct(c['negated_top1_known'])} (n={c['n_known']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="results folder(s) with JSON records")
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--probe", default=None, help="one probe id (default: every probe with records)")
    ap.add_argument("--lama-dir", default=None,
                    help="LAMA folder for relation types the records lack (default: $KCB_LAMA_DIR)")
    ap.add_argument("--top", type=int, default=5, help="how many relations to list (default 5)")
    ap.add_argument("--json", action="store_true", help="print the summaries as JSON")
    args = ap.parse_args(argv)
    try:
        records = read_latest(args.results)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pairs = pair_records(records, args.model, args.preset, args.probe)
    if not pairs:
        have = sorted(records)
        print(f"error: no {args.model}__{args.preset}__* record with its {args.model}__none__* "
              f"baseline in {', '.join(map(str, args.results))} ({len(have)} records). Run e.g. "
              f"pytest benchmarks -k \"{args.model} and (none or {args.preset}) and trex\"",
              file=sys.stderr)
        return 2
    summaries = []
    for base, comp in pairs:
        try:
            types = relation_types(comp, args.lama_dir)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            summaries.append(knowledge_summary(base, comp, types))
        except ValueError as exc:   # e.g. perplexity: no per-fact outcomes to pair
            print(f"note: {comp['case_id']}: {exc}; skipped", file=sys.stderr)
    if not summaries:
        print("error: no probe of this preset has per-fact outcomes paired with its baseline",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summaries, indent=1, sort_keys=True))
    else:
        print("\n\n".join(render(s, args.top) for s in summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
