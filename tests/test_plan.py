"""The plan before a run and the progress while it runs (benchmarks/timings.py, plan.py,
progress.py): numbers from records, scaled and extrapolated as documented."""
from __future__ import annotations

import json

import pytest

from benchmarks import plan as planmod, timings
from benchmarks.matrix import cases, parse_limits, select_models, select_presets, select_probes
from benchmarks.progress import Progress, clock, duration
from tests.test_record import make_record


def _rec(preset="none", probe="trex", n=100, wall=10.0, speed=20.0, model="m", comp=None,
         load=None, kind="lama", **probe_meta):
    rec = make_record(f"{model}__{preset}__{probe}")
    rec["n"] = n
    rec["model"].update(id=model, params=1000)
    if load is not None:
        rec["model"]["load_seconds"] = load
    rec["preset"]["id"] = preset
    if comp is not None:
        rec["preset"]["effect"]["compression_seconds"] = comp
    rec["probe"].update(id=probe, kind=kind, **probe_meta)
    rec["latency"].update(probe_wall_s=wall, rounds=3, ms_per_example=100.0,
                          workload_shape={"rows": 4})
    rec["environment"]["speed_ms"] = speed
    return rec


def test_records_are_scaled_to_one_speed():
    # the same work measured twice: once on a machine (or load) twice as slow
    table = timings.from_records([_rec(wall=10.0, speed=20.0), _rec(preset="sparse-10", wall=30.0,
                                                                      speed=40.0, comp=8.0)])
    assert table["speed_ms"] == 30.0                                  # the median speed
    assert table["probe"]["m"]["trex"]["none"] == [[100, 15.0]]       # 10 s at 20 ms -> at 30 ms
    assert table["probe"]["m"]["trex"]["sparse-10"] == [[100, 22.5]]  # 30 s at 40 ms -> at 30 ms
    assert table["compress"]["m"] == {"sparse-10": 6.0}
    # latency: (3 rounds + warm-up) x 4 rows x 100 ms = 1.6 s each, scaled x1.5 and x0.75
    assert table["latency"]["m"]["trex"] == pytest.approx((2.4 + 1.2) / 2)


def test_merge_prefers_this_machine_and_rescales_it():
    base = timings.from_records([_rec(wall=10.0, speed=10.0), _rec(probe="piqa", wall=5.0, speed=10.0)])
    mine = timings.from_records([_rec(wall=40.0, speed=20.0)])
    out = timings.merge(base, mine)
    assert out["probe"]["m"]["trex"]["none"] == [[100, 20.0]]   # 40 s at 20 ms = 20 s at 10 ms
    assert out["probe"]["m"]["piqa"]["none"] == [[100, 5.0]]    # kept from the base
    assert out["records"] == 3


def test_a_line_through_two_sizes_separates_fixed_cost():
    fixed, per = planmod._line([[10, 7.0], [100, 16.0]])
    assert (fixed, per) == pytest.approx((6.0, 0.1))
    assert planmod._at([[10, 7.0], [100, 16.0]], 1000) == pytest.approx(106.0)
    assert planmod._line([[50, 5.0]]) == (0.0, 0.1)               # one size: proportional


def test_unmeasured_preset_is_the_dense_rate_times_its_cost_elsewhere():
    table = timings.from_records([
        _rec(model="a", preset="none", wall=10.0), _rec(model="a", preset="int8-dyn", wall=30.0),
        _rec(model="b", preset="none", wall=4.0)])
    secs, basis = planmod.probe_seconds(table, "b", "trex", "int8-dyn", "dynamic-int8", 200)
    assert basis == "scaled" and secs == pytest.approx(2 * 4.0 * 3)
    secs, basis = planmod.probe_seconds(table, "a", "trex", "int8-dyn", "dynamic-int8", 50)
    assert basis == "measured" and secs == pytest.approx(15.0)
    assert planmod.probe_seconds(table, "c", "trex", "none", "none", 10) == (None, "none")


def test_a_preset_measured_small_follows_the_dense_line_not_a_proportion():
    """ConceptNet's cost is mostly fixed (ranking the whole subset's objects): a preset measured
    on 34 facts must not be scaled x146/34 to 146 facts."""
    table = timings.from_records([_rec(n=34, wall=6.7), _rec(n=146, wall=11.4),
                                  _rec(preset="int8-dyn", n=34, wall=15.5)])
    secs, basis = planmod.probe_seconds(table, "m", "trex", "int8-dyn", "dynamic-int8", 146)
    assert basis == "measured" and secs == pytest.approx(11.4 * 15.5 / 6.7)


