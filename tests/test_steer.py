"""Steering on smollm2-135m: vectors (computed, labelled, hashed, saved, pinned), effects,
dose–response, side effects, ablation, and the steer spec of ``specs/``.

The effect of the spec's steering vector is re-measured by :func:`independent_effects`,
which uses transformers and one plain forward hook — none of MSL's intervention code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steer_helpers import SPECS, by_name, check, runner, table, write_spec

from msl.errors import UsageError
from msl.pipeline import any_errors, check_paths
from msl.queries import LAST, Capture, Site
from msl.vectors import INDEX_KEY, VectorFile, claim_vectors, digest, vectors_path

PROMPTS = '["I thought the movie was", "Overall, the trip was", "Her new song is"]'
LOVE = '["I love this city", "I love my job", "I love this song"]'
HATE = '["I hate this city", "I hate my job", "I hate this song"]'

SMALL = f"""
data neutral = {PROMPTS}
measure sentiment(t) = lm.logprob(t, " good") - lm.logprob(t, " bad")
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
intervention push = add(love, scale: 2, at: lm.resid_post[15])

steer effect {{
  for p in neutral
  expect mean(sentiment(p) with push - sentiment(p)) >= 0.3
}}

steer inline {{
  for p in neutral
  expect mean(sentiment(p) with add(pca_diff(lm.resid_post[12], {LOVE}, {HATE}), scale: 2, at: lm.resid_post[12])
              - sentiment(p)) >= 0
}}
"""


# ── Vectors ──────────────────────────────────────────────────────────────────────────────


def test_vectors_are_labelled_by_what_made_them_and_hashed(smollm2: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SMALL)
    run = runner(smollm2)
    found = by_name(check(run, spec))
    assert found["effect"].verdict.value == "holds"
    assert list(found["effect"].vectors) == ["love"]
    (inline,) = found["inline"].vectors
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "pca_diff" in text)
    assert inline.startswith(f"inline@{line}:")  # the claim, and where the call stands

    made = {label: vector for _, label, vector in run.vectors}
    love = made["love"]
    assert found["effect"].vectors["love"] == "sha256:" + hashlib.sha256(love.astype("<f4").tobytes()).hexdigest()
    # mean_diff is the mean activation on the positive prompts minus that on the negative ones
    site = Site("resid_post", 15)
    pos = smollm2.run([Capture(t, site, LAST) for t in json.loads(LOVE)])
    neg = smollm2.run([Capture(t, site, LAST) for t in json.loads(HATE)])
    assert np.allclose(love, np.mean(pos, axis=0) - np.mean(neg, axis=0), atol=1e-4)
    # pca_diff: the first principal direction of the pairs, as long as their mean difference
    pca = made[inline]
    diffs = np.asarray(smollm2.run([Capture(t, Site("resid_post", 12), LAST) for t in json.loads(LOVE)])) - np.asarray(
        smollm2.run([Capture(t, Site("resid_post", 12), LAST) for t in json.loads(HATE)])
    )
    assert np.linalg.norm(pca) == pytest.approx(np.linalg.norm(diffs.mean(axis=0)), rel=1e-4)
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    assert abs(float(pca @ vt[0])) / np.linalg.norm(pca) == pytest.approx(1.0, abs=1e-4)
    assert float(pca @ diffs.mean(axis=0)) > 0


def test_pinned_vectors_are_used_instead_of_computed(smollm2: Any, tmp_path: Path) -> None:
    """Save → pin on a second run: the same values (the same vector gives the same queries,
    answered from the same cache); pinned vectors are data, so two runs pinning the same file
    share their ids and a different pinned vector changes them."""
    spec = write_spec(tmp_path, SMALL)
    cache = tmp_path / "results.sqlite"
    first = runner(smollm2, cache=cache)
    doc = check(first, spec)
    saved = tmp_path / "findings.vectors.safetensors"
    VectorFile.of(first.vectors).save(saved)

    pinned = VectorFile.load(saved)
    again = check(runner(smollm2, cache=cache, vectors=pinned), spec)
    assert [f.statistics for f in again.findings] == [f.statistics for f in doc.findings]
    twice = check(runner(smollm2, cache=cache, vectors=VectorFile.load(saved)), spec)
    assert [f.id for f in twice.findings] == [f.id for f in again.findings]

    doubled = VectorFile.of((s, label, 2 * v) for s, label, v in first.vectors)
    other = by_name(check(runner(smollm2, cache=cache, vectors=doubled), spec))
    before = by_name(doc)
    assert other["effect"].vectors["love"] == digest(2 * dict((lb, v) for _, lb, v in first.vectors)["love"])
    assert other["effect"].id != by_name(again)["effect"].id
    key = "mean(sentiment(p) with push - sentiment(p))"
    assert other["effect"].statistics.values[key] != pytest.approx(before["effect"].statistics.values[key], abs=1e-3)


def test_load_vector_reads_a_saved_vector_by_label(smollm2: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SMALL)
    first = runner(smollm2)
    doc = check(first, spec)
    VectorFile.of(first.vectors).save(tmp_path / "run.vectors.safetensors")
    from safetensors.numpy import save_file

    love = dict((lb, v) for _, lb, v in first.vectors)["love"]
    save_file({"v": love}, str(tmp_path / "plain.safetensors"))
    loader = write_spec(tmp_path, f"""
