"""What earlier runs cost, read from their records: the plan's calibration (benchmarks/plan.py).

    table = from_records(read_records(folder))      # seconds, scaled to one machine speed
    python -m benchmarks.timings results/records -o benchmarks/timings.json   # the committed table
    python -m benchmarks.timings more/records --merge --about "..."            # merged over it

Every figure is scaled to the table's ``speed_ms`` (benchmarks/environment.py: a fixed matmul
workload, carried by each record), so records taken under other load, or on another machine, can
be pooled, and the plan scales the table to this machine's speed now. Standard library only.

Layout (model -> probe -> preset unless said):
  probe:    [[n, seconds], ...]  probe wall time at each n scored (median per n)
  latency:  model -> probe -> seconds of the latency benchmark (warm-up and rounds)
  units:    model -> probe -> units in the whole data (ability examples, perplexity windows)
  compress: model -> preset -> seconds; load: model -> seconds (a first conversion excluded)
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "timings.json"


def _speed(record: dict) -> float | None:
    s = (record.get("environment") or {}).get("speed_ms")
    return float(s) if isinstance(s, (int, float)) and s > 0 else None


def _cpu_view(record: dict, speed_ms: float) -> dict:
    """A copy of ``record`` whose wall times are its CPU seconds (see from_records)."""
    import copy
    r = copy.deepcopy(record)
    lat = r["latency"]
    k = lat["probe_cpu_s"] / lat["probe_wall_s"] if lat["probe_wall_s"] > 0 else 1.0
    lat["probe_wall_s"] = lat["probe_cpu_s"]
    lat["ms_per_example"] *= k
    eff = r["preset"].get("effect") or {}
    if isinstance(eff.get("compression_cpu_seconds"), (int, float)):
        eff["compression_seconds"] = eff["compression_cpu_seconds"]
    elif isinstance(eff.get("compression_seconds"), (int, float)):
        eff["compression_seconds"] *= k
    if isinstance(r["model"].get("load_seconds"), (int, float)):
        r["model"]["load_seconds"] *= k
    r["environment"]["speed_ms"] = speed_ms
    return r


def latency_seconds(record: dict) -> float:
    """Wall time of a record's latency benchmark: its timed rounds and one warm-up."""
    lat = record["latency"]
    rows = (lat.get("workload_shape") or {}).get("rows") or 1
    return (lat["rounds"] + 1) * lat["ms_per_example"] * rows / 1000


def from_records(records: list[dict], about: str = "", cpu_speed_ms: float | None = None) -> dict:
    """The table of ok records, each scaled to the records' median speed (records without a
    speed figure are taken as measured at that speed).

    ``cpu_speed_ms``: build it from the records' CPU seconds instead (latency.probe_cpu_s; the
    other wall times scaled by each record's probe CPU / wall), as measured by a machine whose
    speed figure is ``cpu_speed_ms``: the CPU time of the speed workload. On a loaded machine,
    one-thread runs' CPU seconds are what a quiet core's wall time would be."""
    ok = [r for r in records if r.get("status") == "ok"]
    if cpu_speed_ms:
        ok = [_cpu_view(r, cpu_speed_ms) for r in ok if r["latency"].get("probe_cpu_s")]
    speeds = [s for s in map(_speed, ok) if s]
    ref = statistics.median(speeds) if speeds else None
    probe, latency, units, compress, load, params = {}, {}, {}, {}, {}, {}
    for r in ok:
        k = ref / _speed(r) if ref and _speed(r) else 1.0
        m, p, pr = r["model"]["id"], r["preset"]["id"], r["probe"]["id"]
        probe.setdefault(m, {}).setdefault(pr, {}).setdefault(p, {}).setdefault(
            r["n"], []).append(r["latency"]["probe_wall_s"] * k)
        latency.setdefault(m, {}).setdefault(pr, []).append(latency_seconds(r) * k)
        whole = r["probe"].get("examples_in_split") or r["probe"].get("windows_in_text")
        if isinstance(whole, int):
            units.setdefault(m, {})[pr] = whole
        eff = r["preset"].get("effect") or {}
        if p != "none" and isinstance(eff.get("compression_seconds"), (int, float)):
            compress.setdefault(m, {}).setdefault(p, []).append(eff["compression_seconds"] * k)
        if isinstance(r["model"].get("load_seconds"), (int, float)):
            load.setdefault(m, []).append(r["model"]["load_seconds"] * k)
        if isinstance(r["model"].get("params"), int):
            params[m] = r["model"]["params"]
    med = statistics.median
    return {
        "about": about, "records": len(ok), "speed_ms": ref,
        "probe": {m: {pr: {p: sorted([n, round(med(v), 3)] for n, v in by_n.items())
                           for p, by_n in presets.items()} for pr, presets in probes.items()}
                  for m, probes in probe.items()},
        "latency": {m: {pr: round(med(v), 3) for pr, v in d.items()} for m, d in latency.items()},
        "units": units,
        "compress": {m: {p: round(med(v), 3) for p, v in d.items()} for m, d in compress.items()},
        # the fastest load is the cached one (a first GGUF conversion happens once per machine)
        "load": {m: round(min(v), 3) for m, v in load.items()},
        "params": params,
    }


