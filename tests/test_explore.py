"""Explore on smollm2-135m: linear probes by layer (seeded, reproducible), probe
directions, the logit lens over a set of prompts, and how their tables and curves reach
the terminal and HTML reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest
from steer_helpers import SPECS, by_name, check, runner, table, write_spec

from msl.builtins.explore import fit_probes
from msl.findings import FindingsDocument
from msl.reporters import render_report


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result cache the tests of this module share (the activations of the reviews)."""
    return tmp_path_factory.mktemp("explore") / "results.sqlite"


def reviews_spec(folder: Path, body: str) -> Path:
    """A spec next to a copy of the reviews data set (datasets are read beside the spec)."""
    (folder / "reviews.jsonl").write_bytes((SPECS / "data" / "sentiment_pairs.jsonl").read_bytes())
    return write_spec(
        folder, 'data reviews = dataset("reviews.jsonl", text: "text", label: "label", control: "control")\n' + body
    )


# ── The probe itself ─────────────────────────────────────────────────────────────────────


def test_fit_probes_learns_a_separable_label_and_not_a_random_one() -> None:
    rng = np.random.default_rng(0)
    n, d = 120, 40
    labels = ["pos" if i % 2 else "neg" for i in range(n)]
    signal = np.array([1.0 if v == "pos" else -1.0 for v in labels])
    readable = rng.normal(size=(n, d)) + 3.0 * signal[:, None] * (np.arange(d) == 3)
    noise = rng.normal(size=(n, d))
    order = rng.permutation(n)
    train, test = order[:84], order[84:]
    fits = fit_probes(np.stack([readable, noise]), labels, train, test, seed=1)
    assert fits[0].accuracy >= 0.9
    assert fits[1].accuracy <= 0.75
    assert fits[0].classes == ("neg", "pos") and fits[0].weights.shape == (2, d)
    # the direction the probe learns on the readable layer is the planted coordinate
    w = fits[0].weights[1] - fits[0].weights[0]
    assert int(np.argmax(np.abs(w))) == 3
    # layers are trained independently: alone, a layer gets the same predictions
    (alone,) = fit_probes(readable[None], labels, train, test, seed=1)
    assert alone.accuracy == fits[0].accuracy
    # the same seed gives the same probe
    assert np.array_equal(
        fit_probes(np.stack([readable, noise]), labels, train, test, seed=1)[1].weights, fits[1].weights
    )


def test_probe_accuracy_by_layer_is_reproducible_with_its_seed(smollm2: Any, tmp_path: Path, cache: Path) -> None:
    spec = reviews_spec(tmp_path, """
explore layers {
  let a = probe(lm.resid_post, data: reviews, layers: [0, 6, 12], seed: 1)
  let again = probe(lm.resid_post, data: reviews, layers: [0, 6, 12], seed: 1)
  let other = probe(lm.resid_post, data: reviews, layers: [0, 6, 12], seed: 2)
  let control = probe(lm.resid_post, data: reviews, label: "control", layers: [0, 6, 12], seed: 1)
  expect max(a) >= 0.8
  expect first(a >= 0.8) <= 12
  expect max(control) <= 0.8
}
""")
    first = by_name(check(runner(smollm2, cache=cache), spec))["layers"]
    assert first.verdict.value == "holds", first.message
    curves = {s.name: s for s in first.series}
    assert curves["a"].points == curves["again"].points
    assert curves["a"].points != curves["other"].points  # another seed: another split
    assert [x for x, _ in curves["a"].points] == [0, 6, 12]
    assert curves["a"].y_label == curves["control"].y_label == "probe accuracy"  # one plot
    assert curves["a"].reference == 0.8
    # one table, a column per let
    by_layer = table(first, "by layer")
    ci = [f"{side} 95% CI {end}" for side in ("a", "again", "other", "control") for end in ("low", "high")]
    assert by_layer.columns == ["layer", "a", *ci[:2], "again", *ci[2:4], "other", *ci[4:6], "control", *ci[6:]]
    assert [row[0] for row in by_layer.rows] == [0, 6, 12]
    # each accuracy with its exact interval over the test split (scipy's Clopper–Pearson)
    n = len((tmp_path / "reviews.jsonl").read_text().splitlines())
    n_test = n - min(max(1, round(0.7 * n)), n - 1)
    for row in by_layer.rows:
        acc, low, high = row[1], row[2], row[3]
        exact = binomtest(round(acc * n_test), n_test).proportion_ci(confidence_level=0.95, method="exact")
        assert (low, high) == pytest.approx((exact.low, exact.high), abs=1e-6) and low <= acc <= high
    # a fresh run (activations recomputed, nothing cached) gives the same accuracies
    rerun = by_name(check(runner(smollm2), spec))["layers"]
    assert {s.name: s.points for s in rerun.series} == {s.name: s.points for s in first.series}
    assert rerun.id == first.id
    # the run's --seed decides the split when the probe names none
    unseeded = reviews_spec(tmp_path, """
explore layers {
  let a = probe(lm.resid_post, data: reviews, layers: [0, 6, 12])
  expect max(a) >= 0
}
""")
    runs = [
        by_name(check(runner(smollm2, seed=s, cache=cache), unseeded))["layers"].series[0].points for s in (0, 0, 5)
    ]
    assert runs[0] == runs[1] != runs[2]