data neutral = {PROMPTS}
measure sentiment(t) = lm.logprob(t, " good") - lm.logprob(t, " bad")
vector by_label = load_vector("run.vectors.safetensors", key: "love")
vector by_key = load_vector("plain.safetensors", key: "v")
steer reuse {{
  for p in neutral
  expect mean(sentiment(p) with add(by_label, scale: 2, at: lm.resid_post[15]) - sentiment(p)) >= 0.3
  expect mean(sentiment(p) with add(by_key, scale: 2, at: lm.resid_post[15]) - sentiment(p)) >= 0.3
}}
""", "loader.msl")
    reuse = by_name(check(runner(smollm2), loader))["reuse"]
    assert reuse.verdict.value == "holds"
    assert set(reuse.vectors.values()) == {by_name(doc)["effect"].vectors["love"]}


def test_vector_files_are_checked_before_use(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    good = VectorFile.of([("a.msl", "love", np.arange(4, dtype=np.float32)), ("b.msl", "love", np.ones(4, np.float32)),
                          ("b.msl", "hate", -np.ones(4, np.float32))])
    path = tmp_path / "v.vectors.safetensors"
    good.save(path)
    loaded = VectorFile.load(path)
    assert loaded.index == good.index and all(np.array_equal(loaded.tensors[d], good.tensors[d]) for d in good.tensors)
    assert np.array_equal(loaded.pins("a.msl")["love"], np.arange(4, dtype=np.float32))
    assert np.array_equal(loaded.pins("b.msl")["love"], np.ones(4, np.float32))
    # another spec path (a replay elsewhere): only labels the file gives one vector
    assert set(loaded.pins("elsewhere/b.msl")) == {"hate"}

    def refused(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None, match: str) -> None:
        bad = tmp_path / "bad.safetensors"
        save_file(tensors, str(bad), metadata=metadata)
        with pytest.raises(UsageError, match=match):
            VectorFile.load(bad)

    v = np.ones(3, np.float32)
    refused({"sha256:" + "0" * 64: v}, None, "does not match its digest")
    refused({digest(v.astype(np.float64)): v.astype(np.float64)}, None, "not a float32 vector")
    refused({digest(v): v}, {INDEX_KEY: json.dumps([["s.msl", "x", "sha256:" + "1" * 64]])}, "does not hold")
    refused({digest(v): v}, {INDEX_KEY: "{not json"}, "malformed")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(UsageError, match="not a safetensors file"):
        VectorFile.load(tmp_path / "junk.safetensors")
    with pytest.raises(UsageError, match="larger than"):
        VectorFile.load(path, max_bytes=10)
    assert vectors_path(Path("out/findings.json")) == Path("out/findings.vectors.safetensors")


def test_claim_vectors_follow_declarations_and_measures(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, f"""
data neutral = {PROMPTS}
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
vector other = mean_diff(lm.resid_post[3], {LOVE}, {HATE})
intervention push = add(love, scale: 2, at: lm.resid_post[15])
measure pushed(t) = lm.logprob(t, " good") with push
verify uses_love {{
  for p in neutral
  expect mean(pushed(p) - lm.logprob(p, " good")) >= 0
}}
""")
    (spec,), problems = check_paths([spec_path])
    assert not any_errors(problems)
    made = {
        "love": ("sha256:a", np.ones(1)),
        "other": ("sha256:b", np.ones(1)),
        "uses_love@9:5": ("sha256:c", np.ones(1)),
        "another_claim@3:1": ("sha256:d", np.ones(1)),
    }
    assert claim_vectors(spec.symbols, spec.claims[0].claim, made) == {"love": "sha256:a", "uses_love@9:5": "sha256:c"}


# ── Steer claims ─────────────────────────────────────────────────────────────────────────


def test_scale_zero_is_exactly_no_effect_and_the_dose_curve_is_reported(smollm2: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, f"""
data neutral = {PROMPTS}
measure sentiment(t) = lm.logprob(t, " good") - lm.logprob(t, " bad")
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
steer dose {{
  for p in neutral
  expect mean(sentiment(p) with add(love, scale: 0, at: lm.resid_post[15]) - sentiment(p)) == 0
  expect increasing(mean(sentiment(p) with add(love, scale: s, at: lm.resid_post[15]) - sentiment(p))
                    for s in [0, 1, 2])
}}
""")
    dose = by_name(check(runner(smollm2), spec))["dose"]
    assert dose.verdict.value == "holds", dose.message
    (curve,) = dose.series
    assert curve.x_label == "s" and [x for x, _ in curve.points] == [0, 1, 2]
    assert curve.points[0][1] == 0.0  # exactly: scale 0 runs the unsteered queries
    assert curve.points[1][1] > 0
    rows = table(dose, "dose–response").rows
    assert [r[:2] for r in rows] == [[x, round(y, 6)] for x, y in curve.points]
    assert rows[0][2:] == [0.0, 0.0]  # the interval of a mean of zeros
    assert all(lo <= y <= hi for _, y, lo, hi in rows)
    per_prompt = table(dose, "per instance").rows
    assert [r[1] for r in per_prompt] == [0.0, 0.0, 0.0]


def test_side_effects_and_ablation(smollm2: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, f"""
data control = ["The capital of France is", "A week has seven"]
let story = "The old lighthouse stood at the edge of the cliff."
measure sentiment(t) = lm.logprob(t, " good") - lm.logprob(t, " bad")
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
intervention push = add(love, scale: 2, at: lm.resid_post[15])
intervention ablate = project_out(love, at: lm.resid_post[15])
steer kl_small {{
  for c in control
  expect mean(kl(lm.next(c), lm.next(c) with push)) <= 1
  expect mean(kl(lm.next(c), lm.next(c) with add(love, scale: 0, at: lm.resid_post[15]))) == 0
}}
steer fluent {{
  expect lm.perplexity(story) with push <= 3 * lm.perplexity(story)
}}
steer ablation {{
  for t in ["this city", "my job"]
  expect mean((sentiment("I love " + t + ". It is") - sentiment("I hate " + t + ". It is")) with ablate)
         <= 0.5 * mean(sentiment("I love " + t + ". It is") - sentiment("I hate " + t + ". It is"))
}}
""")
    found = by_name(check(runner(smollm2), spec))
    assert {name: f.verdict.value for name, f in found.items()} == {
        "kl_small": "holds",
        "fluent": "holds",
        "ablation": "holds",
    }
    values = found["kl_small"].statistics.values
    kl = values["mean(kl(lm.next(c), lm.next(c) with push))"]
    assert 0 < kl <= 1
    assert values["mean(kl(lm.next(c), lm.next(c) with push)) ci_low"] <= kl
    assert found["kl_small"].statistics.confidence == 0.95
    assert found["fluent"].statistics.values["lm.perplexity(story) with push"] > 0


def test_lint_rejects_a_dose_claim_on_project_out(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, f"""
data neutral = {PROMPTS}
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
steer dose_on_ablation {{
  for p in neutral
  expect increasing(mean(lm.logprob(p, " good") with project_out(love, scale: s, at: lm.resid_post[15]))
                    for s in [0, 1, 2])
}}
""")
    _, problems = check_paths([spec])
    messages = [p.render() for p in problems]
    assert any("`project_out` has no dose" in m and "add(vector, scale: s" in m for m in messages), messages
    from click.testing import CliRunner

    from msl.cli import cli

    result = CliRunner().invoke(cli, ["lint", str(spec)])
    assert result.exit_code == 2 and "has no dose" in result.output


# ── The steer spec, and an independent measurement of its effect ────────────────────────


def independent_effects(
    model_dir: Path, vector: np.ndarray, layer: int, scale: float, prompts: list[str]
) -> list[float]:
    """sentiment(p) with ``scale × vector`` added to block ``layer``'s output at every
    position, minus sentiment(p) — with transformers and a plain forward hook, no MSL."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    model.eval()
    (good,) = tokenizer(" good", add_special_tokens=False)["input_ids"]
    (bad,) = tokenizer(" bad", add_special_tokens=False)["input_ids"]
    delta = scale * torch.from_numpy(np.asarray(vector, np.float32))

    def sentiment(prompt: str) -> float:
        with torch.no_grad():
            logits = model(torch.tensor([tokenizer(prompt)["input_ids"]])).logits[0, -1]
        logp = torch.log_softmax(logits.double(), dim=-1)
        return float(logp[good] - logp[bad])

    def add(module: Any, args: Any, output: Any) -> Any:
        return (output[0] + delta, *output[1:]) if isinstance(output, tuple) else output + delta

    base = [sentiment(p) for p in prompts]
    handle = model.model.layers[layer].register_forward_hook(add)
    try:
        steered = [sentiment(p) for p in prompts]
    finally:
        handle.remove()
    return [s - b for s, b in zip(steered, base, strict=True)]