def _scaled(value, k: float):
    """Seconds scaled by ``k``: plain numbers, and the seconds of [n, seconds] points."""
    if isinstance(value, dict):
        return {key: _scaled(v, k) for key, v in value.items()}
    if isinstance(value, list):
        return [[n, s * k] for n, s in value]
    return value * k


def _update(base: dict, over: dict) -> None:
    for key, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(key), dict):
            _update(base[key], v)
        else:
            base[key] = v


def merge(base: dict, over: dict) -> dict:
    """``over`` (e.g. this machine's own records) replaces ``base`` entry by entry, its seconds
    scaled to ``base``'s speed first."""
    if not over.get("records"):
        return base
    if not base.get("records"):
        return over
    k = base["speed_ms"] / over["speed_ms"] if base.get("speed_ms") and over.get("speed_ms") else 1.0
    out = json.loads(json.dumps(base))
    for key in ("probe", "latency", "compress", "load"):
        _update(out.setdefault(key, {}), _scaled(over.get(key, {}), k))
    for key in ("units", "params"):
        _update(out.setdefault(key, {}), over.get(key, {}))
    out["records"] = base["records"] + over["records"]
    return out


def read_folders(folders) -> list[dict]:
    """Every readable ok record in ``folders``, older runs of a case included (more timings);
    files the validator refuses are left out."""
    from benchmarks.record import merge_folders
    merged = merge_folders([Path(f) for f in folders])
    return [r for r in [*merged.records.values(), *(x for xs in merged.replaced.values() for x in xs)]
            if r.get("status") == "ok"]


def load_table(path: Path = DEFAULT) -> dict:
    if not path.is_file():
        return {"records": 0}
    return json.loads(path.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build the plan's timing table from record folders.")
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT)
    ap.add_argument("--about", default="", help="the conditions: machine, load, date, command")
    ap.add_argument("--cpu-speed-ms", type=float, default=None,
                    help="use the records' CPU seconds, as on a machine of this speed figure "
                         "(the CPU time of benchmarks/environment.py's speed workload)")
    ap.add_argument("--merge", action="store_true",
                    help="merge over the table already at --out (merge(): these records' entries "
                         "replace its own) instead of replacing it")
    args = ap.parse_args(argv)
    from probes.storage import atomic_write
    records = read_folders(args.folders)
    table = from_records(records, args.about, args.cpu_speed_ms)
    if args.merge:
        base = load_table(args.out)
        table = merge(base, table)
        table["about"] = " ".join(filter(None, (base.get("about", ""), args.about)))
    atomic_write(args.out, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {table['records']} records, speed {table['speed_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