def _cases(models, presets, probes):
    return cases(select_models(models), select_presets(presets), select_probes(probes))


def test_estimate_adds_loads_compressions_and_the_baselines_a_gate_needs(monkeypatch):
    monkeypatch.setattr(planmod, "units", lambda case, limit, root, table: limit)
    recs = [_rec(model="smollm2-135m", preset=p, wall=w, comp=c, load=3.0)
            for p, w, c in (("none", 10.0, None), ("sparse-10", 10.0, 5.0))]
    table = timings.from_records(recs)
    chosen = _cases("smollm2-135m", "sparse-10", "trex")          # no `none` case selected
    plan = planmod.estimate(chosen, {"trex": 100}, None, table, speed_ratio=2.0)
    lat = table["latency"]["smollm2-135m"]["trex"]
    assert plan.seconds == {"smollm2-135m__sparse-10__trex": pytest.approx(2 * (10.0 + lat))}
    assert plan.shared == pytest.approx({"smollm2-135m baseline of trex": 20.0,
                                         "load smollm2-135m": 6.0,
                                         "compress smollm2-135m sparse-10": 10.0})
    assert plan.total == pytest.approx(2 * (10.0 + lat) + 36.0)


def test_a_long_selection_says_so_and_suggests_a_limit(monkeypatch, tmp_path):
    """`-k "llama and int4"` without --limit: hours; the plan says it and offers a --limit."""
    from benchmarks import environment
    monkeypatch.setattr(planmod, "units", lambda case, limit, root, table: limit or 30000)
    monkeypatch.setattr(environment, "speed_ms", lambda fresh=False: 20.0)
    table = timings.from_records([_rec(model="smollm2-135m", preset="none", probe=p, n=n, wall=w)
                                  for p, n, w in (("trex", 410, 8.0), ("trex", 123, 3.0))])
    monkeypatch.setattr(timings, "load_table", lambda path=timings.DEFAULT: table)
    chosen = [c for c in _cases("smollm2-135m", "all", "trex") if c.preset.bits == 4]
    plan = planmod.make(chosen, {}, None, None, results_dir=tmp_path / "none")
    assert plan.total > 3600
    limit, secs = plan.suggestion
    assert secs <= planmod.SUGGEST_ABOVE_S and limit in planmod.LIMIT_CHOICES
    text = "\n".join(plan.lines(len(chosen)))
    assert f"{len(chosen)} case(s), about {duration(plan.total)}" in text
    assert f"--limit {limit}" in text and "would take about" in text


def test_progress_eta_follows_how_the_cases_went():
    p = Progress({"a": 10.0, "b": 10.0, "c": 20.0}, total=40.0, start=0.0)
    line = p.finished("a", {"facts_per_s": 41.0, "retention": None, "verdict": "baseline",
                            "kind": "lama"}, "passed", now=20.0)
    # a took twice its estimate: the 30 s left are expected to take 60 s
    assert line.startswith("[######..............] 1/3 0:20 ETA 1:00  a  41.0 facts/s")
    assert line.endswith("retention -  baseline")
    line = p.finished("b", None, "skipped: no backend", now=30.0)
    assert "2/3 0:30 ETA 0:30  b  skipped: no backend" in line
    line = p.finished("c", {"facts_per_s": 2.0, "retention": 0.5, "verdict": "fail",
                            "kind": "ability"}, "failed", now=50.0)
    assert "3/3 0:50  c  2.0 examples/s  retention 0.500  fail" in line and "ETA" not in line


def test_duration_and_clock_read_as_people_write_them():
    assert [duration(s) for s in (42, 150, 3725)] == ["42 s", "2 min", "1 h 02 min"]
    assert [clock(s) for s in (5, 125, 3725)] == ["0:05", "2:05", "1:02:05"]


def test_limits_option_reads_probe_limits():
    assert parse_limits("trex=10, conceptnet=all") == {"trex": 10, "conceptnet": None}
    with pytest.raises(ValueError, match="positive whole number"):
        parse_limits("trex=0")
    with pytest.raises(KeyError, match="unknown probe 'trexx'"):
        parse_limits("trexx=3")
    with pytest.raises(KeyError, match="unknown probe 'trexx'"):
        parse_limits("per-call:trexx=3")