def test_a_plain_forward_hook_measures_the_same_effect(smollm2: Any, tmp_path: Path) -> None:
    run = runner(smollm2, select=("love_raises_sentiment",))
    finding = by_name(check(run, SPECS / "steer_lm.msl"))["love_raises_sentiment"]
    saved = tmp_path / "findings.vectors.safetensors"
    VectorFile.of(run.vectors).save(saved)
    love = VectorFile.load(saved).pins("specs/steer_lm.msl")["love"]
    assert digest(love) == finding.vectors["love"]

    rows = table(finding, "per instance").rows
    prompts = [r[0] for r in rows]
    effects = independent_effects(smollm2.source.path, love, 15, 2.0, prompts)
    column = table(finding, "per instance").columns.index("sentiment(p) with push - sentiment(p)")
    assert max(abs(r[column] - e) for r, e in zip(rows, effects, strict=True)) < 1e-4
    mean = finding.statistics.values["mean(sentiment(p) with push - sentiment(p))"]
    assert abs(mean - float(np.mean(effects))) < 1e-4


#: The verdicts specs/steer_lm.msl earns on smollm2-135m (one violated on purpose).
STEER_VERDICTS = {
    "love_raises_sentiment": "holds",
    "dose_response": "holds",
    "small_kl_on_control_prompts": "holds",
    "fluency_kept": "holds",
    "ablation_removes_gap": "holds",
    "ablation_leaves_probes_above_chance": "violated",
    "other_directions_steer_too": "holds",
    "directions_agree": "holds",
}


