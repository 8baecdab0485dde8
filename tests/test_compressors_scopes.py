"""The attention / feed-forward / final-dense mapping of compressors/scopes.py, on small models of
all eight architectures built from transformers config classes (random weights)."""
import pytest
import torch

from compressors import compress
from compressors.measure import linear_modules, sparsity
from compressors.scopes import MAPPING, architecture, group_of, scoped_linears

LAYERS, HEADS = 2, 4


_BUILT: dict = {}


def build_arch(arch: str, width: int = 32, seed: int = 0):
    """(model, family) of ``arch`` with 2 layers, 4 heads, width 32 (8-dim heads), vocab 100;
    a fresh copy of a model built once per session (building is the slow part)."""
    import copy
    key = (arch, width, seed)
    if key not in _BUILT:
        _BUILT[key] = _build(arch, width, seed)
    model, family = _BUILT[key]
    return copy.deepcopy(model), family


def _build(arch: str, width: int, seed: int):
    import transformers as t
    torch.manual_seed(seed)
    v, ff = 100, 2 * width
    if arch in ("bert", "roberta"):
        cfg_cls, cls = ((t.BertConfig, t.BertForMaskedLM) if arch == "bert"
                        else (t.RobertaConfig, t.RobertaForMaskedLM))
        model = cls(cfg_cls(vocab_size=v, hidden_size=width, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, intermediate_size=ff,
                            max_position_embeddings=64, pad_token_id=1))
        family = "masked"
    elif arch == "distilbert":
        model = t.DistilBertForMaskedLM(t.DistilBertConfig(
            vocab_size=v, dim=width, n_layers=LAYERS, n_heads=HEADS, hidden_dim=ff,
            max_position_embeddings=64))
        family = "masked"
    elif arch == "albert":
        model = t.AlbertForMaskedLM(t.AlbertConfig(
            vocab_size=v, embedding_size=16, hidden_size=width, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, intermediate_size=ff, max_position_embeddings=64))
        family = "masked"
    elif arch == "t5":
        model = t.T5ForConditionalGeneration(t.T5Config(
            vocab_size=v, d_model=width, d_ff=ff, d_kv=width // HEADS, num_layers=LAYERS,
            num_heads=HEADS, decoder_start_token_id=0, pad_token_id=0))
        family = "seq2seq"
    elif arch == "gpt2":
        model = t.GPT2LMHeadModel(t.GPT2Config(vocab_size=v, n_embd=width, n_layer=LAYERS,
                                               n_head=HEADS, n_positions=64))
        family = "causal"
    elif arch == "llama":
        model = t.LlamaForCausalLM(t.LlamaConfig(
            vocab_size=v, hidden_size=width, intermediate_size=ff, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=64))
        family = "causal"
    elif arch == "gemma3":
        model = t.Gemma3ForCausalLM(t.Gemma3TextConfig(
            vocab_size=v, hidden_size=width, intermediate_size=ff, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=2, head_dim=width // HEADS,
            max_position_embeddings=64, sliding_window=16))
        family = "causal"
    else:
        raise ValueError(arch)
    return model.eval(), family


def logits(model, family, seed: int = 1):
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(seed))
    kw = {"decoder_input_ids": ids[:, :6]} if family == "seq2seq" else {}
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits


def sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB, as torchao's tests define it."""
    return float(20 * torch.log10(ref.norm() / (ref - out).norm()))


ARCHS = ["bert", "roberta", "distilbert", "albert", "t5", "gpt2", "llama", "gemma3"]
# Per layer: attention projections, feed-forward linears. T5 has self- and cross-attention in the
# decoder and a 2-layer encoder + 2-layer decoder; GPT-2 fuses q, k, v into c_attn; ALBERT shares
# one layer's weights across depth (one set of modules).
EXPECTED = {"bert": (8, 4), "roberta": (8, 4), "distilbert": (8, 4), "albert": (4, 2),
            "t5": (8 + 16, 4 + 4), "gpt2": (4, 4), "llama": (8, 6), "gemma3": (8, 6)}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_block_linear_is_in_one_group_and_counts_match(arch):
    model, _ = build_arch(arch)
    assert architecture(model) == arch
    attn, ffn = scoped_linears(model, "attention"), scoped_linears(model, "ffn")
    assert (len(attn), len(ffn)) == EXPECTED[arch]
    assert not set(attn) & set(ffn)
    final = scoped_linears(model, "final-dense")
    n_blocks = 1 if arch == "albert" else (2 * LAYERS if arch == "t5" else LAYERS)
    assert len(final) == n_blocks and set(final) <= set(ffn)
    # what is in neither group is a head-side transform or a pooler, never a block projection
    rest = [n for n in linear_modules(model) if group_of(n, arch) is None]
    assert all(any(w in n for w in ("pooler", "predictions", "lm_head", "vocab", "cls",
                                    "embedding_hidden_mapping")) for n in rest), rest


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset,scope", [("attn-50", "attention"), ("ffn-50", "ffn"),
                                          ("fdense-50", "final-dense")])
def test_scoped_pruning_touches_only_its_scope(arch, preset, scope):
    model, family = build_arch(arch)
    _, effect = compress(model, preset, family)
    inside = scoped_linears(model, scope)
    outside = {n: m for n, m in linear_modules(model).items() if n not in inside}
    assert sparsity(inside)[0] == pytest.approx(0.5, abs=0.01)
    assert sparsity(outside)[0] == 0.0
    assert effect["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert effect["sparsity_by_scope"][scope if scope != "final-dense" else "ffn"] > 0.1
    assert torch.isfinite(logits(model, family)).all()


def test_unknown_architecture_is_refused_with_the_fix():
    class NoConfig(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
    from compressors import CompressionError
    with pytest.raises(CompressionError, match="add it to compressors/scopes.py"):
        compress(NoConfig(), "attn-50", "causal")


def test_mapping_covers_the_eight_architectures():
    assert set(ARCHS) <= set(MAPPING)
