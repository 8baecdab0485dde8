"""A knowledge testbed: small models of each family trained in code to know synthetic facts
(probes/testbed_data.py makes the facts).

    model, tok = trained_model("causal")       # trained once, then loaded from the cache
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path

from probes import storage
from probes.testbed_data import (RELATIONS, VERSION, Corpus, corpus,  # noqa: F401 (re-exported)
                                 training_sentences, write_corpus)


# ------------------------------------------------------------------------------- training
CONFIG = {"width": 128, "layers": 2, "dropout": 0.0, "lr": 1e-3, "lr_seq2seq": 1e-3, "batch": 32, "max_epochs": 300,
          "target_p_at_1": 0.95, "check_every": 10}


def _batches(c: Corpus, tok, family: str, rng: random.Random, batch: int):
    """Token batches for one epoch, as each family was pretrained."""
    import torch
    items = training_sentences(c)
    rng.shuffle(items)
    pad = tok.pad_token_id
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        if family == "causal":
            # Loss on the object only: the names are random, and their entropy would swamp it.
            enc = [tok(t.replace("[Y]", o))["input_ids"] for t, o in chunk]
            ids = torch.full((len(enc), max(map(len, enc))), pad)
            labels = torch.full_like(ids, -100)
            for i, (e, (t, o)) in enumerate(zip(enc, chunk)):
                ids[i, :len(e)] = torch.tensor(e)
                at = len(tok(t.split("[Y]")[0].rstrip())["input_ids"])   # the object's position
                labels[i, at] = tok.convert_tokens_to_ids(o)
            yield {"input_ids": ids, "attention_mask": (ids != pad).long(), "labels": labels}
        elif family == "masked":
            enc = [tok(t.replace("[Y]", tok.mask_token))["input_ids"] for t, _ in chunk]
            ids = torch.full((len(enc), max(map(len, enc))), pad)
            labels = torch.full_like(ids, -100)
            for i, (e, (_, o)) in enumerate(zip(enc, chunk)):
                ids[i, :len(e)] = torch.tensor(e)
                labels[i, e.index(tok.mask_token_id)] = tok.convert_tokens_to_ids(o)
            yield {"input_ids": ids, "attention_mask": (ids != pad).long(), "labels": labels}
        else:   # seq2seq: T5 span corruption with the object as the one corrupted span
            enc = [tok(t.replace("[Y]", "<extra_id_0>"))["input_ids"] for t, _ in chunk]
            tgt = [tok(f"<extra_id_0> {o} <extra_id_1>", add_special_tokens=False)["input_ids"]
                   for _, o in chunk]
            ids = torch.full((len(enc), max(map(len, enc))), pad)
            labels = torch.full((len(tgt), max(map(len, tgt))), -100)
            for i, (e, t) in enumerate(zip(enc, tgt)):
                ids[i, :len(e)] = torch.tensor(e)
                labels[i, :len(t)] = torch.tensor(t)
            yield {"input_ids": ids, "attention_mask": (ids != pad).long(), "labels": labels}


def train(family: str, c: Corpus, progress=True):
    """Train a small model of ``family`` until it answers the trained facts (probe P@1 >= target)."""
    import torch
    from benchmarks.tiny import build
    from probes.lama import score_subset
    data = write_corpus(c)
    torch.manual_seed(c.seed)
    # No dropout: the point is memorisation, and dropout only slows it for models this small.
    model, tok = build(family, words=c.words(), seed=c.seed, width=CONFIG["width"],
                       layers=CONFIG["layers"], dropout=CONFIG["dropout"])
    # T5 from scratch needs a larger step to bind subjects to sentinel spans in time.
    lr = CONFIG["lr_seq2seq"] if family == "seq2seq" else CONFIG["lr"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(c.seed)
    start, p1, epoch = time.perf_counter(), 0.0, 0
    for epoch in range(1, CONFIG["max_epochs"] + 1):
        model.train()
        for batch in _batches(c, tok, family, rng, CONFIG["batch"]):
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % CONFIG["check_every"] == 0:
            model.eval()
            p1 = score_subset(model, tok, family, data / "trained", "trex").metrics["p_at_1"]["value"]
            if progress:   # the real terminal: pytest captures stdout
                print(f"  training testbed-{family}: epoch {epoch}, loss {loss.item():.3f}, "
                      f"trained P@1 {p1:.3f}", file=sys.__stderr__, flush=True)
            if p1 >= CONFIG["target_p_at_1"]:
                break
    model.eval()
    if p1 < CONFIG["target_p_at_1"]:
        raise RuntimeError(f"testbed-{family} reached only P@1 {p1:.3f} on its trained facts after "
                           f"{epoch} epochs (target {CONFIG['target_p_at_1']}): not a testbed")
    return model, tok, {"epochs": epoch, "train_seconds": round(time.perf_counter() - start, 1),
                        "trained_p_at_1": p1}


def model_key(family: str, c: Corpus | None = None) -> str:
    """The cache key of a trained testbed model: its corpus and training configuration."""
    return hashlib.sha256(json.dumps([(c or corpus()).key, family, CONFIG]).encode()).hexdigest()[:16]


def trained_model(family: str, c: Corpus | None = None):
    """The trained testbed model of ``family``: from the cache, or trained now and cached."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM
    from transformers import PreTrainedTokenizerFast
    c = c or corpus()
    key = model_key(family, c)
    folder = storage.cache_root() / "testbed" / c.key / f"{family}-{key}"

    def build(tmp: Path) -> None:
        model, tok, info = train(family, c)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "train.json").write_text(json.dumps(info))
    storage.entry(folder, build)   # trained once per machine; a truncated model is retrained
    cls = {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM,
           "seq2seq": AutoModelForSeq2SeqLM}[family]
    model = cls.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    return model, tok, json.loads((folder / "train.json").read_text()), key
