"""What a model's fingerprint covers: everything that changes its outputs, so that the
result cache and a finding's id never outlive a change of weights, config or tokenizer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from msl.check import check_file
from msl.findings import Finding
from msl.models import load_model
from msl.models.fingerprint import FingerprintMemo, weights_fingerprint
from msl.run import Runner, RunOptions

ORGANISM = Path(__file__).resolve().parent.parent / "msl" / "organisms" / "sentiment"
PRAISE = ["The soup was great.", "The cake was good."]
SPEC = """msl 1.0
model clf: classifier = "organism:sentiment"
verify praise_is_positive {
  for x in ["The soup was great.", "The cake was good."]
  expect clf.label(x) == "positive"
}
"""


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sentiment organism copied to a folder of its own, with a cache of its own."""
    monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path / "cache"))
    return Path(shutil.copytree(ORGANISM, tmp_path / "clf"))


def _check(spec: Path, model: Path, *, cache: bool) -> Finding:
    options = RunOptions(bindings={"clf": str(model)}, cache=cache, progress=False)
    (finding,) = Runner(options).check([check_file(spec)]).findings
    return finding


def _swap_vocab(model: Path, a: str, b: str) -> None:
    path = model / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    path.write_text(json.dumps(tokenizer))


def _labels(model: Path, texts: list[str]) -> list[str]:
    """The labels transformers itself gives, outside MSL."""
    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModelForSequenceClassification.from_pretrained(model, use_safetensors=True).eval()
    with torch.no_grad():
        logits = net(**tok(texts, return_tensors="pt", padding=True)).logits
    return [net.config.id2label[int(i)] for i in logits.argmax(dim=-1)]


def test_a_tokenizer_change_is_not_answered_from_the_cache(copy: Path, tmp_path: Path) -> None:
    spec = tmp_path / "praise.msl"
    spec.write_text(SPEC)
    before = _check(spec, copy, cache=True)
    assert before.verdict == "holds" and _labels(copy, PRAISE) == ["positive", "positive"]

    _swap_vocab(copy, "great", "terrible")  # the weights are untouched
    _swap_vocab(copy, "good", "bad")
    assert _labels(copy, PRAISE) == ["negative", "negative"]
    cached = _check(spec, copy, cache=True)
    fresh = _check(spec, copy, cache=False)
    assert fresh.verdict == cached.verdict == "violated"
    assert cached.statistics == fresh.statistics and cached.id == fresh.id
    assert cached.models[0].fingerprint == fresh.models[0].fingerprint != before.models[0].fingerprint


def _fingerprint(model: Path, kind: str = "classifier") -> str:
    return load_model(str(model), kind, progress=False).fingerprint


def test_config_changes_that_change_outputs_change_the_fingerprint(copy: Path) -> None:
    original = _fingerprint(copy)
    config_path = copy / "config.json"
    config = json.loads(config_path.read_text())
    # Where the files are, which transformers wrote them and the stored dtype do not
    # change the function: the fingerprint stays.
    config_path.write_text(
        json.dumps({**config, "transformers_version": "0.0.1", "_name_or_path": "elsewhere"}, indent=4)
    )
    assert _fingerprint(copy) == original
    # Label names change what `label` answers; the layer-norm epsilon changes every output.
    for change in ({"id2label": {"0": "positive", "1": "negative"}, "label2id": {"positive": 0, "negative": 1}},
                   {"layer_norm_eps": 1e-3}):
        config_path.write_text(json.dumps({**config, **change}))
        assert _fingerprint(copy) != original, change
    config_path.write_text(json.dumps(config))
    assert _fingerprint(copy) == original


def test_the_adapter_and_its_version_are_part_of_the_fingerprint(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msl.models.classifier import Classifier

    original = _fingerprint(copy)
    assert _fingerprint(copy, "encoder") != original  # same files, another function
    monkeypatch.setattr(Classifier, "code_version", Classifier.code_version + 1)
    assert _fingerprint(copy) != original


def test_the_memo_is_keyed_by_the_files_it_hashes(copy: Path, tmp_path: Path) -> None:
    """The weights' digest is memoised keyed by exactly the weight files; a new tokenizer
    or config changes the folder's files, so the whole fingerprint is computed again."""
    model = load_model(str(copy), "classifier", progress=False)
    assert model.source.weight_files() == [copy / "model.safetensors"]
    first = model.fingerprint
    memo = FingerprintMemo(tmp_path / "cache" / "fingerprints")
    key = FingerprintMemo.key([copy / "model.safetensors"], "float32", "classifier")
    assert memo.get(key) == model.weights_digest != first
    # A stale weights digest in the memo would be trusted; the tokenizer digest never is.
    _swap_vocab(copy, "great", "terrible")
    again = load_model(str(copy), "classifier", progress=False)
    assert "module" not in again.__dict__ and again.fingerprint != first
    assert "module" not in again.__dict__  # answered from the memo without loading the weights


def test_the_whole_fingerprint_is_memoised_by_every_file_of_the_folder(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second load answers the fingerprint from the memo, hashing neither tokenizer nor
    config; a tokenizer rewritten under its old size and modification time (``cp -p``)
    still changes the key (its status-change time), so it is hashed again, never served
    stale — the fresh fingerprint is the truth both are checked against."""
    from msl.models import text

    path = copy / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    path.write_text(json.dumps(tokenizer))  # in the layout the change below is written in
    first = _fingerprint(copy)
    real = text.tokenizer_digest
    hashed: list[int] = []
    monkeypatch.setattr(text, "tokenizer_digest", lambda tok: hashed.append(1) or real(tok))
    assert _fingerprint(copy) == first and hashed == []
    stat = path.stat()
    vocab = tokenizer["model"]["vocab"]
    vocab["great"], vocab["awful"] = vocab["awful"], vocab["great"]  # the same digits: the same size
    path.write_text(json.dumps(tokenizer))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    changed = _fingerprint(copy)
    assert hashed == [1] and changed != first
    monkeypatch.setenv("MSL_CACHE_DIR", str(copy.parent / "fresh-cache"))  # no memo at all
    assert _fingerprint(copy) == changed


def test_weights_replaced_under_the_same_size_and_time_are_hashed_again(copy: Path) -> None:
    """`cp -p`, `rsync -t` and `tar` keep a file's modification time; checkpoints of one
    architecture have one size. The memo must not take the new weights for the old."""
    weights = copy / "model.safetensors"
    first = load_model(str(copy), "classifier", progress=False)
    before = first.weights_digest
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-4:] = bytes(b ^ 0x55 for b in data[-4:])  # the last float of the last tensor
    replacement = copy / "replacement.tmp"
    replacement.write_bytes(bytes(data))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, weights)
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    again = load_model(str(copy), "classifier", progress=False)
    assert again.weights_digest == weights_fingerprint(again.module) != before