@pytest.mark.slow
def test_the_steer_spec_reproduces_on_a_rerun(smollm2: Any, tmp_path: Path) -> None:
    first_run = runner(smollm2)
    first = check(first_run, SPECS / "steer_lm.msl")
    second_run = runner(smollm2)
    second = check(second_run, SPECS / "steer_lm.msl")
    assert {f.claim.name: f.verdict.value for f in first.findings} == STEER_VERDICTS
    assert {f.claim.name: f.verdict.value for f in second.findings} == STEER_VERDICTS
    for a, b in zip(first.findings, second.findings, strict=True):
        assert a.vectors == b.vectors
        for key, value in (a.statistics.values if a.statistics else {}).items():
            assert b.statistics.values[key] == pytest.approx(value, abs=1e-4), key
    # the spec's saved vector is the one this run computes
    assert by_name(first)["directions_agree"].statistics.values["cosine(love, saved)"] > 0.9999


def test_msl_check_saves_vectors_beside_the_findings_and_pins_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from msl.cli import cli
    from msl.findings import load_findings

    spec = write_spec(tmp_path, SMALL)
    out = tmp_path / "findings.json"
    first = CliRunner().invoke(cli, ["check", "-q", "--no-cache", str(spec), "-o", str(out)])
    assert first.exit_code == 0, first.output
    saved = tmp_path / "findings.vectors.safetensors"
    labels = {label for _, label, _ in VectorFile.load(saved).index}
    assert "love" in labels and len(labels) == 2
    again_out = tmp_path / "again.json"
    second = CliRunner().invoke(
        cli, ["check", "-q", "--no-cache", str(spec), "-o", str(again_out), "--vectors", str(saved)]
    )
    assert second.exit_code == 0, second.output
    a, b = load_findings(out), load_findings(again_out)
    assert [f.vectors for f in a.findings] == [f.vectors for f in b.findings]
    assert [f.verdict for f in a.findings] == [f.verdict for f in b.findings]
    bad = CliRunner().invoke(cli, ["check", "-q", str(spec), "--vectors", str(tmp_path / "missing.safetensors")])
    assert bad.exit_code == 2 and "vectors file" in bad.output


