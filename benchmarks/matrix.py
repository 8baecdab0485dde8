"""The matrix: models x compression presets x probes, with marks, order and retention floors.

    for case in cases(select_models("default")): print(case.id, case.marks)

The case id ``<model>__<preset>__<probe>`` is the pytest id, the record file name and the
leaderboard row key. Marks make ``-k``/``-m`` selections mean what users expect:
family (masked, seq2seq, causal), architecture (llama, gemma3, bert, t5, ...), bit width
(int8, int4, ...; quantized presets only), method (baseline, pruning, quantization), probe kind
(lama) and model source (default, hub, tiny). tests/test_ids.py enforces the id rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from benchmarks.models import MODELS, ModelSpec
from compressors import METHODS, PRESETS, Preset
from probes import PROBES, Probe

# Retention floors, the one place they live: compressed P@1 / dense P@1 on the same facts.
# A case fails when retention is below its floor AND the paired (McNemar) test says the drop is
# real. Presets not listed record without gating (sparse-70 and up destroy small models' facts
# by design; gating them would only say what the paper already showed). The compression-menu
# presets (everything with default=False in compressors/: scoped/layer-wise/structured/2:4
# pruning, Wanda, SparseGPT, bitsandbytes, torchao, quanto, scoped int8, prune+quantize) are
# record-only for now: there is no measured basis yet for a floor on a real model, and a floor
# guessed before measuring would be a number without a source.
FLOORS: dict[str, float] = {
    "sparse-10": 0.90, "sparse-20": 0.85, "sparse-30": 0.75, "sparse-40": 0.60,
    "sparse-50": 0.40, "sparse-60": 0.20, "int8-dyn": 0.50,
}
@dataclass(frozen=True)
class Case:
    model: ModelSpec
    preset: Preset
    probe: Probe

    @property
    def id(self) -> str:
        return f"{self.model.id}__{self.preset.id}__{self.probe.id}"

    @property
    def floor(self) -> float | None:
        # Ability and perplexity cases record without a floor: they are the contrast to knowledge.
        return FLOORS.get(self.preset.id) if self.probe.kind == "lama" else None

    @property
    def marks(self) -> tuple[str, ...]:
        kind = METHODS[self.preset.method].kind   # declared beside the method's handler
        marks = [self.model.family, self.model.arch,
                 *((kind,) if isinstance(kind, str) else kind),
                 self.probe.kind, self.model.source]
        if self.model.default:
            marks.append("default")
        if self.preset.bits:
            marks.append(f"int{self.preset.bits}")
        if self.preset.cuda:
            marks.append("cuda")
        return tuple(dict.fromkeys(marks))


PER_CALL = "per-call:"   # --limits keys for presets scored one call per sequence (Preset.per_call)
SKIP = 0                 # --limits probe=skip: such cases are not collected (the plan says how many)

# The main job (scripts/bench.sh: `--probes default --limits main`): each probe's limit, sized so
# the whole job fits 20 minutes on a quiet 2-core CPU (two one-thread workers, a model each: the
# Gemma worker is the longer, its 262k-token head costing more than its body) while every figure
# it shows carries an interval that can tell a real drop from noise (issue 19). None: all of it.
# T-REx: 4 facts per relation, 164 facts (SmolLM2 knows ~54, Gemma ~80; the strict protocol's
# decoding made a T-REx fact cost twice what it did, so the 410 facts of the republished board
# no longer fit); ConceptNet: 10 facts per relation, 89 (of 146); PIQA: 40 examples; the
# testbed's facts: all 240. Measured whole (bash scripts/bench.sh, quiet machine, 2026-12-02):
# T-REx 4 / ConceptNet all / PIQA 60 took 18 min 59 s, PIQA 50 took 20 min 43 s (a slower hour:
# the same cases ran ~8 % slower), the Gemma worker last both times; hence these limits.
# One-thread costs on Gemma: T-REx 0.11 s a fact, ConceptNet 0.16 s a fact, PIQA 0.7 s an
# example (dense) and ~0.9 s with one call per example (int8-dyn, ao-w8a8).
# The per-call presets (int8-dyn, ao-w8a8: one forward call per candidate, ~3 s a T-REx fact on
# one core, against 0.11 s batched) run T-REx at one fact per relation (41 facts, ~14 known to
# SmolLM2, ~20 to Gemma), paired with the baselines on those; ConceptNet (97 candidates a fact)
# is left out for them. bnb-int8 (LLM.int8) scored exactly on a CPU costs ~23 s a T-REx fact on
# either model (bitsandbytes' CPU int8 kernels, one call per sequence per layer): 16 minutes for
# 41 facts, so the CPU main job measures it on the testbed models only (their fact probes);
# `--presets bnb-int8 --limits trex=1` runs it on the default models, and on CUDA it is cheap.
MAIN_LIMITS: dict[str, int | None] = {"trex": 4, "conceptnet": 10, "piqa": 40,
                                      "fact-trained": None, "fact-heldout": None,
                                      PER_CALL + "trex": 1, PER_CALL + "conceptnet": SKIP,
                                      **{f"bnb-int8:{p}": SKIP for p in ("trex", "conceptnet", "piqa")}}


def case_limit(limits: dict, default: int | None, probe_id: str, preset=None) -> int | None:
    """The limit a case runs at: the preset's own (``<preset>:probe``), else a per-call preset's
    (``per-call:probe``), else the probe's, else the run's --limit. A smaller limit selects a
    subset of a larger one's facts (each relation's first N in a fixed hash order; a task's first
    N documents), so such a case pairs with a baseline run at the larger limit on the facts they
    share (benchmarks/derive.py)."""
    if preset is not None:
        if f"{preset.id}:{probe_id}" in limits:
            return limits[f"{preset.id}:{probe_id}"]
        if getattr(preset, "per_call", False) and PER_CALL + probe_id in limits:
            return limits[PER_CALL + probe_id]
    return limits.get(probe_id, default)


def parse_limits(text: str | None) -> dict[str, int | None]:
    """--limits: 'main' (MAIN_LIMITS) or 'probe=N,probe=all,per-call:probe=N,preset:probe=skip,...'
    -> key -> limit (``per-call:`` keys apply to presets scored one call per sequence only,
    Preset.per_call; ``<preset id>:`` keys to that preset only, and win over both)."""
    if not text:
        return {}
    if text.strip() == "main":
        return dict(MAIN_LIMITS)
    from compressors import get_preset
    from probes import get_probe
    out: dict[str, int | None] = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r}: expected probe=N, probe=all, per-call:probe=N or preset:probe=N")
        scope, colon, probe = (x.strip() for x in key.partition(":"))
        if not colon:
            scope, probe = "", scope
        elif scope != PER_CALL.rstrip(":"):
            get_preset(scope)    # KeyError names the preset and the near ones
        get_probe(probe)         # KeyError names the probe and the near ones
        key = f"{scope}:{probe}" if colon else probe
        value = value.strip()
        if value == "all":
            out[key] = None
        elif value == "skip":
            out[key] = SKIP
        elif value.isdigit() and int(value) > 0:
            out[key] = int(value)
        else:
            raise ValueError(f"{part!r}: the limit must be a positive whole number, all or skip")
    return out


def select_models(which: str) -> list[ModelSpec]:
    """'default' | 'tiny' | 'testbed' | 'all' | comma-separated model ids."""
    if which == "default":
        return [m for m in MODELS.values() if m.default]
    if which in ("tiny", "testbed"):
        return [m for m in MODELS.values() if m.source == which]
    if which == "all":
        return list(MODELS.values())
    chosen = []
    for mid in filter(None, (x.strip() for x in which.split(","))):
        if mid not in MODELS:
            import difflib
            near = difflib.get_close_matches(mid, MODELS, n=3)
            raise KeyError(f"unknown model {mid!r}" + (f"; did you mean {', '.join(near)}?" if near
                                                        else f"; known: {', '.join(MODELS)}"))
        chosen.append(MODELS[mid])
    return chosen


def select_presets(which: str = "all") -> list[Preset]:
    """'all' (every registered preset) | 'default' (the main job's curated subset: the baseline,
    global sparsity 10-90 in steps of 20, int8-dyn, bnb-int8, nf4-single, wanda-50, ao-w8a8:
    the presets registered with default=True) |
    comma-separated preset ids."""
    if which == "all":
        return list(PRESETS.values())
    if which == "default":
        return [p for p in PRESETS.values() if p.default]
    from compressors import get_preset
    chosen = [get_preset(pid) for pid in filter(None, (x.strip() for x in which.split(",")))]
    if not chosen:
        raise KeyError("--presets is empty: give all, default or comma-separated preset ids")
    return chosen


def select_probes(which: str = "all") -> list[Probe]:
    """'all' | 'default' (the main job's: LAMA's four subsets, the paper's BoolQ, PIQA and
    Winogrande, WikiText-2 perplexity, the testbed's facts) | comma-separated probe ids."""
    if which == "all":
        return list(PROBES.values())
    if which == "default":
        return [p for p in PROBES.values() if p.default]
    from probes import get_probe
    chosen = [get_probe(pid) for pid in filter(None, (x.strip() for x in which.split(",")))]
    if not chosen:
        raise KeyError("--probes is empty: give all, default or comma-separated probe ids")
    return chosen


def cases(models: list[ModelSpec], presets: list[Preset] | None = None,
          probes: list[Probe] | None = None) -> list[Case]:
    """Every compatible combination, ordered so each model's cases run together, baseline first
    (incompatible probe/family pairs are not collected, so counts stay honest)."""
    presets = list(PRESETS.values()) if presets is None else presets
    probes = list(PROBES.values()) if probes is None else probes
    # A user's checkpoint preset runs on its own base model only (compressors/checkpoint.py).
    out = [Case(m, p, b) for m in models for p in presets for b in probes if b.compatible(m)
           and (p.method != "checkpoint" or p.params["base"] == m.id)]
    preset_order = {pid: i for i, pid in enumerate(PRESETS)}   # `none` registers first
    probe_order = {pid: i for i, pid in enumerate(PROBES)}
    model_order = {m.id: i for i, m in enumerate(models)}
    return sorted(out, key=lambda c: (model_order[c.model.id], preset_order[c.preset.id],
                                      probe_order[c.probe.id]))


def all_marks() -> set[str]:
    return {mark for c in cases(list(MODELS.values())) for mark in c.marks}
