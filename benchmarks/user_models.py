"""Any model, without editing code: ``--models`` also takes a hub id, a folder or a GGUF file.

    spec = resolve("./my-model")                 # local folder holding a transformers model
    spec = resolve("HuggingFaceTB/SmolLM2-360M@main")   # hub id (local cache or the hub)
    spec = resolve("bert-ft=./out/checkpoint-500")      # NAME=REF: the case-id part chosen by you

Family (masked, seq2seq, causal) and the architecture mark (``model_type``) come from the
model's config; the case-id part is derived from the folder, file or hub name (ids.sanitise) and
shown in the run's header. The same safety rules as the registry's hub models apply: safetensors
only (pickled weights are refused unless KCB_ALLOW_PICKLE=1, and then load with
weights_only=True), no remote code unless ``--trust-remote-code``. Sources: ``hub`` (as the
registered hub models), ``local`` (a folder) and ``gguf`` (a .gguf file, dequantized to fp32).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from benchmarks.ids import IdError, check_part, sanitise
from benchmarks.models import (_HUB, MODELS, ModelSpec, UnsafeCheckpoint, pickled_checkpoints,
                               register_source)
from probes import storage

SOURCES = ("local", "gguf")          # user sources this module loads (hub goes through models.py)
KEYWORDS = ("default", "tiny", "testbed", "all")
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
FAMILY_SUFFIXES = (("ForMaskedLM", "masked"), ("ForConditionalGeneration", None),
                   ("ForCausalLM", "causal"), ("LMHeadModel", "causal"))


class UserModelError(ValueError):
    """A --models entry that cannot be used; the message names the entry and the fix."""


def looks_like_user_model(token: str) -> bool:
    """Not a registered id: a path (exists, or is written as one), a .gguf name or a hub id."""
    ref = token.split("=", 1)[1] if _named(token) else token
    return (Path(ref).expanduser().exists() or ref.startswith((".", "/", "~"))
            or ref.endswith(".gguf") or bool(HUB_ID.match(ref)))


def _named(token: str) -> bool:
    return "=" in token and bool(re.match(r"^[a-z0-9][a-z0-9.-]*=", token))


def family_of(config) -> str:
    """masked | seq2seq | causal from a transformers config: the head class it was saved with
    (``architectures``), else the only auto-class mapping its ``model_type`` appears in."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
                                                        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)
    enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    for arch in getattr(config, "architectures", None) or []:
        for suffix, fam in FAMILY_SUFFIXES:
            if arch.endswith(suffix):
                return fam or ("seq2seq" if enc_dec else "causal")
    mt = getattr(config, "model_type", None)
    maps = {"masked": MODEL_FOR_MASKED_LM_MAPPING_NAMES, "causal": MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            "seq2seq": MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES}
    found = [f for f, m in maps.items() if mt in m]
    if enc_dec and "seq2seq" in found:
        return "seq2seq"
    if len(found) == 1:
        return found[0]
    raise UserModelError(
        f"cannot tell the family of a {mt!r} model (architectures {getattr(config, 'architectures', None)}, "
        f"{'several' if found else 'no'} language-model heads for it: {found}); save it with its LM "
        "head class (e.g. AutoModelForCausalLM(...).save_pretrained) so config.json names it")


def arch_mark(config) -> str:
    """The architecture mark: ``model_type`` as transformers spells it (e.g. llama, gemma3_text)."""
    mt = str(getattr(config, "model_type", "") or "unknown").lower()
    return re.sub(r"[^a-z0-9_]+", "_", mt)


@functools.lru_cache(maxsize=None)
def fingerprint(path: str) -> str:
    """The ``revision`` of a local model or checkpoint (records, --resume, caches): sha256 of a
    file's bytes (a GGUF's published checksum), or over a folder's config and weight files (name
    and bytes)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(
        f for f in p.iterdir() if f.name == "config.json" or f.suffix in (".safetensors", ".gguf"))
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def weight_files(folder: Path) -> list[Path]:
    """The folder's safetensors; pickled-only weights are refused (models.UnsafeCheckpoint)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = pickled_checkpoints(str(folder))
        if pickled and os.environ.get("KCB_ALLOW_PICKLE") != "1":
            raise UnsafeCheckpoint(
                f"{folder} has only pickled weights ({pickled[0].name}); pickle files can run code "
                "when loaded, so they are refused. Convert them to safetensors, or set "
                "KCB_ALLOW_PICKLE=1 to load them with torch.load(weights_only=True).")
        if not pickled:
            raise UserModelError(f"{folder} holds no weights (*.safetensors)")
    return files


