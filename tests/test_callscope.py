"""probes/callscope.py: which quantized modules take a statistic over the whole call, checked on the
real kernels (a row's output must not change when other rows join the call, except where the
module is declared call-scoped), and that an anchor row reproduces a call's statistic exactly."""
import copy

import pytest
import torch

from benchmarks.tiny import build
from compressors import compress, get_preset, unavailable_reason
from probes.callscope import call_scoped


def _needs(preset_id):
    reason = unavailable_reason(get_preset(preset_id))
    if reason:
        pytest.skip(reason)


def _first_quantized(model):
    """The first quantized linear of the first MLP (input width 64 at width=64)."""
    return model.get_submodule("model.layers.0.mlp.up_proj")


def _rows(seed=0, n=24, width=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, width), generator=g).clamp(-2.5, 2.5) * 2   # |x| <= 5: no stray outlier
    x[n - 3, 5] = 40.0        # a late row far outside the others (a padding-like spike)
    x[n - 2, 9] = -9.0        # an LLM.int8 outlier in a column no early row has
    x[2, 7] = 8.0             # an outlier early on
    return x


# Per preset: is the module call-scoped (declared and measured)? ao-w8a8 is row-local (measured
# here) but listed by call_scoped all the same: scored one call per sequence (see probes/callscope).
CALL_SCOPED = {"int8-dyn": True, "bnb-int8": True, "ao-w8a8": False, "ao-w8only": False,
               "quanto-w8": False, "quanto-w4": False, "nf4-single": False}
LISTED = {**CALL_SCOPED, "ao-w8a8": True}


@pytest.mark.parametrize("preset", list(CALL_SCOPED))
def test_a_row_changes_with_its_call_exactly_where_declared(preset):
    _needs(preset)
    model, _ = build("causal", width=64)
    compress(model, preset, "causal")
    model.eval()
    lin = _first_quantized(model)
    assert ("model.layers.0.mlp.up_proj" in call_scoped(model)) == LISTED[preset]
    x = _rows()
    with torch.inference_mode():
        alone = lin(x[:8])
        joined = lin(x)[:8]
        # rows are computed apart: the same rows in another order, another call shape
        shuffled = lin(x.flip(0).reshape(2, 12, 64)).reshape(24, -1).flip(0)[:8]
    moved = float((alone - joined).abs().max())
    if CALL_SCOPED[preset]:
        assert moved > 1e-3, "a declared call-scoped module did not depend on its call"
    else:
        assert moved <= 1e-5 * float(alone.abs().max()), f"{preset}: rows depend on their call ({moved})"
        assert torch.allclose(shuffled, joined, rtol=0, atol=1e-5 * float(alone.abs().max()))


def _row_with(statistic, s, width):
    """A row that, added to rows within statistic ``s``, makes the call's statistic exactly ``s``."""
    row = torch.zeros((1, width))
    if statistic.__class__.__name__ == "MinMax":
        row[0, 0], row[0, -1] = s[0], s[1]
    else:                      # outlier columns: an outlier in each, one small inlier elsewhere
        row[0, s] = statistic.threshold + 1
        row[0, (~s).nonzero()[0, 0]] = 1.0
    return row


@pytest.mark.parametrize("preset", ["int8-dyn", "bnb-int8"])
def test_the_statistic_is_what_the_kernel_takes_over_its_call(preset):
    """Rows computed in two calls whose inputs have equal statistics are bit-for-bit equal, and
    they differ when the statistics differ: ``stat`` is exactly what makes a row depend on its call
    (the real kernel). A later row changes the statistic of a call that includes it."""
    _needs(preset)
    model, _ = build("causal", width=64)
    compress(model, preset, "causal")
    model.eval()
    (lin, statistic), = [v for n, v in call_scoped(model).items() if n == "model.layers.0.mlp.up_proj"]
    x = _rows()
    part = x[:10]             # rows 0..9 hold neither the late spike nor the late outlier
    s_all, s_part = statistic.stat(x), statistic.stat(part)
    assert not torch.equal(s_all, s_part)
    with torch.inference_mode():
        full = lin(x)[:10]
        other = torch.cat([part, _row_with(statistic, s_all, 64)])
        assert torch.equal(statistic.stat(other), s_all)
        assert torch.equal(lin(other)[:10], full)          # same statistic: same rows, bit for bit
        assert not torch.equal(lin(part), full)            # the prompt alone: other rows


