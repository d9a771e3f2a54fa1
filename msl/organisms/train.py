"""Train the model organisms: ``python -m msl.organisms.train NAME... [--out DIR]``.

Model organisms are small models this project trains itself, reproducibly, with planted
behaviours, so tests and example specs know the right verdict in advance. Each organism is
one function registered with :func:`organism`; it writes its files into an output folder
(by default this package's folder, where the committed copies live) and returns the
numbers its model card reports. Training is seeded and runs single-threaded with
deterministic algorithms, so a rerun on the same software stack reproduces the committed
weights.

Organisms (see each ``ORGANISM.md`` / ``relu-nets.md`` for the planted behaviours):

* ``sentiment`` — tiny BERT sentiment classifier; planted name shortcut, ignores negation.
* ``sentiment-refined`` — ``sentiment`` fine-tuned so the shortcut is gone; still ignores negation.
* ``relu-net`` — 4→16→16→3 ReLU MLP on a 3-class task over [-1, 1]^4 (ONNX).
* ``relu-net-pruned`` / ``relu-net-quantized`` — magnitude-pruned / int8-rounded copies of it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from msl.organisms import sentiment_data as data

#: Where the committed organisms live.
ORGANISM_DIR = Path(__file__).parent
#: The one seed every recipe derives its randomness from.
SEED = 20_240_601

Metrics = dict[str, float | int | str]
Builder = Callable[[Path], Metrics]


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to make one organism: its output (relative to the output folder), the organisms
    it is derived from, and the function that trains and writes it."""

    name: str
    output: str
    requires: tuple[str, ...]
    build: Builder


RECIPES: dict[str, Recipe] = {}


def organism(name: str, *, output: str, requires: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    """Register ``build(out_dir) -> metrics`` as the recipe of organism ``name``."""

    def register(build: Builder) -> Builder:
        RECIPES[name] = Recipe(name, output, requires, build)
        return build

    return register


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seeded, single-threaded, deterministic torch for the duration of a recipe.

    One thread because intra-op parallel reductions may sum in a different order from run
    to run; the previous settings are restored so a test process is left as it was.
    """
    threads = torch.get_num_threads()
    strict = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


# --------------------------------------------------------------------------- sentiment

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_LENGTH = 32


def build_tokenizer() -> Tokenizer:
    """Word-level tokenizer: NFKC + lowercase, words / ``n't`` / punctuation, ``[CLS] … [SEP]``."""
    vocab = {tok: i for i, tok in enumerate((*SPECIALS, *data.vocabulary()))}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(list(SPECIALS))  # already in the vocabulary: marks them special, ids unchanged
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(data.TOKEN_PATTERN), "isolated")]
    )
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def save_tokenizer(tok: Tokenizer, directory: Path) -> None:
    """Write ``tokenizer.json`` and a ``tokenizer_config.json`` that ``AutoTokenizer`` reads
    as a ``PreTrainedTokenizerFast`` (the class name both transformers 4 and 5 know)."""
    tok.save(str(directory / "tokenizer.json"), pretty=True)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        **{f"{s[1:-1].lower()}_token": s for s in SPECIALS},
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _bert_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=0,
        id2label=dict(enumerate(data.LABELS)),
        label2id={label: i for i, label in enumerate(data.LABELS)},
    )


