"""Test doubles and fixtures data: fake models with a fixed preference, tiny LAMA folders."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parent.parent


class _Fixed(torch.nn.Module):
    """Every position predicts the same distribution: softmax(bias)."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        self.config = SimpleNamespace(decoder_start_token_id=0)

    def _logits(self, ids):
        return self.bias.expand(ids.shape[0], ids.shape[1], -1)


class FakeCausal(_Fixed):
    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self._logits(input_ids))


class FakeMasked(FakeCausal):
    pass


class FakeSeq2Seq(_Fixed):
    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, **_):
        return SimpleNamespace(logits=self._logits(decoder_input_ids))


FAKES = {"causal": FakeCausal, "masked": FakeMasked, "seq2seq": FakeSeq2Seq}


def write_lama(root: Path, facts: list[tuple[str, str]], template="[X] was born in [Y] .",
               relation="P19") -> Path:
    """A minimal LAMA folder: relations.jsonl and TREx/<relation>.jsonl with (subject, object)."""
    (root / "TREx").mkdir(parents=True, exist_ok=True)
    (root / "relations.jsonl").write_text(json.dumps(
        {"relation": relation, "template": template, "type": "N-1"}) + "\n")
    with open(root / "TREx" / f"{relation}.jsonl", "w") as f:
        for i, (s, o) in enumerate(facts):
            f.write(json.dumps({"sub_label": s, "obj_label": o, "uuid": f"u{i}"}) + "\n")
    return root


def shared_lama() -> Path:
    import os
    path = Path(os.environ.get("KCB_LAMA_DIR", REPO.parent / "shared" / "data" / "lama"))
    if not (path / "relations.jsonl").is_file():
        raise RuntimeError(f"LAMA data not found at {path}: set KCB_LAMA_DIR to the LAMA folder")
    return path


def fast_testbed_train(family, c, progress=True):
    """Stands in for benchmarks.testbed.train where a test is about the cache, not the training:
    the untrained (seeded, so deterministic) model of ``family``, in milliseconds."""
    from benchmarks.tiny import build
    model, tok = build(family, words=c.words(), seed=c.seed, width=16, layers=1, dropout=0.0)
    return model.eval(), tok, {"epochs": 0, "train_seconds": 0.0, "trained_p_at_1": 0.0}


def state_digest(model) -> str:
    """sha256 of a model's weights (names and bytes), to compare models across processes."""
    import hashlib
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode() + t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def json_paths(obj, prefix=()):
    """Every path (tuple of keys and indices) into nested dicts and lists, for mutation tests."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += json_paths(v, prefix + (i,))
    return out
