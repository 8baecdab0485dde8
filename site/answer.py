"""The answer per model: which presets really save something, ranked by the knowledge they keep.

    answers(board)        # [{"model", "name", "base", "ranked", "dense_pruned"}] per model
    sparse_storage(row)   # what a pruned row would take in a sparse format, or None

A preset "saves" when its weights as stored are smaller than its baseline's (bytes, measured)
or its main probe runs faster (latency at most board.FASTER of the baseline's, on the same
probe and machine). A preset stored in the baseline's bytes runs the same dense matmuls, so a
latency difference there is noise and it is never ranked: unstructured pruning stored dense is
listed apart, with what a sparse format would take, computed from its measured sparsity.
"""
from __future__ import annotations

import math

from board import FASTER, SAME_BYTES, num

# A preset must store at least 1 % fewer bytes than its baseline to count as smaller: the
# byte counts are exact, so this only ignores rounding-size differences (e.g. a bias kept).
SMALLER = 0.99
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def sparse_storage(row, scoring_dtype: str = "float32") -> dict | None:
    """Bytes of a pruned row's weights if its pruned matrices were stored as a bitmask (one bit
    per position) plus the non-zero values, from the measured zeros and weights in scope; None
    for a row that is not unstructured-sparse or lacks the counts. Everything outside the
    pruned scope (embeddings, norms) stays as stored."""
    eff = row["preset_info"].get("effect")
    if row["baseline"] or row["bits"] or not isinstance(eff, dict) or not row["weight_bytes"]:
        return None
    zeros, total = num(eff.get("zeros")), num(eff.get("params_in_scope"))
    size = DTYPE_BYTES.get(scoring_dtype, 4)
    if not zeros or not total or zeros > total or total * size > row["weight_bytes"]:
        return None
    nnz = total - zeros
    bitmask = nnz * size + math.ceil(total / 8)
    sparse = row["weight_bytes"] - total * size + bitmask
    return {"bytes": sparse, "saves": 1 - sparse / row["weight_bytes"],
            "format": f"bitmask + {size}-byte non-zero values",
            "sparsity": zeros / total}


def _dtype(board, row):
    for c in row["cells"].values():
        rec = board.records.get(c["case_id"])
        if rec and rec["status"] == "ok":
            return rec["scoring"]["dtype"]
    return "float32"


def answers(board):
    """Per model: presets that save bytes or time, ranked by knowledge kept; pruned presets
    stored dense, with their sparse-format size. Sets row["sparse"] on every row."""
    for r in board.rows:
        r["sparse"] = sparse_storage(r, _dtype(board, r))
    out = []
    for key, model in board.models.items():
        base = board.baselines.get(key)
        rows = [r for r in board.model_rows(key) if not r["baseline"]]
        ranked, dense_pruned, unrated = [], [], []
        for r in rows:
            if not any(c["status"] == "ok" for c in r["cells"].values()):
                continue          # nothing measured: shown as failed, never as an option
            smaller = (base is not None and base["weight_bytes"] and r["weight_bytes"]
                       and r["weight_bytes"] < SMALLER * base["weight_bytes"])
            same = (base is not None and base["weight_bytes"] and r["weight_bytes"]
                    and abs(r["weight_bytes"] / base["weight_bytes"] - 1) <= SAME_BYTES)
            speed = board.faster(r)
            faster = speed is not None and speed >= 1 / FASTER and not same
            if not (smaller or faster):
                if r["sparsity"] and r["sparsity"] > 0.001:
                    dense_pruned.append({"row": r, "sparse": r["sparse"]})
                continue
            entry = {"row": r, "size": (r["weight_bytes"] / base["weight_bytes"]) if smaller else None,
                     "speed": speed if faster else None, "knowledge": r["knowledge"]}
            (ranked if r["knowledge"]["retention"] is not None else unrated).append(entry)
        ranked.sort(key=lambda e: (-e["knowledge"]["retention"], e["row"]["weight_bytes"] or 0))
        out.append({"model": key, "name": str(model.get("id", key)), "base": base,
                    "ranked": ranked, "unrated": unrated, "dense_pruned": dense_pruned})
    return out
