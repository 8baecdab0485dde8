"""Do two record folders hold the same per-fact outcomes? (issue 18: scores must not depend on the
batch size). Compares every case present in both: each example's uid, rank, prediction and open
answer (LAMA), correct flag (lm-eval) or NLL (perplexity), and the main metric.

    python scripts/same_ranks.py results/batch-1 results/batch-default
Exit 0 when every shared case agrees, 1 on the first difference (named), 2 when nothing is shared.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.record import read_records  # noqa: E402

KEYS = ("uid", "rank", "prediction", "open", "correct", "nll")


def outcomes(record: dict) -> list[tuple]:
    return [tuple(e.get(k) for k in KEYS) for e in record["examples"]]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = ({r["case_id"]: r for r in read_records(Path(p)) if r["status"] == "ok"} for p in argv)
    shared = sorted(a.keys() & b.keys())
    if not shared:
        print(f"no case is in both {argv[0]} and {argv[1]}", file=sys.stderr)
        return 2
    for cid in shared:
        x, y = outcomes(a[cid]), outcomes(b[cid])
        if x != y:
            diff = next(i for i, (p, q) in enumerate(zip(x, y)) if p != q) if len(x) == len(y) else None
            where = f"example {x[diff][0]}: {x[diff]} vs {y[diff]}" if diff is not None else \
                f"{len(x)} vs {len(y)} examples"
            print(f"{cid}: outcomes differ ({where})", file=sys.stderr)
            return 1
        sa, sb = (r["scoring"] for r in (a[cid], b[cid]))
        print(f"{cid}: {len(x)} identical outcomes (batch {sa['batch_size']}, {sa['policy']} vs "
              f"batch {sb['batch_size']}, {sb['policy']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