def test_torchao_w8a8_quantizes_activations_per_token():
    """Read from torchao 0.18: the weight's act_quant_kwargs carry PerRow() granularity, whose
    block over a (tokens, features) input is (1, features): one scale per token."""
    _needs("ao-w8a8")
    from torchao.quantization import PerRow
    from torchao.quantization.utils import get_block_size
    model, _ = build("causal", width=64)
    compress(model, "ao-w8a8", "causal")
    w = _first_quantized(model).weight
    gran = w.act_quant_kwargs.granularity
    assert isinstance(gran, PerRow)
    assert get_block_size((5, 7, 64), gran) == (1, 1, 64)


@pytest.mark.parametrize("threads", [1, 2])
def test_torchao_w8a8_rows_side_by_side_are_their_separate_calls(threads):
    """Why probes/lama_exact runs ao-w8a8's quantized calls on the whole batch (row_local): equal-
    length sequences side by side, no padding, no cache, give each sequence's own call's hidden
    states bit for bit. int8-dyn, whose scale spans the call, does not (the control)."""
    _needs("ao-w8a8")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for preset, row_local in (("ao-w8a8", True), ("int8-dyn", False)):
            model, _ = build("causal", width=64, seed=3)
            compress(model, preset, "causal")
            model.eval()
            assert all(s.row_local == row_local for _, s in call_scoped(model).values()), preset
            ids = torch.randint(3, 200, (12, 9), generator=torch.Generator().manual_seed(1))
            with torch.inference_mode():
                together = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
                alone = torch.cat([model.base_model(input_ids=ids[r:r + 1], use_cache=False).last_hidden_state
                                   for r in range(len(ids))])
            assert torch.equal(together, alone) == row_local, preset
    finally:
        torch.set_num_threads(before)


def test_scoped_and_combined_int8_presets_are_detected():
    for preset, n in (("dyn8-attn", 8), ("dyn8-ffn", 6), ("p20-dyn8", 14), ("int8-dyn", 14)):
        model, _ = build("causal", width=64)
        dense = copy.deepcopy(model)
        compress(model, preset, "causal")
        assert len(call_scoped(model)) == n, preset
        assert not call_scoped(dense)


def _uncalibrated_cpu_presets():
    from compressors import PRESETS, method_of
    return [p.id for p in PRESETS.values() if not p.cuda and not method_of(p).context]


@pytest.mark.parametrize("preset", _uncalibrated_cpu_presets())
def test_per_call_is_declared_exactly_where_it_is_detected(preset):
    """Preset.per_call (what the plan and the main job's `per-call:` limits read before any model is
    compressed) matches what the scorers detect after compressing (call_scoped)."""
    _needs(preset)
    model, tok = build("causal", width=64)
    compress(model, preset, "causal", tokenizer=tok)
    assert bool(call_scoped(model)) == get_preset(preset).per_call


def test_calibrated_methods_are_weight_only():
    """The calibrated methods (wanda, sparsegpt, gptq, checkpoint) change weights only: none may
    declare per_call without the test above covering it."""
    from compressors import PRESETS, method_of
    assert not [p.id for p in PRESETS.values() if method_of(p).context and p.per_call]


def test_a_call_scoped_model_is_scored_on_one_thread_and_others_as_asked():
    from probes.callscope import SCOPED_THREADS, scoring_threads
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for preset, want in (("int8-dyn", SCOPED_THREADS), ("sparse-50", 2)):
            model, _ = build("causal", width=64)
            compress(model, preset, "causal")
            with scoring_threads(model):
                assert torch.get_num_threads() == want, preset
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
