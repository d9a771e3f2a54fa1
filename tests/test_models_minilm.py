"""minilm-l6 through the registry: sentence embeddings as sentence-transformers makes them."""

from __future__ import annotations

import numpy as np
import torch
import transformers

from msl.models import Encoder
from msl.queries import ALL, Capture, Embed, Site

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
]


def test_pipeline_read_from_the_model_files(minilm: Encoder) -> None:
    assert (minilm.kind, minilm.pooling, minilm.normalize, minilm.max_length) == ("encoder", "mean", True, 256)
    assert (minilm.num_layers, minilm.hidden_size) == (6, 384)


def test_embeddings_match_a_direct_mean_pool(minilm: Encoder) -> None:
    got = np.stack(minilm.run([Embed(s) for s in SENTENCES]))
    assert got.shape == (5, 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm.source.path))
    bert = transformers.AutoModel.from_pretrained(str(minilm.source.path), use_safetensors=True)
    with torch.inference_mode():
        enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    # the paraphrase pair is closer than an unrelated pair
    assert got[0] @ got[1] > got[0] @ got[3] + 0.3


def test_one_at_a_time_equals_batched(minilm: Encoder) -> None:
    batched = minilm.run([Embed(s) for s in SENTENCES])
    alone = [minilm.run([Embed(s)])[0] for s in SENTENCES]
    assert max(float(np.abs(a - b).max()) for a, b in zip(batched, alone, strict=True)) < 1e-5


def test_long_inputs_are_truncated_like_sentence_transformers(minilm: Encoder) -> None:
    long = " ".join(["word"] * 400)
    (embedding, capture) = minilm.run([Embed(long), Capture(long, Site("resid_post", -1), ALL)])
    assert capture.shape == (256, 384) and np.isfinite(embedding).all()
