"""WikiText-2 test perplexity of a causal LM, by sliding window: the paper's "general metric".

    result = score(model, tokenizer, "causal", limit=None)       # the whole test set
    python -m probes.perplexity download DIR                      # fetch + verify wiki.test.raw

Method (the Hugging Face "Perplexity of fixed-length models" guide): the whole test file is one
token stream; windows of ``CONTEXT`` tokens start every ``STRIDE`` tokens, and each window scores
only the tokens the previous window did not (the last ``STRIDE``, the whole first window), so
every token is scored once with at least ``CONTEXT - STRIDE`` tokens of history (except at the
start). Where the tokenizer marks the start of a text with BOS (Gemma, Llama), every window
starts with BOS, as each of the model's training sequences did; its context then holds
``CONTEXT - 1`` text tokens. ``limit`` = the number of windows, taken from the start.

Metrics: token perplexity exp(NLL / tokens), and tokenizer-independent word perplexity and
bits per byte over the scored text (lm-eval's definitions; words = whitespace-separated).
Stderr: windows as clusters (ratio-estimator variance of the per-token NLL), delta method.

The file: ``$KCB_WIKITEXT`` (the file or its folder), else ``../shared/data/wikitext-2/wiki.test.raw``
beside the checkout; its sha256 is checked (probes/wikitext.py, shared with the calibration slice).
The published file has CRLF line ends (2,891 of them); they are read as LF.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import sys
from pathlib import Path

import torch

from probes.wikitext import WikiTextError, download, read_verified

VERSION = "perplexity-2"   # 2: records say how windows were run (meta "scoring"); numbers unchanged
CONTEXT = 1024       # tokens per window (GPT-2's context, the guide's choice; comparable across models)
STRIDE = 512         # new tokens scored per window (the guide's choice)
WORKLOAD, WORKLOAD_TOKENS = 16, 128   # the latency batch: 16 slices of 128 tokens


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_text(path: Path | None = None) -> tuple[str, str]:
    """(text, sha256) of the verified test file."""
    data, digest = read_verified(path)
    return data.decode("utf-8").replace("\r\n", "\n"), digest


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) token positions of each window over a stream of n_tokens."""
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + context, n_tokens)
        out.append((begin, end, prev_end))
        prev_end = end
        if end == n_tokens:
            break
    return out


def score(model, tokenizer, family, limit=None, context=CONTEXT, stride=STRIDE, text=None,
          batch_size=None):
    """Sliding-window perplexity; returns a ProbeResult (one example per window). Each window is
    one forward call of its own (batch 1, no padding, no attention mask, no cache), whatever
    ``batch_size`` asks (ignored: the record says batch 1): a window's score depends on no other
    window, for every model, including those whose quantizer takes a statistic over the whole
    call."""
    from probes.result import ProbeResult
    if family != "causal":
        raise WikiTextError(f"perplexity is defined here for causal LMs only, not {family}")
    checksum = None
    if text is None:
        text, checksum = load_text()
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    bos = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
    max_pos = getattr(model.config, "max_position_embeddings", None) or context
    context = min(context, max_pos)
    span = context - len(bos)           # text tokens per window
    stride = min(stride, span // 2)   # a model with a shorter context keeps half of it as history
    plan = windows(len(ids), span, stride)
    if limit is not None:
        plan = plan[:limit]
    dev = next(model.parameters()).device
    keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    was_training = model.training
    model.eval()
    examples, total_nll, total_tok = [], 0.0, 0
    with torch.inference_mode():
        for w, (begin, end, first) in enumerate(plan):
            inp = torch.tensor([bos + ids[begin:end]], device=dev)
            n_new = end - first                         # tokens scored in this window
            # predictions for positions first..end-1 come from the logits one step earlier
            n_scored = n_new if (bos or first > begin) else n_new - 1
            if n_scored < 1:
                continue
            kwargs = {"logits_to_keep": n_scored + 1} if keep else {}
            logits = model(input_ids=inp, **kwargs).logits[0, -(n_scored + 1):-1].float()
            target = inp[0, -n_scored:]
            nll = float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            a = offsets[end - n_scored][0]
            b = offsets[end - 1][1]
            examples.append({"uid": f"window:{w}", "group": "wikitext-2", "nll": round(nll, 4),
                             "tokens": n_scored, "begin": begin, "end": end,
                             "chars": [a, b], "text": text[a:min(b, a + 120)]})
            total_nll += nll
            total_tok += n_scored
    model.train(was_training)
    if not total_tok:
        raise WikiTextError("no tokens were scored: the text is shorter than two tokens")
    # the scored text: from the first scored token's start to the last one's end
    scored = text[examples[0]["chars"][0]:examples[-1]["chars"][1]]
    n_words = len(scored.split())
    n_bytes = len(scored.encode("utf-8"))
    mean = total_nll / total_tok
    # windows as clusters: variance of the ratio estimator sum(nll) / sum(tokens)
    k = len(examples)
    var = (k / (k - 1)) * sum((e["nll"] - mean * e["tokens"]) ** 2 for e in examples) \
        / total_tok ** 2 if k > 1 else 0.0
    se = math.sqrt(var)
    ppl = math.exp(mean)
    word_ppl = math.exp(total_nll / n_words)
    bpb = total_nll / (n_bytes * math.log(2))
    metrics = {
        "perplexity": {"value": ppl, "stderr": ppl * se, "higher_is_better": False},
        "word_perplexity": {"value": word_ppl, "stderr": word_ppl * se * total_tok / n_words,
                            "higher_is_better": False},
        "bits_per_byte": {"value": bpb, "stderr": se * total_tok / (n_bytes * math.log(2)),
                          "higher_is_better": False},
        "nll_per_token": {"value": mean, "stderr": se, "higher_is_better": False},
    }
    meta = {"version": VERSION, "data": "WikiText-2 (raw) test, wiki.test.raw",
            "data_checksum": f"sha256:{checksum}" if checksum else "sha256:" + _sha256(text.encode()),
            "context": context, "stride": stride, "bos_per_window": bool(bos),
            "windows": k, "windows_in_text": len(windows(len(ids), span, stride)),
            "tokens_scored": total_tok, "tokens_in_text": len(ids), "words_scored": n_words,
            "bytes_scored": n_bytes, "complete": k == len(windows(len(ids), span, stride)),
            "limit_rule": "the first N windows of the test file",
            "method": "sliding window (HF perplexity guide), every token scored once",
            "scoring": scoring_meta(model)}
    slices = [ids[i * WORKLOAD_TOKENS:(i + 1) * WORKLOAD_TOKENS] for i in range(WORKLOAD)]
    workload = [tokenizer.decode(s) for s in slices if s]
    return ProbeResult(metrics, {"wikitext-2": {"n": k, "perplexity": ppl}}, examples, k, meta,
                       workload=workload)


def scoring_meta(model) -> dict:
    from probes.result import run_fields
    return {"batch_size": 1, "policy": "one window per call", "padding_side": "none",
            **run_fields(model),
            "exact": "each window is one call (batch 1, no padding, no cache): independent of "
                     "batch size and of the other windows"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "download":
        print("usage: python -m probes.perplexity download DIR   (then KCB_WIKITEXT=DIR)")
        return 2
    print(download(Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
