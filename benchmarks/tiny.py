"""Tiny models of every family, built in code with a tokenizer built in code (no downloads).

    model, tokenizer = build("masked")          # BertForMaskedLM, 2 layers, width 32
    model, tokenizer = build("causal", words=["Paris", "Rome"])   # those words are one token

The tokenizer is WordPiece over single characters (and "##" continuations), plus any whole
words given: words outside the list split into characters, so every object is scorable and
multi-token objects are exercised. Specials cover all three families (mask, T5 sentinels).
"""
from __future__ import annotations

import string

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<mask>", "<extra_id_0>", "<extra_id_1>"]
_CHARS = string.ascii_letters + string.digits + string.punctuation + "".join(
    chr(c) for c in range(0xC0, 0x180))


def tokenizer(words=(), family: str = "masked"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    vocab: dict[str, int] = {}
    for tok in [*SPECIALS, *_CHARS, *("##" + c for c in _CHARS), *words]:
        vocab.setdefault(tok, len(vocab))
    core = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=64))
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    # A causal prompt must end where the continuation starts: BOS only. Encoders get BOS/EOS.
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A" if family == "causal" else "<s> $A </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
        eos_token="</s>", mask_token="<mask>",
        additional_special_tokens=["<extra_id_0>", "<extra_id_1>"])


def build(family: str, words=(), seed: int = 0, width: int = 32, layers: int = 2,
          dropout: float = 0.1):
    """A freshly initialised (seeded) model of ``family`` and its tokenizer."""
    import torch
    from transformers import (BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM,
                              T5Config, T5ForConditionalGeneration)
    tok = tokenizer(words, family)
    torch.manual_seed(seed)
    v = len(tok)
    if family == "masked":
        model = BertForMaskedLM(BertConfig(
            vocab_size=v, hidden_size=width, num_hidden_layers=layers, num_attention_heads=2,
            intermediate_size=2 * width, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))
    elif family == "seq2seq":
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=v, d_model=width, d_ff=2 * width, d_kv=width // 2, num_layers=layers,
            num_heads=2, dropout_rate=dropout, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id))
    elif family == "causal":
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=v, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, tie_word_embeddings=True))
    else:
        raise ValueError(f"unknown family {family!r}; known: masked, seq2seq, causal")
    return model.eval(), tok