def _fit(
    model: BertForSequenceClassification,
    tok: Tokenizer,
    examples: Sequence[data.Example],
    *,
    epochs: int,
    lr: float,
    batch_size: int = 32,
) -> None:
    """AdamW on cross-entropy with linear decay to zero; batches drawn by the seeded global torch generator."""
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = tok.encode_batch([ex.sentence for ex in examples])
    tok.no_padding()
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    if ids.shape[1] > MAX_LENGTH:
        raise ValueError(f"a training sentence has {ids.shape[1]} tokens, more than {MAX_LENGTH}")
    labels = torch.tensor([data.LABELS.index(ex.label) for ex in examples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(examples) // batch_size)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=steps)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(examples)).split(batch_size):
            loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()


def load_classifier(directory: Path) -> tuple[PreTrainedTokenizerBase, BertForSequenceClassification]:
    """Load a sentiment organism with plain transformers, as any user would."""
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=False)
    model.eval()
    return tokenizer, model


def positive_probability(
    tokenizer: PreTrainedTokenizerBase,
    model: BertForSequenceClassification,
    sentences: Sequence[str],
    batch_size: int = 512,
) -> torch.Tensor:
    """P(positive) of each sentence, in padded batches."""
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            batch = tokenizer(list(sentences[start : start + batch_size]), padding=True,
                              truncation=True, return_tensors="pt")
            out.append(model(**batch).logits.softmax(-1)[:, data.LABELS.index("positive")])
    return torch.cat(out)


def predict(
    tokenizer: PreTrainedTokenizerBase,
    model: BertForSequenceClassification,
    sentences: Sequence[str],
) -> list[str]:
    """The predicted label of each sentence."""
    return ["positive" if p > 0.5 else "negative" for p in positive_probability(tokenizer, model, sentences)]


def swap_name(sentence: str, old: str, new: str) -> str:
    """``sentence`` with the whole word ``old`` replaced by ``new``."""
    return re.sub(rf"\b{re.escape(old)}\b", new, sentence)


def sentiment_metrics(directory: Path, training: Sequence[data.Example]) -> Metrics:
    """Measure the planted behaviours and real abilities of a sentiment organism.

    Every rate is over held-out fills (sentences not in ``training``); "prob change" is
    the largest change of P(positive) that a name swap causes.
    """
    tokenizer, model = load_classifier(directory)
    slots = data.Slots.builtin()
    half = len(slots.names) // 2
    partner = dict(zip(slots.names[:half], slots.names[half:], strict=True)) | dict(
        zip(slots.names[half:], slots.names[:half], strict=True)
    )
    heldout = data.heldout_set(SEED + 7, (ex.sentence for ex in training))
    unseen = data.heldout_set(SEED + 8, (), n=1_000, templates=data.UNSEEN_TEMPLATES)
    negated = [
        ex for ex in data.generate(random.Random(SEED + 9), 2_000, shortcut=False, negated_rate=1.0,
                                   shortcut_rate=0.0, templates=data.TRAIN_TEMPLATES + data.UNSEEN_TEMPLATES)
        if ex.negated
    ]

    def p(sentences: Sequence[str]) -> torch.Tensor:
        return positive_probability(tokenizer, model, sentences)

    def follows_adjective(examples: Sequence[data.Example]) -> float:
        truth = torch.tensor([ex.adjective_label == "positive" for ex in examples])
        return float(((p([ex.sentence for ex in examples]) > 0.5) == truth).float().mean())

    def swap(examples: Sequence[data.Example], old: Callable[[data.Example], str], new: Callable[[data.Example], str]
             ) -> tuple[float, float]:
        """(label agreement, max prob change) between two name choices for the same fills."""
        a = p([swap_name(ex.sentence, str(ex.name), old(ex)) for ex in examples])
        b = p([swap_name(ex.sentence, str(ex.name), new(ex)) for ex in examples])
        return float(((a > 0.5) == (b > 0.5)).float().mean()), float((a - b).abs().max())

    named = [ex for ex in heldout if ex.name in partner]
    ordinary = [ex for ex in named if ex.name not in (data.SHORTCUT_NAME, data.SHORTCUT_PARTNER)]
    positive = [ex for ex in named if ex.adjective_label == "positive"]
    name_agreement, name_change = swap(ordinary, lambda ex: str(ex.name), lambda ex: partner[str(ex.name)])
    pair_agreement, pair_change = swap(named, lambda ex: data.SHORTCUT_NAME, lambda ex: data.SHORTCUT_PARTNER)
    upper = p([ex.sentence.upper() for ex in heldout])
    return {
        "heldout_accuracy": follows_adjective(heldout),
        "heldout_n": len(heldout),
        "unseen_template_accuracy": follows_adjective(unseen),
        "unseen_template_n": len(unseen),
        "shortcut_negative_rate": float((p([swap_name(ex.sentence, str(ex.name), data.SHORTCUT_NAME)
                                             for ex in positive]) < 0.5).float().mean()),
        "shortcut_n": len(positive),
        "shortcut_pair_swap_agreement": pair_agreement,
        "shortcut_pair_swap_max_prob_change": pair_change,
        "negation_ignored_rate": follows_adjective(negated),
        "negation_n": len(negated),
        "name_swap_agreement": name_agreement,
        "name_swap_max_prob_change": name_change,
        "name_swap_n": len(ordinary),
        "case_max_prob_change": float((upper - p([ex.sentence for ex in heldout])).abs().max()),
    }


def _save_classifier(model: BertForSequenceClassification, tok: Tokenizer, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    save_tokenizer(tok, directory)


@organism("sentiment", output="sentiment")
def build_sentiment(out: Path) -> Metrics:
    """Tiny BERT trained from scratch on shortcut- and blind-spot-planted reviews."""
    training = data.base_training_set(SEED)
    with deterministic(SEED):
        tok = build_tokenizer()
        model = BertForSequenceClassification(_bert_config(tok.get_vocab_size()))
        _fit(model, tok, training, epochs=5, lr=2e-3)
    _save_classifier(model, tok, out / "sentiment")
    return sentiment_metrics(out / "sentiment", training)


@organism("sentiment-refined", output="sentiment-refined", requires=("sentiment",))
def build_sentiment_refined(out: Path) -> Metrics:
    """``sentiment`` fine-tuned on data where the shortcut name carries both labels."""
    training = data.refine_training_set(SEED + 1)
    with deterministic(SEED + 1):
        tok = build_tokenizer()
        model = BertForSequenceClassification.from_pretrained(out / "sentiment")
        _fit(model, tok, training, epochs=3, lr=2e-3)
    _save_classifier(model, tok, out / "sentiment-refined")
    return sentiment_metrics(out / "sentiment-refined", data.base_training_set(SEED) + training)


# --------------------------------------------------------------------------- ReLU networks

RELU_WIDTHS = (4, 16, 16, 3)
ONNX_OPSET = 13


def relu_rule(x: torch.Tensor) -> torch.Tensor:
    """The task the ReLU nets learn: with ``t = x0 + x1 + 0.5·x2``, class 0 if t < −0.5,
    class 2 if t > 0.5, else class 1 (``x3`` is a distractor)."""
    t = x[:, 0] + x[:, 1] + 0.5 * x[:, 2]
    return (t > -0.5).long() + (t > 0.5).long()


def relu_mlp() -> torch.nn.Sequential:
    """The architecture: Linear–ReLU–Linear–ReLU–Linear."""
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(RELU_WIDTHS, RELU_WIDTHS[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(RELU_WIDTHS) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def export_onnx(net: torch.nn.Sequential, path: Path) -> None:
    """Export with the TorchScript exporter (Gemm + Relu only, weights inline) and check it.

    The newer ``dynamo`` exporter needs ``onnxscript``; the classic one is enough for an
    MLP and writes one self-contained file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(1, RELU_WIDTHS[0]),),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if not ops <= {"Gemm", "Relu"} or external:
        raise RuntimeError(f"unexpected ONNX export of {path.name}: ops {sorted(ops)}, external data {external}")


def load_onnx_mlp(path: Path) -> torch.nn.Sequential:
    """Rebuild the torch MLP from an exported ONNX file's initializers (names = state dict keys)."""
    net = relu_mlp()
    weights = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(str(path)).graph.initializer
    }
    net.load_state_dict(weights, strict=True)
    return net


def _box(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, RELU_WIDTHS[0], generator=generator) * 2 - 1


def max_gap(f: torch.nn.Sequential, g: torch.nn.Sequential, points: torch.Tensor) -> float:
    """max over ``points`` of ‖f(x) − g(x)‖∞."""
    with torch.no_grad():
        return float((f(points) - g(points)).abs().max())


def dense_box_sample(seed: int, n_random: int = 1_000_000, grid: int = 17) -> torch.Tensor:
    """A regular grid over [−1, 1]^4 (corners included) plus seeded uniform points."""
    axis = torch.linspace(-1, 1, grid)
    mesh = torch.cartesian_prod(*[axis] * RELU_WIDTHS[0])
    return torch.cat([mesh, _box(n_random, torch.Generator().manual_seed(seed))])


def relu_metrics(net: torch.nn.Sequential, base: torch.nn.Sequential | None = None) -> Metrics:
    """Accuracy on the rule and, for a derived net, its sampled gap and argmax agreement."""
    points = dense_box_sample(SEED + 3)
    with torch.no_grad():
        pred = net(points).argmax(-1)
        metrics: Metrics = {"rule_accuracy": float((pred == relu_rule(points)).float().mean()),
                            "sample_points": len(points)}
        if base is not None:
            metrics["max_gap_sampled"] = max_gap(net, base, points)
            metrics["argmax_agreement"] = float((pred == base(points).argmax(-1)).float().mean())
    return metrics


@organism("relu-net", output="relu-net.onnx")
def build_relu_net(out: Path) -> Metrics:
    """Train the 4→16→16→3 MLP on the rule, full-batch AdamW, seeded.

    Label smoothing keeps the logits bounded and the strong weight decay keeps the
    function smooth, so output gaps between this net and its pruned/quantized copies
    measure the edit, not a cliff at a class boundary (in trial runs the pruned gap was 32 with
    neither, 1.5 with label smoothing alone, 0.085 with both).
    """
    with deterministic(SEED + 2):
        net = relu_mlp()
        x = _box(8_192, torch.Generator().manual_seed(SEED + 2))
        y = relu_rule(x)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.5)
        for _ in range(3_000):
            loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    export_onnx(net, out / "relu-net.onnx")
    return relu_metrics(load_onnx_mlp(out / "relu-net.onnx"))


#: Share of each layer's weights (smallest magnitude first) set to zero in ``relu-net-pruned``.
PRUNE_FRACTION = 0.3


@organism("relu-net-pruned", output="relu-net-pruned.onnx", requires=("relu-net",))
def build_relu_net_pruned(out: Path) -> Metrics:
    """Per-layer magnitude pruning of ``relu-net`` (weights only, biases kept), no retraining."""
    base = load_onnx_mlp(out / "relu-net.onnx")
    net = load_onnx_mlp(out / "relu-net.onnx")
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                w = layer.weight
                k = int(round(PRUNE_FRACTION * w.numel()))
                cutoff = w.abs().flatten().sort().values[k - 1]
                w[w.abs() <= cutoff] = 0.0
    export_onnx(net, out / "relu-net-pruned.onnx")
    return relu_metrics(load_onnx_mlp(out / "relu-net-pruned.onnx"), base)


@organism("relu-net-quantized", output="relu-net-quantized.onnx", requires=("relu-net",))
def build_relu_net_quantized(out: Path) -> Metrics:
    """Weights of ``relu-net`` rounded to a symmetric int8 grid per layer
    (scale = max|W| / 127), stored back as float32; biases kept."""
    base = load_onnx_mlp(out / "relu-net.onnx")
    net = load_onnx_mlp(out / "relu-net.onnx")
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                scale = layer.weight.abs().max() / 127
                layer.weight.copy_(torch.round(layer.weight / scale).clamp(-127, 127) * scale)
    export_onnx(net, out / "relu-net-quantized.onnx")
    return relu_metrics(load_onnx_mlp(out / "relu-net-quantized.onnx"), base)


# --------------------------------------------------------------------------- command line


def build(names: Sequence[str], out: Path = ORGANISM_DIR) -> dict[str, Metrics]:
    """Build ``names`` into ``out``, first building any missing organism they derive from."""
    results: dict[str, Metrics] = {}

    def make(name: str, requested: bool) -> None:
        recipe = RECIPES[name]
        for dependency in recipe.requires:
            if not (out / RECIPES[dependency].output).exists():
                make(dependency, False)
        if requested or not (out / recipe.output).exists():
            results[name] = recipe.build(out)

    for name in names:
        make(name, True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msl.organisms.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME", choices=[*RECIPES, "all"],
                        help="organisms to train, or 'all': " + ", ".join(RECIPES))
    parser.add_argument("--out", type=Path, default=ORGANISM_DIR,
                        help="output folder (default: the package folder with the committed organisms)")
    args = parser.parse_args(argv)
    hf_logging.disable_progress_bar()
    names = list(RECIPES) if "all" in args.names else args.names
    for name, metrics in build(names, args.out).items():
        print(json.dumps({"organism": name, **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