def test_probe_direction_separates_the_classes_and_is_saved(smollm2: Any, tmp_path: Path, cache: Path) -> None:
    spec = reviews_spec(tmp_path, """
vector sentiment = probe_direction(lm.resid_post[12], data: reviews, positive: "positive", seed: 1)
vector negative = probe_direction(lm.resid_post[12], data: reviews, positive: "negative", seed: 1)
explore direction {
  expect abs(norm(sentiment) - 1) <= 0.0001
  expect cosine(sentiment, negative) <= -0.9999
}
""")
    run = runner(smollm2, cache=cache)
    finding = by_name(check(run, spec))["direction"]
    assert finding.verdict.value == "holds", finding.message
    assert set(finding.vectors) == {"sentiment", "negative"}
    from msl.queries import LAST, Capture, Site
    from msl.values import Record

    rows = [Record(tuple(r)) for r in _records(tmp_path / "reviews.jsonl")]
    direction = dict((label, v) for _, label, v in run.vectors)["sentiment"]
    captures = smollm2.run([Capture(r.text, Site("resid_post", 12), LAST) for r in rows])
    projection = np.asarray(captures) @ direction
    positive = np.array([r.get("label") == "positive" for r in rows])
    assert projection[positive].mean() > projection[~positive].mean()


def _records(path: Path) -> list[list[tuple[str, Any]]]:
    import json

    return [list(json.loads(line).items()) for line in path.read_text().splitlines()]


def test_probe_under_an_intervention_sees_the_ablated_activations(smollm2: Any, tmp_path: Path, cache: Path) -> None:
    spec = reviews_spec(tmp_path, """
intervention erase = zero(at: lm.resid_post[12])
explore erased {
  expect max(probe(lm.resid_post, data: reviews, layers: [12], seed: 1) with erase) <= 0.6
  expect max(probe(lm.resid_post, data: reviews, layers: [12], seed: 1)) >= 0.8
}
""")
    finding = by_name(check(runner(smollm2, cache=cache), spec))["erased"]
    assert finding.verdict.value == "holds", finding.message  # all-zero features: nothing to read


# ── The logit lens over a set ────────────────────────────────────────────────────────────

FACTS = """data facts = [{prompt: "The capital of France is", answer: " Paris"},
                  {prompt: "The capital of Japan is", answer: " Tokyo"},
                  {prompt: "The capital of Egypt is", answer: " Cairo"}]
"""


def test_logit_lens_over_factual_prompts(smollm2: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, FACTS + """
explore lens {
  for f in facts
  let ranks = lm.lens_rank(f.prompt, f.answer)
  expect first(ranks <= 100) <= 29
}
explore lens_top1 {
  for f in facts
  expect first(lm.lens_rank(f.prompt, f.answer) == 1) <= 29
  tolerate 40%
}
explore lens_too_early {
  for f in facts
  expect first(lm.lens_rank(f.prompt, f.answer) == 1) <= 20
}
""")
    found = by_name(check(runner(smollm2), spec))
    assert {n: f.verdict.value for n, f in found.items()} == {
        "lens": "holds",
        "lens_top1": "holds",
        "lens_too_early": "violated",
    }
    summary = table(found["lens"], "ranks: logit lens rank, by layer over 3 inputs")
    assert summary.columns == ["layer", "mean", "median", "min", "max"]
    assert [row[0] for row in summary.rows] == list(range(30))
    last = summary.rows[-1]
    assert last[1:4] == [pytest.approx(1 + 4 / 3), 1, 1]  # Paris, Tokyo top-1; Cairo rank 5 at the output
    (curve,) = found["lens"].series
    assert curve.name == "median ranks over 3 inputs" and curve.points[-1] == (29.0, 1.0) and curve.reference == 100
    per_prompt = table(found["lens_top1"], "per instance")
    assert [row[1] for row in per_prompt.rows] == [29, 29, "inf"]  # Cairo is never the top token
    assert found["lens_top1"].statistics.violations == 1
    worst = found["lens_too_early"].counterexamples[0]
    assert worst.values["first(lm.lens_rank(f.prompt, f.answer) == 1)"] in (29.0, "inf")


# ── Reports ──────────────────────────────────────────────────────────────────────────────


def test_tables_reach_the_terminal_and_plots_the_html(smollm2: Any, tmp_path: Path, cache: Path) -> None:
    spec = reviews_spec(tmp_path, FACTS + """
explore layers {
  let acc = probe(lm.resid_post, data: reviews, layers: [0, 6, 12], seed: 1)
  expect max(acc) >= 0.8
}
explore lens {
  for f in facts
  let ranks = lm.lens_rank(f.prompt, f.answer)
  expect first(ranks <= 100) <= 29
}
""")
    doc = check(runner(smollm2, cache=cache), spec)
    text = render_report(doc, "text")
    assert "by layer — acc: probe accuracy (label)" in text
    assert "ranks: logit lens rank, by layer over 3 inputs" in text
    assert "The capital of Japan is" in text  # the per-instance table
    accuracy_rows = [line.split() for line in text.splitlines() if line.strip().startswith(("0 ", "6 ", "12 "))]
    assert len(accuracy_rows) >= 3
    html = render_report(doc, "html")
    assert html.count("<svg") == 2
    assert "probe accuracy by layer" in html and "logit lens rank by layer" in html
    FindingsDocument.model_validate_json(render_report(doc, "json"))


#: The verdicts specs/explore_lm.msl earns on smollm2-135m (one violated on purpose).
EXPLORE_VERDICTS = {
    "sentiment_by_layer": "holds",
    "lens_finds_answers_late": "holds",
    "lens_top1_by_layer_26": "violated",
}


@pytest.mark.slow
def test_the_explore_spec_reproduces_on_a_rerun(smollm2: Any) -> None:
    first = check(runner(smollm2), SPECS / "explore_lm.msl")
    second = check(runner(smollm2), SPECS / "explore_lm.msl")
    assert {f.claim.name: f.verdict.value for f in first.findings} == EXPLORE_VERDICTS
    assert [f.id for f in first.findings] == [f.id for f in second.findings]