def test_the_specs_are_canonical_and_lint_clean() -> None:
    """Both specs format to themselves (their dose–response calls take a generator, which
    `msl fmt` must not split with a trailing comma) and lint with no problem at all — the
    steer claims apply their interventions inside measures (`shift`, `drift`)."""
    from click.testing import CliRunner

    from msl.cli import cli

    paths = [str(SPECS / "steer_lm.msl"), str(SPECS / "explore_lm.msl")]
    formatted = CliRunner().invoke(cli, ["fmt", "--check", *paths])
    assert formatted.exit_code == 0, formatted.output
    linted = CliRunner().invoke(cli, ["lint", *paths])
    assert linted.exit_code == 0 and "0 error(s), 0 warning(s)" in linted.output, linted.output


def test_fmt_keeps_a_long_dose_response_call_parseable(tmp_path: Path) -> None:
    from msl.fmt import format_parsed
    from msl.parse import parse_file

    spec = write_spec(
        tmp_path,
        f"""
data neutral = {PROMPTS}
vector love = mean_diff(lm.resid_post[15], {LOVE}, {HATE})
steer dose {{
  for p in neutral
  expect increasing(mean(lm.logprob(p, " good") with add(love, scale: s, at: lm.resid_post[15]) - lm.logprob(p, " good")) for s in [0, 1, 2, 4, 8])
}}
""",  # noqa: E501 - the spec's one long line is what the formatter is given
    )
    once = format_parsed(parse_file(spec, str(spec)))
    spec.write_text(once, encoding="utf-8")
    assert format_parsed(parse_file(spec, str(spec))) == once  # it parses, and formatting is idempotent
