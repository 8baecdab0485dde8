"""WikiText-2 sliding-window perplexity (probes/perplexity.py): windows, numbers, the data file."""
import io
import math
import zipfile

import pytest
import torch

from benchmarks.tiny import build
from probes import perplexity, wikitext
from tests.helpers import FakeCausal

TEXT = ("The tower is 324 metres tall , about the same height as an 81 @-@ storey building . "
        "It was the tallest man @-@ made structure in the world for 41 years .\n") * 3


@pytest.mark.parametrize("n,context,stride", [(5000, 1024, 512), (1023, 1024, 512), (700, 64, 32)])
def test_windows_score_every_token_once_with_enough_history(n, context, stride):
    seen = []
    for begin, end, first in perplexity.windows(n, context, stride):
        assert end - begin <= context and begin <= first < end
        if begin:
            assert first - begin >= context - stride   # history for every scored token
        seen += range(first, end)
    assert seen == list(range(n))


def test_context_independent_model_gives_the_plain_token_average():
    # FakeCausal predicts softmax(bias) at every position: windowing cannot change any token's
    # log-prob, so the windowed result must equal the average over the whole stream.
    _, tok = build("causal")
    bias = torch.randn(len(tok), generator=torch.Generator().manual_seed(0))
    res = perplexity.score(FakeCausal(bias), tok, "causal", context=32, stride=16, text=TEXT)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    logp = torch.log_softmax(bias, -1)
    nll = -float(logp[torch.tensor(ids)].sum())          # BOS per window: every token scored
    assert res.meta["bos_per_window"] and res.meta["tokens_scored"] == len(ids)
    assert res.meta["stride"] == 15 and res.meta["context"] == 32   # half of 31 text tokens
    assert res.metrics["perplexity"]["value"] == pytest.approx(math.exp(nll / len(ids)), rel=1e-5)
    assert res.metrics["bits_per_byte"]["value"] == pytest.approx(
        nll / (len(TEXT.strip().encode()) * math.log(2)), rel=1e-3)
    assert res.metrics["word_perplexity"]["value"] == pytest.approx(
        math.exp(nll / len(TEXT.split())), rel=1e-5)
    assert sum(e["tokens"] for e in res.examples) == len(ids) and res.n == len(res.examples)


def test_one_window_equals_a_plain_forward_pass():
    model, tok = build("causal")
    text = TEXT[:120]
    res = perplexity.score(model, tok, "causal", text=text)
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        loss = model(input_ids=ids, labels=ids).loss       # mean NLL of tokens 1..n given BOS
    assert res.n == 1
    assert res.metrics["nll_per_token"]["value"] == pytest.approx(float(loss), abs=1e-4)


def test_every_window_is_one_unpadded_call_whatever_the_batch_size():
    """Windows run one per call (batch 1, no attention mask, no padding), so perplexity does not
    depend on the batch size, even for torch's dynamic int8 (one min/max per call)."""
    from compressors import compress
    model, tok = build("causal")
    compress(model, "int8-dyn", "causal")
    seen = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((tuple(kwargs["input_ids"].shape), sorted(kwargs))),
        with_kwargs=True)
    try:
        one = perplexity.score(model, tok, "causal", context=32, text=TEXT, batch_size=1)
        many = perplexity.score(model, tok, "causal", context=32, text=TEXT, batch_size=64)
    finally:
        handle.remove()
    assert len(seen) == one.n + many.n and all(s[0] == 1 for s, _ in seen)
    assert all("attention_mask" not in kw for _, kw in seen)
    assert [e["nll"] for e in one.examples] == [e["nll"] for e in many.examples]
    assert one.meta["scoring"]["policy"] == "one window per call"
    # the batch it actually ran (the request is pinned by the runner as requested_batch_size)
    assert (one.meta["scoring"]["batch_size"], many.meta["scoring"]["batch_size"]) == (1, 1)
    # each window equals its own plain call
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    e = one.examples[1]
    inp = torch.tensor([[tok.bos_token_id] + ids[e["begin"]:e["end"]]])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=inp).logits[0].float(), -1)
    n = e["tokens"]
    nll = -float(logp[torch.arange(inp.shape[1] - 1 - n, inp.shape[1] - 1), inp[0, -n:]].sum())
    assert e["nll"] == pytest.approx(nll, abs=1e-3)


def test_limit_is_the_number_of_windows_from_the_start():
    model, tok = build("causal")
    full = perplexity.score(model, tok, "causal", context=64, text=TEXT)
    two = perplexity.score(model, tok, "causal", context=64, text=TEXT, limit=2)
    assert two.n == 2 and not two.meta["complete"] and full.meta["complete"]
    assert [e["nll"] for e in two.examples] == [e["nll"] for e in full.examples[:2]]


def test_the_real_test_file_is_found_and_verified():
    text, digest = perplexity.load_text()
    assert digest == wikitext.SHA256 and text.startswith(" = Robert Boulter = \n") and "\r" not in text


def test_a_wrong_file_is_refused_by_name(tmp_path, monkeypatch):
    bad = tmp_path / "wiki.test.raw"
    bad.write_text("not wikitext")
    monkeypatch.setenv("KCB_WIKITEXT", str(tmp_path))
    with pytest.raises(wikitext.WikiTextError, match=f"{bad}: sha256 .* is not WikiText-2"):
        perplexity.load_text()
    monkeypatch.setenv("KCB_WIKITEXT", str(tmp_path / "nowhere"))
    with pytest.raises(wikitext.WikiTextError, match="KCB_WIKITEXT"):
        wikitext.wikitext_path()


def test_one_locator_serves_perplexity_and_calibration(monkeypatch):
    """$KCB_WIKITEXT may name the folder for calibrated presets too (it once meant the file there)."""
    from compressors.calibration import calibration_slice
    monkeypatch.setenv("KCB_WIKITEXT", str(wikitext.wikitext_path().parent))
    _, record = calibration_slice()
    assert record["file_sha256"] == wikitext.SHA256 == perplexity.load_text()[1]
    # the same slice as before this locator (checked against the parent commit)
    assert record["byte_range"] == [0, 64695] and record["slice_sha256"].startswith("8bca573ba94c")


def _zip(path, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(wikitext.MEMBER, data)
    path.write_bytes(buf.getvalue())
    return path.as_uri()


def test_download_verifies_before_writing(tmp_path):
    real = wikitext.wikitext_path().read_bytes()
    out = wikitext.download(tmp_path / "ok", url=_zip(tmp_path / "ok.zip", real))
    assert out.read_bytes() == real
    with pytest.raises(wikitext.WikiTextError, match="expected"):
        wikitext.download(tmp_path / "bad", url=_zip(tmp_path / "bad.zip", real[:-1]))
    assert not (tmp_path / "bad").exists()