def test_per_call_presets_take_their_own_limit_and_others_ignore_it():
    from benchmarks.matrix import case_limit
    from compressors import get_preset
    limits = parse_limits("trex=10,per-call:trex=1,piqa=100")
    assert limits == {"trex": 10, "per-call:trex": 1, "piqa": 100}
    assert case_limit(limits, 5, "trex", get_preset("int8-dyn")) == 1
    assert case_limit(limits, 5, "trex", get_preset("sparse-50")) == 10
    assert case_limit(limits, 5, "trex", None) == 10                 # the baseline
    assert case_limit(limits, 5, "piqa", get_preset("int8-dyn")) == 100   # no per-call entry
    assert case_limit(limits, 5, "conceptnet", get_preset("int8-dyn")) == 5
    assert parse_limits("per-call:conceptnet=skip") == {"per-call:conceptnet": 0}
    with pytest.raises(ValueError, match="positive whole number, all or skip"):
        parse_limits("trex=-1")


def test_a_preset_takes_its_own_limit_before_the_per_call_and_probe_ones():
    from benchmarks.matrix import SKIP, case_limit
    from compressors import get_preset
    limits = parse_limits("trex=10,per-call:trex=1,bnb-int8:trex=skip,nf4-single:piqa=7")
    assert limits == {"trex": 10, "per-call:trex": 1, "bnb-int8:trex": SKIP, "nf4-single:piqa": 7}
    assert case_limit(limits, 5, "trex", get_preset("bnb-int8")) == SKIP   # per-call too: its own wins
    assert case_limit(limits, 5, "trex", get_preset("int8-dyn")) == 1
    assert case_limit(limits, 5, "piqa", get_preset("nf4-single")) == 7
    assert case_limit(limits, 5, "piqa", get_preset("sparse-50")) == 5
    assert case_limit(limits, 5, "trex", None) == 10
    with pytest.raises(KeyError, match="bnb-int9"):
        parse_limits("bnb-int9:trex=3")
    with pytest.raises(KeyError, match="unknown probe 'trexx'"):
        parse_limits("bnb-int8:trexx=3")


def test_the_main_job_limits_every_probe_it_asks_and_nothing_else():
    from probes import PROBES
    from benchmarks.matrix import MAIN_LIMITS
    assert {k.rpartition(":")[2] for k in MAIN_LIMITS} == {p.id for p in PROBES.values() if p.default}
    assert parse_limits("main") == MAIN_LIMITS
    assert parse_limits(",".join(f"{k}={'skip' if v == 0 else 'all' if v is None else v}"
                                 for k, v in MAIN_LIMITS.items())) == MAIN_LIMITS


def test_the_plan_with_workers_is_the_busiest_workers_share():
    """-n 2 --dist loadgroup: a model's cases share a worker, so two models of 30 and 10 minutes
    take 30, not 20 (and one worker takes the sum)."""
    plan = planmod.Plan(seconds={"a__none__trex": 1200.0, "a__sparse-50__trex": 500.0,
                                 "b__none__trex": 600.0, "c__none__trex": 50.0},
                        shared={"load a": 100.0, "compress a sparse-50": 0.0, "b baseline of piqa": 20.0},
                        owner={"load a": "a", "compress a sparse-50": "a", "b baseline of piqa": "b"})
    assert plan.total == pytest.approx(2470.0)
    assert plan.wall(1) == pytest.approx(2470.0)
    assert plan.wall(2) == pytest.approx(1800.0)                  # a alone; b and c on the other
    assert plan.wall(2, grouped=False) == pytest.approx(1235.0)
    head = plan.lines(4, workers=2)[0]
    assert "about 30 min on this machine with 2 workers" in head and "41 min of work" in head


def test_the_timing_table_is_built_and_merged_from_record_folders(tmp_path):
    from benchmarks import timings
    from tests.site_records import write_site_records
    folder = write_site_records(tmp_path / "records")
    out = tmp_path / "timings.json"
    assert timings.main([str(folder), "-o", str(out), "--about", "first"]) == 0
    first = json.loads(out.read_text())
    assert first["records"] > 0 and first["about"] == "first" and first["probe"]
    assert timings.main([str(folder), "-o", str(out), "--merge", "--about", "again"]) == 0
    merged = json.loads(out.read_text())
    assert merged["records"] == 2 * first["records"] and merged["about"] == "first again"
