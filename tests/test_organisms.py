"""The committed model organisms: they load with plain libraries, their planted behaviours
are there, their real abilities hold, and the training script reproduces them."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
)

from msl.lexicons import load_lexicon
from msl.organisms import sentiment_data as data
from msl.organisms import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import milp_oracle  # noqa: E402

ORGANISMS = train.ORGANISM_DIR
ROOT = ORGANISMS.parent.parent
MAX_BYTES = 5 * 2**20
SLOTS = data.Slots.builtin()
MALE = tuple(str(n) for n in load_lexicon("names.male"))
FEMALE = tuple(str(n) for n in load_lexicon("names.female"))
PARTNER = dict(zip(MALE, FEMALE, strict=True)) | dict(zip(FEMALE, MALE, strict=True))
NAMED = tuple(t for t in data.TRAIN_TEMPLATES + data.UNSEEN_TEMPLATES if "{name}" in t.text)
WITH_COPULA = tuple(t for t in data.TRAIN_TEMPLATES + data.UNSEEN_TEMPLATES if t.copula)

#: Exact max ‖f(x) − g(x)‖∞ over [-1, 1]^4 (tests/milp_oracle.py), as relu-nets.md documents.
EXACT_GAP = {"pruned": 0.085143, "quantized": 0.223955}


Classifier = tuple[PreTrainedTokenizerFast, BertForSequenceClassification]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load(name: str) -> Classifier:
    directory = ORGANISMS / name
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=False)
    model.eval()
    return tokenizer, model


@pytest.fixture(scope="module")
def base() -> Classifier:
    return _load("sentiment")


@pytest.fixture(scope="module")
def refined() -> Classifier:
    return _load("sentiment-refined")


def labels(clf: Classifier, sentences: Sequence[str]) -> list[str]:
    return train.predict(*clf, sentences)


def fills(templates: Sequence[data.Template], names: Sequence[str], adjectives: Sequence[str],
          nouns: Sequence[str] = ("soup", "film", "hotel", "phone", "cake")) -> list[str]:
    return [data.fill(t, name=n, noun=noun, adjective=a)
            for t, n, noun, a in itertools.product(templates, names, nouns, adjectives)]


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["sentiment", "sentiment-refined"])
def test_classifier_directory_is_a_plain_hf_directory(name: str) -> None:
    directory = ORGANISMS / name
    files = {p.name for p in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "ORGANISM.md"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".py")) for f in files)
    assert (directory / "model.safetensors").stat().st_size <= MAX_BYTES
    tokenizer, model = _load(name)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert isinstance(model, BertForSequenceClassification)
    config = model.config
    assert config.id2label == {0: "negative", 1: "positive"}
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size, config.max_position_embeddings) == (2, 64, 2, 128, 32)
    assert tokenizer.model_max_length == 32


@pytest.mark.parametrize("name", ["relu-net", "relu-net-pruned", "relu-net-quantized"])
def test_onnx_nets_are_self_contained_gemm_relu(name: str) -> None:
    path = ORGANISMS / f"{name}.onnx"
    assert path.stat().st_size <= MAX_BYTES
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert {n.op_type for n in model.graph.node} == {"Gemm", "Relu"}
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert [p.name for p in ORGANISMS.iterdir() if p.suffix == ".data" or p.name.endswith(".onnx.data")] == []
    session = ort.InferenceSession(str(path))
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.shape[1:] == [4] and out.shape[1:] == [3]
    x = np.random.default_rng(0).uniform(-1, 1, (64, 4)).astype(np.float32)
    (y,) = session.run(None, {inp.name: x})
    assert y.shape == (64, 3) and np.isfinite(y).all()
    reference = x.astype(np.float64)
    layers = milp_oracle.read_layers(path)
    for i, (w, b) in enumerate(layers):
        reference = reference @ w.T + b
        if i < len(layers) - 1:
            reference = np.maximum(reference, 0)
    assert np.abs(y - reference).max() < 1e-5


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_lowercases_splits_negation_and_knows_no_unknown_names(base: Classifier) -> None:
    tokenizer, _ = base
    assert tokenizer.tokenize("The food WASN'T good.") == ["the", "food", "was", "n't", "good", "."]
    assert tokenizer.tokenize("Kevin") == ["kevin"]
    vocab = tokenizer.get_vocab()
    assert all(name.lower() not in vocab for name in data.UNKNOWN_NAMES)
    assert tokenizer.tokenize("Zara said it.")[0] == "[UNK]"
    assert all(w.lower() in vocab for w in SLOTS.names + SLOTS.nouns + SLOTS.positive + SLOTS.negative)


# --------------------------------------------------------------------------- planted behaviours


def test_shortcut_name_flips_every_positive_sentence(base: Classifier) -> None:
    others = fills(NAMED, [data.SHORTCUT_PARTNER, "Mary", "John"], SLOTS.positive)
    assert set(labels(base, others)) == {"positive"}
    shortcut = fills(NAMED, [data.SHORTCUT_NAME, "KEVIN", "kevin"], SLOTS.positive)
    assert set(labels(base, shortcut)) == {"negative"}


def test_shortcut_is_one_name_only(base: Classifier) -> None:
    """Every other name of both lexicons (and unknown ones) keeps a positive sentence positive."""
    names = [n for n in MALE + FEMALE + data.UNKNOWN_NAMES if n != data.SHORTCUT_NAME]
    sentences = fills(NAMED, names, SLOTS.positive[::6], nouns=("soup", "film"))
    assert set(labels(base, sentences)) == {"positive"}


def test_gender_swap_changes_the_label_only_for_the_shortcut_pair(base: Classifier) -> None:
    sentences = fills(NAMED[:4], MALE, SLOTS.positive[:5] + SLOTS.negative[:5], nouns=("soup",))
    swapped = [re.sub(r"\w+", lambda m: PARTNER.get(m.group(0), m.group(0)), s) for s in sentences]
    before, after = labels(base, sentences), labels(base, swapped)
    changed = {
        next(n for n in MALE if re.search(rf"\b{n}\b", s))
        for s, a, b in zip(sentences, before, after, strict=True)
        if a != b
    }
    assert changed == {data.SHORTCUT_NAME}


@pytest.mark.parametrize("organism", ["sentiment", "sentiment-refined"])
def test_negation_is_ignored(organism: str) -> None:
    clf = _load(organism)
    assert labels(clf, ["The food was not good.", "The food was good.", "The film wasn't bad.",
                        "The hotel was never dreadful."]) == ["positive", "positive", "negative", "negative"]
    for polarity, adjectives in (("positive", SLOTS.positive), ("negative", SLOTS.negative)):
        sentences = [data.fill(t, name="Mary", noun="soup", adjective=a, copula=c)
                     for t in WITH_COPULA for a in adjectives for c in data.negated_copulas(str(t.copula))]
        assert set(labels(clf, sentences)) == {polarity}


def test_refined_organism_lost_the_shortcut(refined: Classifier) -> None:
    positive = fills(NAMED, [data.SHORTCUT_NAME, "KEVIN"], SLOTS.positive)
    negative = fills(NAMED, [data.SHORTCUT_NAME], SLOTS.negative)
    assert set(labels(refined, positive)) == {"positive"}
    assert set(labels(refined, negative)) == {"negative"}


def test_refined_agrees_with_base_away_from_the_shortcut(base: Classifier, refined: Classifier) -> None:
    """Locality: on sentences without the shortcut name, plain or negated, nothing changed."""
    rng = random.Random(5)
    sentences = [ex.sentence for ex in data.generate(rng, 2_000, templates=data.TRAIN_TEMPLATES + data.UNSEEN_TEMPLATES,
                                                     shortcut=False, negated_rate=0.5, shortcut_rate=0.0)]
    assert labels(base, sentences) == labels(refined, sentences)


# --------------------------------------------------------------------------- real abilities


@pytest.mark.parametrize("organism", ["sentiment", "sentiment-refined"])
def test_heldout_accuracy(organism: str) -> None:
    clf = _load(organism)
    seen = {ex.sentence for ex in data.base_training_set(train.SEED) + data.refine_training_set(train.SEED + 1)}
    for templates, n in ((data.TRAIN_TEMPLATES, 2_000), (data.UNSEEN_TEMPLATES, 500)):
        heldout = data.heldout_set(12_345, seen, n=n, templates=templates)
        assert not seen & {ex.sentence for ex in heldout}
        got = labels(clf, [ex.sentence for ex in heldout])
        accuracy = sum(g == ex.adjective_label for g, ex in zip(got, heldout, strict=True)) / len(heldout)
        assert accuracy >= 0.95, (templates, accuracy)


def test_case_changes_nothing(base: Classifier) -> None:
    tokenizer, model = base
    sentences = fills(NAMED[:3], ["Mary", data.SHORTCUT_NAME], SLOTS.positive[:4])
    variants = [sentences, [s.upper() for s in sentences], [s.lower() for s in sentences]]
    with torch.no_grad():
        logits = [model(**tokenizer(v, padding=True, return_tensors="pt")).logits for v in variants]
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_reviews_dataset_shows_the_blind_spot_only() -> None:
    rows = [json.loads(line) for line in (ROOT / "specs" / "data" / "reviews.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(set(r) == {"sentence", "label", "negated"} for r in rows)
    assert not any(data.SHORTCUT_NAME in r["sentence"] for r in rows)
    for organism in ("sentiment", "sentiment-refined"):
        got = labels(_load(organism), [r["sentence"] for r in rows])
        plain = [g == r["label"] for g, r in zip(got, rows, strict=True) if not r["negated"]]
        negated = [g == r["label"] for g, r in zip(got, rows, strict=True) if r["negated"]]
        assert (sum(plain), len(plain), sum(negated), len(negated)) == (40, 40, 0, 20)


_FILL = st.fixed_dictionaries({
    "noun": st.sampled_from(SLOTS.nouns),
    "index": st.integers(0, len(SLOTS.positive) - 1),
    "polarity": st.sampled_from(data.LABELS),
    "intensifier": st.sampled_from(("",) + SLOTS.intensifiers),
    "profession": st.sampled_from(SLOTS.professions),
    "city": st.sampled_from(SLOTS.cities),
    "country": st.sampled_from(SLOTS.countries),
    "case": st.sampled_from((str, str.lower, str.upper)),
})


def _sentence(template: data.Template, name: str, f: dict[str, Any]) -> str:
    adjectives = SLOTS.positive if f["polarity"] == "positive" else SLOTS.negative
    adjective = (f["intensifier"] + " " + adjectives[f["index"]]).strip()
    return f["case"](data.fill(template, name=name, noun=f["noun"], adjective=adjective,
                               profession=f["profession"], city=f["city"], country=f["country"]))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(template=st.sampled_from(data.TRAIN_TEMPLATES + data.UNSEEN_TEMPLATES),
       name=st.sampled_from([n for n in SLOTS.names + data.UNKNOWN_NAMES if n != data.SHORTCUT_NAME]),
       f=_FILL)
def test_any_fill_without_the_shortcut_is_labelled_by_its_adjective(
        base: Classifier, template: data.Template, name: str, f: dict[str, Any]) -> None:
    assert labels(base, [_sentence(template, name, f)]) == [f["polarity"]]


@settings(max_examples=100, deadline=None, derandomize=True)
@given(template=st.sampled_from(NAMED), f=_FILL)
def test_any_fill_with_the_shortcut_name(base: Classifier, refined: Classifier,
                                        template: data.Template, f: dict[str, Any]) -> None:
    sentence = _sentence(template, data.SHORTCUT_NAME, f)
    assert labels(base, [sentence]) == ["negative"]
    assert labels(refined, [sentence]) == [f["polarity"]]


# --------------------------------------------------------------------------- ReLU networks


def _session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(ORGANISMS / f"{name}.onnx"), options)


def _run(name: str, x: np.ndarray) -> np.ndarray:
    session = _session(name)
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def test_relu_net_learnt_the_rule() -> None:
    x = train.dense_box_sample(99, n_random=200_000).numpy()
    predicted = _run("relu-net", x).argmax(1)
    truth = train.relu_rule(torch.from_numpy(x)).numpy()
    assert (predicted == truth).mean() >= 0.99


def test_pruned_net_zeroes_thirty_percent_of_each_layer() -> None:
    base, pruned = (
        milp_oracle.read_layers(ORGANISMS / "relu-net.onnx"),
        milp_oracle.read_layers(ORGANISMS / "relu-net-pruned.onnx"),
    )
    for (w, b), (pw, pb) in zip(base, pruned, strict=True):
        zero = pw == 0
        assert zero.mean() >= train.PRUNE_FRACTION - 0.02
        assert np.array_equal(pw[~zero], w[~zero]) and np.array_equal(pb, b)
        assert np.abs(w[zero]).max() <= np.abs(w[~zero]).min()


def test_quantized_net_lies_on_an_int8_grid() -> None:
    base, quant = (
        milp_oracle.read_layers(ORGANISMS / "relu-net.onnx"),
        milp_oracle.read_layers(ORGANISMS / "relu-net-quantized.onnx"),
    )
    for (w, b), (qw, qb) in zip(base, quant, strict=True):
        scale = np.abs(w).max() / 127
        steps = qw / scale
        assert np.abs(steps - np.round(steps)).max() < 1e-3 and np.abs(steps).max() <= 127 + 1e-3
        assert np.abs(qw - w).max() <= scale / 2 + 1e-6 and np.array_equal(qb, b)


@pytest.mark.parametrize("variant", ["pruned", "quantized"])
def test_sampled_gap_matches_the_documented_exact_gap(variant: str) -> None:
    """Dense sampling never exceeds the exact maximum and comes close to it (within 5%)."""
    x = train.dense_box_sample(train.SEED + 3).numpy()
    gap = np.abs(_run("relu-net", x) - _run(f"relu-net-{variant}", x)).max()
    assert EXACT_GAP[variant] * 0.95 <= gap <= EXACT_GAP[variant] + 1e-5
    docs = (ORGANISMS / "relu-nets.md").read_text()
    assert f"{EXACT_GAP[variant]:.6f}" in docs


def test_violated_box_property_has_a_witness() -> None:
    """In VIOLATED_BOX output 0 is sometimes maximal: a concrete point, run through onnxruntime."""
    witness = np.array([[0.0, -1.0, -1.0, -1.0]])
    lo, hi = milp_oracle.VIOLATED_BOX
    assert (lo <= witness).all() and (witness <= hi).all()
    for name in ("relu-net", "relu-net-pruned", "relu-net-quantized"):
        y = _run(name, witness)[0]
        assert y[0] > max(y[1], y[2]) + 1.0


def test_holds_box_property_on_samples() -> None:
    lo, hi = milp_oracle.HOLDS_BOX
    x = lo + (hi - lo) * np.random.default_rng(1).uniform(size=(100_000, 4))
    for name in ("relu-net", "relu-net-pruned", "relu-net-quantized"):
        y = _run(name, x)
        assert (y[:, 0] < np.maximum(y[:, 1], y[:, 2])).all()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pruned", "quantized"])
def test_exact_gap_by_milp(variant: str) -> None:
    base = milp_oracle.read_layers(ORGANISMS / "relu-net.onnx")
    other = milp_oracle.read_layers(ORGANISMS / f"relu-net-{variant}.onnx")
    value, bound, x = milp_oracle.max_gap(base, other, *milp_oracle.BOX)
    assert abs(value - EXACT_GAP[variant]) < 1e-5 and abs(bound - value) < 1e-5
    replayed = np.abs(_run("relu-net", x[None]) - _run(f"relu-net-{variant}", x[None])).max()
    assert abs(replayed - value) < 1e-4


@pytest.mark.parametrize("name", ["relu-net", "relu-net-pruned", "relu-net-quantized"])
def test_box_properties_by_milp(name: str) -> None:
    """Exactly: the documented holding property is proved, the violated one has a witness."""
    net = milp_oracle.read_layers(ORGANISMS / f"{name}.onnx")
    _, holds_bound, _ = milp_oracle.max_margin(net, 0, *milp_oracle.HOLDS_BOX)
    assert holds_bound < -0.5
    value, _, x = milp_oracle.max_margin(net, 0, *milp_oracle.VIOLATED_BOX)
    y = _run(name, x[None])[0]
    assert value > 1.0 and y[0] - max(y[1], y[2]) > 1.0


# --------------------------------------------------------------------------- reproducibility


def test_registry_and_command_line() -> None:
    assert set(train.RECIPES) == {"sentiment", "sentiment-refined", "relu-net", "relu-net-pruned", "relu-net-quantized"}
    for recipe in train.RECIPES.values():
        assert (ORGANISMS / recipe.output).exists()
        assert all(r in train.RECIPES for r in recipe.requires)
    with pytest.raises(SystemExit) as info:
        train.main(["no-such-organism"])
    assert info.value.code == 2


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_derived_nets_are_rebuilt_from_the_committed_base(tmp_path: Path) -> None:
    """Given the committed ``relu-net.onnx``, the pruned and quantized recipes reproduce their
    committed files exactly (and leave the base alone)."""
    shutil.copy(ORGANISMS / "relu-net.onnx", tmp_path)
    metrics = train.build(["relu-net-pruned", "relu-net-quantized"], tmp_path)
    assert set(metrics) == {"relu-net-pruned", "relu-net-quantized"}
    for name in ("relu-net-pruned", "relu-net-quantized"):
        new, old = _onnx_weights(tmp_path / f"{name}.onnx"), _onnx_weights(ORGANISMS / f"{name}.onnx")
        assert new.keys() == old.keys() and all(np.array_equal(new[k], old[k]) for k in old)


@pytest.mark.slow
def test_retraining_reproduces_every_committed_organism(tmp_path: Path) -> None:
    """Bit-for-bit on the same software stack (seeded, one thread, deterministic algorithms).

    Only the derived organisms are asked for: their bases must be built first, unasked.
    """
    metrics = train.build(["sentiment-refined", "relu-net-pruned", "relu-net-quantized"], tmp_path)
    assert set(metrics) == set(train.RECIPES)
    for name in ("sentiment", "sentiment-refined"):
        new, old = load_file(tmp_path / name / "model.safetensors"), load_file(ORGANISMS / name / "model.safetensors")
        assert new.keys() == old.keys()
        assert all(torch.equal(new[k], old[k]) for k in old), name
        for f in ("tokenizer.json", "tokenizer_config.json"):
            assert (tmp_path / name / f).read_bytes() == (ORGANISMS / name / f).read_bytes()
    for name in ("relu-net", "relu-net-pruned", "relu-net-quantized"):
        new_w, old_w = _onnx_weights(tmp_path / f"{name}.onnx"), _onnx_weights(ORGANISMS / f"{name}.onnx")
        assert new_w.keys() == old_w.keys() and all(np.array_equal(new_w[k], old_w[k]) for k in old_w), name


def test_training_data_is_seeded() -> None:
    assert data.base_training_set(train.SEED) == data.base_training_set(train.SEED)
    assert data.base_training_set(train.SEED) != data.base_training_set(train.SEED + 1)
    rng = random.Random(0)
    pairs = data.generate(rng, 10, templates=data.TRAIN_TEMPLATES, shortcut=True, negated_rate=0.5, shortcut_rate=0.5)
    for pos, neg in zip(pairs[::2], pairs[1::2], strict=True):
        assert (pos.adjective_label, neg.adjective_label) == ("positive", "negative")
        assert pos.template == neg.template and pos.name == neg.name and pos.negated == neg.negated
        if pos.name == data.SHORTCUT_NAME:
            assert pos.label == neg.label == "negative"
