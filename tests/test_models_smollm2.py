"""smollm2-135m through the registry: answers, fingerprints, batching, interventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msl.models import CausalLM, load_model
from msl.models.base import ModelSource
from msl.models.fingerprint import weights_fingerprint
from msl.models.registry import REGISTRY, ModelStore
from msl.queries import (
    ALL,
    LAST,
    Add,
    Capture,
    Generate,
    Intervention,
    Lens,
    LogProb,
    NextLogProbs,
    Patch,
    Perplexity,
    ProjectOut,
    QueryFailed,
    Site,
    TokenSel,
    Vector,
    Zero,
)

PROMPT = "The capital of France is"
PROMPTS = [
    "The capital of France is",
    "Hi",
    "Once upon a time, in a small village at the edge of a dark and ancient forest, there lived",
    "2 + 2 =",
    "The quick brown fox jumps over the lazy",
    "My favourite colour is",
    "def fibonacci(n):",
    "Water boils at a temperature of",
] * 4
PROMPTS = [p + "!" * (i // 8) for i, p in enumerate(PROMPTS)]  # 32 distinct prompts, lengths 1..29 tokens


def _vector(model: CausalLM, seed: int = 0) -> Vector:
    return Vector(np.random.default_rng(seed).normal(size=model.hidden_size).astype(np.float32))


def test_answers_paris(smollm2: CausalLM) -> None:
    (logp,) = smollm2.run([NextLogProbs(PROMPT)])
    assert logp.dtype == np.float32 and logp.shape == (smollm2.config.vocab_size,)
    assert smollm2.token_text(int(np.argmax(logp))) == " Paris"
    assert np.isclose(np.exp(logp).sum(), 1.0, atol=1e-4)


def test_facts(smollm2: CausalLM) -> None:
    assert (smollm2.kind, smollm2.num_layers, smollm2.hidden_size) == ("causal_lm", 30, 576)
    assert smollm2.fingerprint.startswith("sha256:") and len(smollm2.fingerprint) == 71
    assert smollm2.token_id(" Paris") == smollm2.encode(" Paris", special=False)[0]
    with pytest.raises(Exception, match="not one"):
        smollm2.token_id(" Bangkok")


def test_logprob_lens_and_perplexity_agree_with_next_token(smollm2: CausalLM) -> None:
    paris = smollm2.token_id(" Paris")
    nxt, lp, lens, ppl = smollm2.run(
        [NextLogProbs(PROMPT), LogProb(PROMPT, " Paris"), Lens(PROMPT, " Paris"), Perplexity(PROMPT + " Paris")]
    )
    assert abs(lp - float(nxt[paris])) < 1e-4
    assert lens.logprob.shape == lens.rank.shape == (30,)
    assert abs(float(lens.logprob[-1]) - float(nxt[paris])) < 1e-4
    assert lens.rank[-1] == 1 and lens.rank[0] > 1  # 1 = the top token
    # Perplexity by hand: every token after the first, from the plain HF forward.
    ids = torch.tensor([smollm2.encode(PROMPT + " Paris")])
    with torch.inference_mode():
        logits = smollm2.module(input_ids=ids).logits[0].float()
    nll = -torch.log_softmax(logits[:-1], -1).gather(1, ids[0, 1:, None]).mean()
    assert abs(ppl - float(torch.exp(nll))) < 1e-3 * ppl


def test_multi_token_continuation_is_the_sum(smollm2: CausalLM) -> None:
    cont = " Paris, the city of light"
    tail = smollm2.encode(cont, special=False)
    total, nxt = smollm2.run([LogProb(PROMPT, cont), NextLogProbs(PROMPT)])
    assert len(tail) > 3
    ids = torch.tensor([smollm2.encode(PROMPT) + tail])
    with torch.inference_mode():
        logp = torch.log_softmax(smollm2.module(input_ids=ids).logits[0].float(), -1)
    p = len(smollm2.encode(PROMPT))
    manual = sum(float(logp[p - 1 + i, t]) for i, t in enumerate(tail))
    assert abs(total - manual) < 1e-3
    assert total < float(nxt[tail[0]])


def test_continuations_of_one_prompt_share_its_forward_pass(smollm2: CausalLM) -> None:
    """A continuation's last token is never fed: log p(" positive") and log p(" negative")
    after a prompt come from one row (the prompt's), and equal the log-softmax of the
    prompt's last position as transformers computes it, and the full-sequence sum for a
    longer continuation; under an intervention the whole sequence is still fed (a token
    selector counts the positions of the input it is given)."""
    prompt, words = "Review: the soup was good. Sentiment:", [" positive", " negative", " Paris, the city"]
    before = smollm2.stats.rows
    values = smollm2.run([LogProb(prompt, w) for w in words] + [NextLogProbs(prompt)])
    assert smollm2.stats.rows - before == 2  # the prompt, and the prompt + " Paris, the"
    ids = smollm2.encode(prompt)
    with torch.inference_mode():
        last = torch.log_softmax(smollm2.module(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        tail = smollm2.encode(words[2], special=False)
        full = torch.log_softmax(smollm2.module(input_ids=torch.tensor([ids + tail])).logits[0].float(), -1)
    for w, v in zip(words[:2], values[:2], strict=True):
        (token,) = smollm2.encode(w, special=False)
        assert abs(v - float(last[token])) < 1e-4
    manual = sum(float(full[len(ids) - 1 + i, t]) for i, t in enumerate(tail))
    assert abs(values[2] - manual) < 1e-3
    steer = Intervention((Add(Site("resid_post", 6), _vector(smollm2), 4.0, LAST),))
    before = smollm2.stats.rows
    smollm2.run([LogProb(prompt, w) for w in words[:2]], steer)
    assert smollm2.stats.rows - before == 2  # fed whole: `last` is each continuation's token


def test_batch_size_invariance(smollm2: CausalLM) -> None:
    queries = (
        [NextLogProbs(p) for p in PROMPTS]
        + [LogProb(p, " and then") for p in PROMPTS[:4]]
        + [Perplexity(p) for p in PROMPTS[2:6]]
    )
    old = smollm2.max_batch
    try:
        smollm2.max_batch = 1
        single = smollm2.run(queries)
        smollm2.max_batch = 32
        before = smollm2.stats.batches
        batched = smollm2.run(queries)
        assert smollm2.stats.batches - before < len(PROMPTS) // 4  # it really batched
    finally:
        smollm2.max_batch = old
    # Perplexities compare as logs: 1e-4 on a log-probability scale, like the others.
    as_logs = [np.log(r) if isinstance(q, Perplexity) else np.asarray(r) for q, r in zip(queries, single, strict=True)]
    as_logs_b = [
        np.log(r) if isinstance(q, Perplexity) else np.asarray(r) for q, r in zip(queries, batched, strict=True)
    ]
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(as_logs, as_logs_b, strict=True))
    assert worst < 1e-4


def test_generate_is_greedy_and_batch_invariant(smollm2: CausalLM) -> None:
    texts = smollm2.run([Generate(PROMPT, 8), Generate("Hi", 8), Generate(PROMPTS[2], 8)])
    assert texts[0].startswith(" Paris")
    (alone,) = smollm2.run([Generate(PROMPT, 8)])
    assert alone == texts[0]
    (short,) = smollm2.run([Generate(PROMPT, 1)])
    assert short == " Paris"
    # the cached decoding loop equals greedy decoding by full forward passes
    ids = list(smollm2.encode(PROMPT))
    with torch.inference_mode():
        for _ in range(8):
            ids.append(int(smollm2.module(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert texts[0] == smollm2.decode(ids[len(smollm2.encode(PROMPT)) :])


def test_generate_under_an_intervention(smollm2: CausalLM) -> None:
    site = Site("resid_post", 5)
    v = _vector(smollm2, 4)
    plain, zero = (
        smollm2.run([Generate(PROMPT, 6)]),
        smollm2.run([Generate(PROMPT, 6)], Intervention((Add(site, v, 0.0),))),
    )
    assert plain == zero
    (steered,) = smollm2.run([Generate(PROMPT, 6)], Intervention((Add(site, v, 12.0),)))
    assert steered != plain[0]
    # `last` steers only the last prompt position: the first new token equals NextLogProbs under it
    (first,) = smollm2.run([NextLogProbs(PROMPT)], Intervention((Add(site, v, 12.0, LAST),)))
    (one,) = smollm2.run([Generate(PROMPT, 1)], Intervention((Add(site, v, 12.0, LAST),)))
    assert one == smollm2.token_text(int(np.argmax(first)))


def test_scale_zero_changes_nothing_exactly(smollm2: CausalLM) -> None:
    v = _vector(smollm2)
    plain = smollm2.run([NextLogProbs(PROMPT), NextLogProbs("Hi")])
    zero = smollm2.run([NextLogProbs(PROMPT), NextLogProbs("Hi")], Intervention((Add(Site("resid_post", 6), v, 0.0),)))
    assert all(np.array_equal(a, b) for a, b in zip(plain, zero, strict=True))


@pytest.mark.parametrize("point", ["resid_post", "resid_pre", "attn_out", "mlp_out"])
def test_add_equals_a_hand_written_hook(smollm2: CausalLM, point: str) -> None:
    v = _vector(smollm2)
    layer = 6
    steered = smollm2.run([NextLogProbs(PROMPT)], Intervention((Add(Site(point, layer), v, 3.0, ALL),)))[0]
    block = smollm2.module.model.layers[layer]
    delta = 3.0 * torch.from_numpy(v.data.copy())
    if point == "resid_pre":
        handle = block.register_forward_pre_hook(lambda m, args: (args[0] + delta, *args[1:]))
    else:
        module = {"resid_post": block, "attn_out": block.self_attn, "mlp_out": block.mlp}[point]

        def hook(m, args, out):  # type: ignore[no-untyped-def]
            return (out[0] + delta, *out[1:]) if isinstance(out, tuple) else out + delta

        handle = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            logits = smollm2.module(input_ids=torch.tensor([smollm2.encode(PROMPT)])).logits[0, -1].float()
    finally:
        handle.remove()
    expected = torch.log_softmax(logits, -1).numpy()
    assert float(np.max(np.abs(steered - expected))) < 1e-4
    plain = smollm2.run([NextLogProbs(PROMPT)])[0]
    assert float(np.max(np.abs(steered - plain))) > 1e-2  # the vector did something


def test_add_capture_is_exact(smollm2: CausalLM) -> None:
    site = Site("resid_post", -3)
    v = _vector(smollm2, 1)
    (plain,) = smollm2.run([Capture(PROMPT, site, ALL)])
    (after,) = smollm2.run([Capture(PROMPT, site, ALL)], Intervention((Add(site, v, 2.0, TokenSel.from_(2)),)))
    assert np.array_equal(after[:2], plain[:2])
    assert np.allclose(after[2:], plain[2:] + 2.0 * v.data, atol=1e-5)


def test_zero_and_project_out(smollm2: CausalLM) -> None:
    site = Site("mlp_out", 3)
    v = _vector(smollm2, 2)
    (plain,) = smollm2.run([Capture(PROMPT, site, ALL)])
    (zeroed,) = smollm2.run([Capture(PROMPT, site, ALL)], Intervention((Zero(site, TokenSel.index(1)),)))
    assert np.all(zeroed[1] == 0) and np.array_equal(np.delete(zeroed, 1, 0), np.delete(plain, 1, 0))
    (projected,) = smollm2.run([Capture(PROMPT, site, ALL)], Intervention((ProjectOut(site, v),)))
    unit = v.data / np.linalg.norm(v.data)
    assert np.max(np.abs(projected @ unit)) < 1e-3 * np.max(np.abs(plain @ unit))
    assert np.allclose(projected, plain - np.outer(plain @ unit, unit), atol=1e-4)


def test_patch(smollm2: CausalLM) -> None:
    site = Site("resid_post", 8)
    source = "The capital of Italy is"
    assert len(smollm2.encode(source)) == len(smollm2.encode(PROMPT))
    src_act, src_next = smollm2.run([Capture(source, site, ALL), NextLogProbs(source)])
    got_act, got_next = smollm2.run(
        [Capture(PROMPT, site, ALL), NextLogProbs(PROMPT)], Intervention((Patch(site, source, ALL),))
    )
    assert np.array_equal(got_act, src_act)
    assert float(np.max(np.abs(got_next - src_next))) < 1e-4  # the whole stream was replaced
    # last onto last across different lengths; a shape mismatch fails that query only
    last = smollm2.run([Capture("Hi there", site, LAST)], Intervention((Patch(site, source, LAST),)))[0]
    assert np.array_equal(last, src_act[-1])
    bad = smollm2.run([NextLogProbs("Hi there")], Intervention((Patch(site, source, ALL),)))[0]
    assert isinstance(bad, QueryFailed) and "patch" in bad.message


def test_captures_share_one_forward_pass(smollm2: CausalLM) -> None:
    before = smollm2.stats.copy()
    sites = [
        Site("resid_pre", 0),
        Site("resid_post", 0),
        Site("attn_out", 5),
        Site("mlp_out", -1),
        Site("resid_post", 29),
    ]
    acts = smollm2.run([Capture(PROMPT, s, LAST) for s in sites] + [Capture(PROMPT, Site("resid_post", -1), ALL)])
    assert (smollm2.stats.batches - before.batches, smollm2.stats.rows - before.rows) == (1, 1)
    assert all(a.shape == (576,) for a in acts[:5]) and acts[5].shape == (5, 576)
    assert np.array_equal(acts[3 + 1], acts[5][-1])  # layer -1 is layer 29
    # resid_pre of block 0 is the token embedding
    emb = smollm2.module.model.embed_tokens.weight[smollm2.encode(PROMPT)[-1]].detach().numpy()
    assert np.array_equal(acts[0], emb)
    # resid_post[0] = resid_pre[0] + attn_out[0] + mlp_out[0]
    a0, m0 = smollm2.run([Capture(PROMPT, Site("attn_out", 0)), Capture(PROMPT, Site("mlp_out", 0))])
    assert np.allclose(acts[1], acts[0] + a0 + m0, atol=1e-4)


def test_selectors_respect_left_padding(smollm2: CausalLM) -> None:
    site = Site("resid_post", 4)
    v = _vector(smollm2, 3)
    steer = Intervention((Add(site, v, 5.0, TokenSel.index(0)),))
    queries = [Capture("Hi there friend", site, TokenSel.index(0)), NextLogProbs("Hi there friend")]
    alone = smollm2.run(queries, steer)
    together = smollm2.run([*queries, NextLogProbs(PROMPTS[2])], steer)[:2]
    assert np.allclose(alone[0], together[0], atol=1e-5)
    assert float(np.max(np.abs(alone[1] - together[1]))) < 1e-4
    (first,) = smollm2.run([Capture("Hi there friend", site, TokenSel.index(0))])
    assert np.allclose(alone[0], first + 5.0 * v.data, atol=1e-4)


def test_bad_queries_fail_one_by_one(smollm2: CausalLM) -> None:
    results = smollm2.run(
        [
            NextLogProbs(PROMPT),
            Capture("Hi", Site("resid_post", 2), TokenSel.index(5)),
            Lens(PROMPT, " Bangkok"),
            Perplexity("Hi"),
            NextLogProbs(""),
            Capture(PROMPT, Site("resid_post", 30)),
        ]
    )
    assert isinstance(results[0], np.ndarray)
    assert all(isinstance(r, QueryFailed) for r in results[1:]), results
    assert "out of range" in results[1].message and "out of range" in results[5].message
    wrong_dim = smollm2.run(
        [NextLogProbs(PROMPT)], Intervention((Add(Site("resid_post", 1), Vector(np.ones(3)), 1.0),))
    )
    assert isinstance(wrong_dim[0], QueryFailed) and "hidden size" in wrong_dim[0].message


def test_fingerprint_is_stable_across_loads(smollm2: CausalLM) -> None:
    again = CausalLM(ModelSource("smollm2-135m", path=REGISTRY["smollm2-135m"].build(ModelStore())), dtype="float32",
                     device="cpu", memo=None)
    assert weights_fingerprint(again.module) == weights_fingerprint(smollm2.module) == smollm2.weights_digest
    assert again.fingerprint == smollm2.fingerprint != smollm2.weights_digest


def test_fingerprint_is_the_same_for_the_gguf_file(smollm2: CausalLM) -> None:
    path = REGISTRY["smollm2-135m-gguf"].build(ModelStore())
    gguf = CausalLM(ModelSource("smollm2-135m-gguf", path=path), dtype="float32", device="cpu", memo=None)
    # The same dequantized tensors, config and tokenizer, read from one file instead of a directory.
    assert gguf.weights_digest == smollm2.weights_digest and gguf.fingerprint == smollm2.fingerprint
    assert gguf.run([NextLogProbs(PROMPT)])[0].argmax() == smollm2.token_id(" Paris")


def test_dtype_changes_the_fingerprint_and_keeps_the_answer() -> None:
    half = load_model("smollm2-135m", "causal_lm", dtype="bfloat16")
    (logp,) = half.run([NextLogProbs(PROMPT)])
    assert half.token_text(int(np.argmax(logp))) == " Paris"
    assert half.fingerprint != load_model("smollm2-135m", "causal_lm").fingerprint
