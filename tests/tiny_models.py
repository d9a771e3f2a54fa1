"""Tiny randomly initialised models, written as ordinary model files, for architecture tests.

Each builder writes a Hugging Face directory (config, safetensors weights, a word-level
``tokenizer.json``) or an ONNX file, exactly as a user's model would arrive, so the tests
go through the same loading code as real models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = "the a cat dog sat on mat ran fast slow good bad movie was is and then it very red blue".split()


def save_tokenizer(folder: Path, *, bert: bool) -> int:
    """A word-level tokenizer over :data:`WORDS`; returns the vocabulary size."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] if bert else ["<pad>", "<unk>", "<eos>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials[1]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
        fast = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
        )
    else:
        fast = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
        )
    fast.save_pretrained(str(folder))
    return len(vocab)


def tiny_gpt2(folder: Path) -> Path:
    vocab = save_tokenizer(folder, bert=False)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=64, n_embd=32, n_layer=3, n_head=4, eos_token_id=2, pad_token_id=0
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(str(folder))
    return folder


def tiny_gpt2_classifier(folder: Path) -> Path:
    """A decoder-style classifier whose config names no pad token (as GPT-2's does not)."""
    vocab = save_tokenizer(folder, bert=False)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4, num_labels=2)
    config.pad_token_id = None
    transformers.GPT2ForSequenceClassification(config).save_pretrained(str(folder))
    return folder


def tiny_opt(folder: Path) -> Path:
    """An architecture without a site mapping."""
    vocab = save_tokenizer(folder, bert=False)
    torch.manual_seed(0)
    config = transformers.OPTConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=64, word_embed_proj_dim=32, eos_token_id=2, pad_token_id=0, bos_token_id=2,
    )
    transformers.OPTForCausalLM(config).save_pretrained(str(folder))
    return folder


def tiny_bert_classifier(folder: Path) -> Path:
    vocab = save_tokenizer(folder, bert=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )
    transformers.BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder


def tiny_onnx(path: Path, *, batch: int | None = None, reshape: bool = False) -> Path:
    """A 3-4-2 ReLU network; ``batch`` fixes the declared batch dimension (as many exporters
    do); ``reshape`` adds a reshape to a constant ``[1, 3]``, so that only batch 1 runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w2, b2 = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["x0", "shape"], ["x"]) if reshape else helper.make_node("Identity", ["x0"], ["x"]),
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["o"]),
        helper.make_node("Add", ["o", "b2"], ["y"]),
    ]
    dim = batch if batch is not None else "n"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [dim, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, 2])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
        + [numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def reference_mlp(x: np.ndarray) -> np.ndarray:
    """What :func:`tiny_onnx` computes, in numpy."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w2, b2 = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2
