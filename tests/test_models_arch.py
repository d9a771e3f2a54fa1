"""Sites, batching and adapters on other architectures (tiny GPT-2, BERT, OPT, ONNX)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from msl.models import Classifier, ModelLoadError, OnnxNetwork, UnknownModelError, load_model
from msl.queries import (
    ALL,
    LAST,
    Add,
    Capture,
    ClassProbs,
    Embed,
    Generate,
    Intervention,
    NetOutput,
    NextLogProbs,
    QueryError,
    QueryFailed,
    Site,
    TokenSel,
    Vector,
)
from tests import tiny_models

TEXTS = ["the cat sat on the mat", "a dog ran", "the movie was very good and then it was bad", "red"]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.tiny_bert_classifier(tmp_path_factory.mktemp("bert"))


def test_gpt2_sites_and_batching(gpt2_dir: Path) -> None:
    lm = load_model(str(gpt2_dir), "causal_lm")
    sites = [Site(p, 1) for p in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
    pre, attn, mlp, post = lm.run([Capture(TEXTS[0], s, ALL) for s in sites])
    assert np.allclose(post, pre + attn + mlp, atol=1e-5)  # pre-norm residual stream adds up
    lm.max_batch = 1
    single = lm.run([NextLogProbs(t) for t in TEXTS])
    lm.max_batch = 8
    batched = lm.run([NextLogProbs(t) for t in TEXTS])
    assert max(float(np.abs(a - b).max()) for a, b in zip(single, batched, strict=True)) < 1e-5


def test_gpt2_add_equals_hand_written_hook(gpt2_dir: Path) -> None:
    lm = load_model(str(gpt2_dir), "causal_lm")
    v = Vector(np.linspace(-1, 1, 32, dtype=np.float32))
    (steered,) = lm.run([NextLogProbs(TEXTS[1])], Intervention((Add(Site("mlp_out", -1), v, 2.0),)))
    delta = 2.0 * torch.from_numpy(v.data.copy())
    handle = lm.module.transformer.h[2].mlp.register_forward_hook(lambda m, a, out: out + delta)
    try:
        with torch.inference_mode():
            logits = lm.module(input_ids=torch.tensor([lm.encode(TEXTS[1])])).logits[0, -1]
    finally:
        handle.remove()
    assert np.allclose(steered, torch.log_softmax(logits, -1).numpy(), atol=1e-5)


def test_bert_classifier(bert_dir: Path) -> None:
    clf = load_model(str(bert_dir), "classifier")
    assert isinstance(clf, Classifier) and clf.labels == ("negative", "neutral", "positive")
    probs = clf.run([ClassProbs(t) for t in TEXTS])
    assert all(p.shape == (3,) and abs(float(p.sum()) - 1) < 1e-5 for p in probs)
    with torch.inference_mode():
        enc = clf.tokenizer(TEXTS[2], return_tensors="pt")
        direct = torch.softmax(clf.module(**enc).logits[0], -1).numpy()
    assert np.allclose(probs[2], direct, atol=1e-5)
    # BERT sites: attn_out is the attention's dense projection, before the residual add.
    captured = {}
    layer = clf.module.bert.encoder.layer[1]
    handle = layer.attention.output.dense.register_forward_hook(lambda m, a, out: captured.setdefault("a", out))
    try:
        (attn,) = clf.run([Capture(TEXTS[2], Site("attn_out", 1), ALL)])
        with torch.inference_mode():
            clf.module(**enc)
    finally:
        handle.remove()
    assert np.allclose(attn, captured["a"][0].numpy(), atol=1e-5)
    wrong = clf.run([NextLogProbs("the cat")])[0]
    assert isinstance(wrong, QueryFailed) and "causal_lm" in wrong.message


def test_decoder_classifier_batches_without_a_configured_pad(tmp_path: Path) -> None:
    clf = load_model(str(tiny_models.tiny_gpt2_classifier(tmp_path)), "classifier")
    assert clf.labels == ("LABEL_0", "LABEL_1")
    batched = clf.run([ClassProbs(t) for t in TEXTS])
    alone = [clf.run([ClassProbs(t)])[0] for t in TEXTS]
    assert max(float(np.abs(a - b).max()) for a, b in zip(batched, alone, strict=True)) < 1e-5


def test_unknown_architecture_lists_its_modules(tmp_path: Path) -> None:
    lm = load_model(str(tiny_models.tiny_opt(tmp_path)), "causal_lm")
    plain, capture = lm.run([NextLogProbs("the cat"), Capture("the cat", Site("resid_post", 0), LAST)])
    assert isinstance(plain, np.ndarray)  # plain queries need no site mapping
    assert isinstance(capture, QueryFailed)
    assert "'opt'" in capture.message and "model.decoder.layers" in capture.message
    steer = Intervention((Add(Site("resid_post", 0), Vector(np.ones(32, dtype=np.float32))),))
    for query in (NextLogProbs("the cat"), Generate("the cat", 3)):
        (failed,) = lm.run([query], steer)
        assert isinstance(failed, QueryFailed) and "model.decoder.layers" in failed.message


def test_pickle_only_directories_are_refused(gpt2_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "pickled"
    shutil.copytree(gpt2_dir, target)
    (target / "model.safetensors").rename(target / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(str(target), "causal_lm")


def test_network_batches_and_matches_numpy(tmp_path: Path) -> None:
    # a free batch dimension, a fixed one (made free), and a graph that only runs one at a time
    for name, batch, reshape, batches in (("free", None, False, 1), ("fixed", 1, False, 1), ("single", 1, True, 50)):
        net = load_model(str(tiny_models.tiny_onnx(tmp_path / f"{name}.onnx", batch=batch, reshape=reshape)), "network")
        assert isinstance(net, OnnxNetwork) and net.path.name == f"{name}.onnx"
        xs = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
        out = net.run([NetOutput(tuple(x)) for x in xs])
        assert np.allclose(np.stack(out), tiny_models.reference_mlp(xs), atol=1e-5)
        assert net.stats.batches == batches
    bad = net.run([NetOutput((1.0, 2.0)), Embed("x")])
    assert all(isinstance(r, QueryFailed) for r in bad)
    steered = net.run([NetOutput((1.0, 2.0, 3.0))], Intervention((Add(Site("resid_post", 0), Vector(np.ones(3))),)))
    assert isinstance(steered[0], QueryFailed)


def test_network_fingerprint(tmp_path: Path) -> None:
    a = load_model(str(tiny_models.tiny_onnx(tmp_path / "a.onnx")), "network")
    b = load_model(str(tiny_models.tiny_onnx(tmp_path / "b.onnx")), "network")
    fixed = load_model(str(tiny_models.tiny_onnx(tmp_path / "c.onnx", batch=1)), "network")
    assert a.fingerprint == b.fingerprint != fixed.fingerprint  # same weights, another graph


ACAS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"


@pytest.mark.skipif(not ACAS.exists(), reason="the shared ACAS Xu benchmark is not here")
def test_acas_xu_network() -> None:
    import onnxruntime as ort

    net = load_model(str(ACAS), "network")
    assert isinstance(net, OnnxNetwork) and net.batched and net.num_inputs == 5
    xs = np.random.default_rng(2).uniform(-0.5, 0.5, size=(20, 5)).astype(np.float32)
    out = np.stack(net.run([NetOutput(tuple(x)) for x in xs]))
    session = ort.InferenceSession(str(ACAS), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    direct = np.stack([session.run(None, {name: x.reshape(1, 1, 1, 5)})[0][0] for x in xs])
    assert np.allclose(out, direct, atol=1e-5)


def test_errors_for_unknown_refs_kinds_and_hub_ids() -> None:
    import time

    with pytest.raises(UnknownModelError, match="unknown model kind"):
        load_model("smollm2-135m", "transformer")
    with pytest.raises(UnknownModelError, match="unknown model"):
        load_model("no-such-model-here", "causal_lm")
    with pytest.raises(UnknownModelError, match="organism"):
        load_model("organism:does-not-exist", "causal_lm")
    with pytest.raises(UnknownModelError):
        load_model("organism:../escape", "causal_lm")
    with pytest.raises(UnknownModelError, match="dtype"):
        load_model("smollm2-135m", "causal_lm", dtype="float8")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="hub"):
        load_model("some-org/some-model-that-is-not-cached", "causal_lm")
    assert time.monotonic() - start < 15  # offline: a clear error, never a hang


def test_organisms_resolve_generically(gpt2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msl.models import registry

    shutil.copytree(gpt2_dir, tmp_path / "shortcut")
    tiny_models.tiny_onnx(tmp_path / "xor.onnx")
    monkeypatch.setattr(registry, "ORGANISMS_DIR", tmp_path)
    assert load_model("organism:shortcut", "causal_lm").kind == "causal_lm"
    assert load_model("organism:xor", "network").run([NetOutput((0.0, 1.0, 0.0))])[0].shape == (2,)
    with pytest.raises(UnknownModelError, match="no model organism named 'other'") as info:
        load_model("organism:other", "network")
    assert info.value.hint is not None and "shortcut" in info.value.hint and "xor" in info.value.hint


def test_token_selectors() -> None:
    assert TokenSel.parse("from -2") == TokenSel.from_(-2) and TokenSel.parse("last") == LAST
    assert TokenSel.index(-1).span(5) == (4, 5) and TokenSel.from_(1).span(3) == (1, 3) and ALL.span(2) == (0, 2)
    with pytest.raises(QueryError, match="out of range"):
        TokenSel.index(3).span(3)
    with pytest.raises(QueryError, match="bad token selector 'first'"):
        TokenSel.parse("first")
    with pytest.raises(QueryError, match="unknown site 'residual'"):
        Site("residual", 0)
