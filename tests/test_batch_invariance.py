"""Issue 18: a fact's rank does not depend on the batch size, for every preset family.

Dense, pruned and weight-only quantized models compute each row apart: the packed KV-cache scorer
gives the same ranks at batch 1 and 64 (float rounding aside). Models whose quantizer takes a
statistic over the whole call (torch dynamic int8 and its scoped and combined presets, LLM.int8)
are scored as one call per prompt + candidate, each fact alone: the batch size changes nothing.

    pytest tests/test_batch_invariance.py -n 2
"""
import json

import pytest
import torch

from benchmarks.tiny import build
from compressors import PRESETS, BackendUnavailable, compress, get_preset, unavailable_reason
from probes.callscope import call_scoped
from probes.lama import score_subset

# Few facts (the call-scoped path runs many single calls), subjects of different lengths (padding
# on the padded paths), objects sharing first tokens (the trie opens several paths), and one
# relation with the slot mid-sentence (whole-sentence scoring).
SUBJECTS = ["Al", "Carla Maria Delgado", "Ed van der Berg", "Ivy"]
OBJECTS = ["Paris", "Parma", "Rome", "Ro", "Oslo", "Lima"]
RELATIONS = {"P19": "[X] was born in [Y] .", "P20": "[Y] is where [X] died ."}


def write_facts(root):
    (root / "TREx").mkdir(parents=True)
    (root / "relations.jsonl").write_text("".join(
        json.dumps({"relation": r, "template": t, "type": "N-1"}) + "\n" for r, t in RELATIONS.items()))
    for k, rel in enumerate(RELATIONS):
        with open(root / "TREx" / f"{rel}.jsonl", "w") as f:
            for i, s in enumerate(SUBJECTS):
                f.write(json.dumps({"sub_label": s, "obj_label": OBJECTS[(2 * i + k) % len(OBJECTS)],
                                    "uuid": f"{rel}-{i}"}) + "\n")
    return root


# One preset per method and per kind of quantization, and every combination.
CAUSAL = ["none", "sparse-50", "local-50", "ffn-20", "rows-20", "heads-25", "mag-2-4", "wanda-50",
          "sparsegpt-2-4", "int8-dyn", "dyn8-attn", "dyn8-ffn", "p20-dyn8", "p40-dyn8", "bnb-int8",
          "nf4-single", "fp4-double", "p20-nf4", "p40-nf4", "ao-w8only", "ao-w8a8", "quanto-w8",
          "quanto-w4", "gptq-w4"]
DEFAULT = [p.id for p in PRESETS.values() if p.default]
POLICY = {("causal", True): "per-sequence", ("causal", False): "packed-cache",
          ("seq2seq", True): "per-sequence", ("seq2seq", False): "padded-batch",
          ("masked", True): "per-sequence", ("masked", False): "padded-batch"}


def _compressed(family, preset, tmp_path, monkeypatch):
    reason = unavailable_reason(get_preset(preset))
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("KCB_CACHE", str(tmp_path / "cache"))   # calibrated methods cache here
    monkeypatch.chdir(tmp_path)                                # gptqmodel writes logs/ in the cwd
    width = 128 if preset.startswith("gptq") else 64           # 4-bit blocks of 64; GPTQ groups of 128
    model, tok = build(family, seed=3, width=width)
    try:
        model, _ = compress(model, preset, family, tokenizer=tok,
                            model_info={"id": f"tiny-{family}", "revision": f"test:w{width}s3"})
    except BackendUnavailable as exc:   # the method does not apply to this family (GPTQ: causal only)
        pytest.skip(str(exc))
    return model.eval(), tok


def _outcomes(result):
    return [(e["uid"], e["rank"], e["prediction"]) for e in result.examples]


@pytest.mark.parametrize("family,preset", [("causal", p) for p in CAUSAL]
                         + [(f, p) for f in ("masked", "seq2seq") for p in DEFAULT])
def test_ranks_are_the_same_at_batch_1_and_64(tmp_path, monkeypatch, family, preset):
    model, tok = _compressed(family, preset, tmp_path, monkeypatch)
    root = write_facts(tmp_path / "lama")
    one = score_subset(model, tok, family, root, "trex", batch_size=1)
    many = score_subset(model, tok, family, root, "trex", batch_size=64)
    assert _outcomes(one) == _outcomes(many)
    scoped = bool(call_scoped(model))
    assert scoped == (preset in ("int8-dyn", "dyn8-attn", "dyn8-ffn", "p20-dyn8", "p40-dyn8", "bnb-int8",
                                "ao-w8a8"))
    assert one.meta["scoring"]["policy"] == many.meta["scoring"]["policy"] == POLICY[family, scoped]
    assert (one.meta["scoring"]["batch_size"], many.meta["scoring"]["batch_size"]) == (1, 64)
    assert len(one.examples) == 2 * len(SUBJECTS)


@torch.no_grad()
def _seq2seq_alone(model, tok, root):
    """Every candidate in a call of its own: encoder input + <extra_id_0> candidate <extra_id_1>."""
    from probes.lama_data import load_subset
    sub = load_subset(root, "trex")
    o, c = tok.convert_tokens_to_ids("<extra_id_0>"), tok.convert_tokens_to_ids("<extra_id_1>")
    ranks = {}
    for fact in sub.facts:
        left, right = fact.text.split("[Y]")
        enc = torch.tensor([tok(left + "<extra_id_0>" + right)["input_ids"]])
        scores = []
        for cand in sub.candidates[fact.group]:
            tgt = [o] + tok(cand, add_special_tokens=False)["input_ids"] + [c]
            dec = torch.tensor([[model.config.decoder_start_token_id] + tgt[:-1]])
            logp = torch.log_softmax(model(input_ids=enc, decoder_input_ids=dec).logits[0].float(), -1)
            scores.append(sum(float(logp[j, tgt[j]]) for j in range(1, len(tgt))))
        gold = scores[sub.candidates[fact.group].index(fact.obj)]
        ranks[fact.uid] = 1 + sum(1 for s in scores if s > gold + 1e-5)
    return ranks


@pytest.mark.parametrize("preset", ["int8-dyn", "bnb-int8"])
def test_call_scoped_seq2seq_equals_one_call_per_candidate(tmp_path, monkeypatch, preset):
    model, tok = _compressed("seq2seq", preset, tmp_path, monkeypatch)
    root = write_facts(tmp_path / "lama")
    res = score_subset(model, tok, "seq2seq", root, "trex", batch_size=64)
    assert {e["uid"]: e["rank"] for e in res.examples} == _seq2seq_alone(model, tok, root)