def _config(ref: str, revision: str | None, trust: bool):
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(ref, revision=revision, trust_remote_code=trust)
    except ValueError as exc:   # an unknown model_type without --trust-remote-code
        raise UserModelError(f"{ref}: {exc}") from None
    except OSError as exc:
        raise UserModelError(f"{ref}: no config.json found ({type(exc).__name__}); for a hub id "
                             f"the model must be in the Hugging Face cache or the hub reachable: "
                             f"{_HUB.format(ref)}") from None


@functools.lru_cache(maxsize=None)
def gguf_config(path: str):
    """The transformers config a GGUF file's metadata describes (no tensors are read)."""
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    cfg = dict(load_gguf_checkpoint(path, return_tensors=False)["config"])
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


@functools.lru_cache(maxsize=None)
def config_of(spec: ModelSpec):
    """The transformers config of a model given by path or hub id (for pairing checkpoints)."""
    if spec.source == "gguf":
        return gguf_config(spec.ref)
    return _config(spec.ref, spec.revision, spec.trust_remote_code)


def resolve(token: str, trust_remote_code: bool = False) -> ModelSpec:
    """A --models entry that is not a registered id -> its ModelSpec (not yet loaded)."""
    name, ref = token.split("=", 1) if _named(token) else (None, token)
    path = Path(ref).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.suffix != ".gguf":
                raise UserModelError(f"{token}: a model file must be a .gguf; for a transformers "
                                     "model give its folder (with config.json)")
            config, source, ref = gguf_config(str(path)), "gguf", str(path)
            derived, baseline = path.stem, f"{path.name}, GGUF dequantized to fp32"
        else:
            if not (path / "config.json").is_file():
                raise UserModelError(f"{token}: {path} has no config.json: not a transformers model "
                                     "folder (save it with save_pretrained)")
            weight_files(path)
            config, source, ref = _config(str(path), None, trust_remote_code), "local", str(path)
            derived, baseline = path.name, f"{path} as saved (fp32)"
        revision = None
    elif HUB_ID.match(ref):
        m = HUB_ID.match(ref)
        repo, revision = m["repo"], m["rev"]
        known = [s.id for s in MODELS.values() if s.ref == repo and revision is None]
        if known and name is None:
            return MODELS[known[0]]   # a registered model's hub id: the registered entry
        config, source = _config(repo, revision, trust_remote_code), "hub"
        ref, derived = repo, repo.split("/", 1)[1] + (f"-{revision}" if revision else "")
        baseline = f"{repo}{'@' + revision if revision else ''} as published (fp32)"
    else:
        raise UserModelError(f"{token}: no such file or folder, and not a hub id (org/name[@revision])")
    try:
        mid = check_part(name, "model name") if name else sanitise(derived)
    except IdError as exc:
        raise UserModelError(f"{token}: {exc}") from None
    if mid in MODELS or mid in KEYWORDS:
        raise UserModelError(f"{token}: its id {mid!r} is already a registered model id or keyword; "
                             f"name it yourself: --models NAME={ref}")
    return ModelSpec(mid, family_of(config), arch_mark(config), source, ref, baseline,
                     revision=revision, install=_HUB.format(ref) if source == "hub" else "",
                     trust_remote_code=trust_remote_code)


def revision(spec: ModelSpec) -> str:
    return fingerprint(spec.ref)


def load(spec: ModelSpec, where: dict):
    """(model, tokenizer, revision) of a ``local`` folder or a ``gguf`` file. A .gguf is converted
    once to a safetensors folder in the cache (keyed by its sha256), then loaded from there."""
    from benchmarks.models import _load_hub, gguf_to_safetensors
    if spec.source == "local":
        model, tok = _load_hub(spec, where)
        return model, tok, revision(spec)
    rev = revision(spec)
    folder = storage.cache_root() / "converted" / f"{spec.id}-{rev.split(':')[-1][:16]}"
    storage.entry(folder, lambda tmp: gguf_to_safetensors(Path(spec.ref), tmp, spec.family))
    local = ModelSpec(spec.id, spec.family, spec.arch, "local", str(folder), spec.baseline)
    model, tok = _load_hub(local, where)
    return model, tok, rev


register_source("local", load, revision)
register_source("gguf", load, revision)
