"""One rule for every aggregate (docs/language.md#aggregates), checked on the sentiment
organism against an independent computation, and on the checker's readings.

Issue 12, item 9: in a ``for`` claim, ``max(abs(s(x) - s(swap(x)))) >= t`` was read per
instance (violated on most instances) while ``mean(…)`` in the same place aggregated
over the instances. Now both aggregate: the verdict must be the one the largest gap over
the claim's instances gives, computed here with transformers directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from msl.check import check_file
from msl.errors import Severity, SpecErrors
from msl.findings import Finding
from msl.lexicons import load_lexicon
from msl.run import Runner, RunOptions

ROOT = Path(__file__).resolve().parent.parent
ORGANISM = ROOT / "msl" / "organisms" / "sentiment"

NAMES = ("James", "John", "Kevin", "Robert")
FOODS = ("soup", "pizza")
ADJECTIVES = ("great", "wonderful", "superb", "lovely", "awful")

HEADER = f"""msl 1.0
model clf: classifier = "organism:sentiment"
lexicon male = builtin("names.male")
lexicon female = builtin("names.female")
data reviews = template("{{name}} said the {{food}} was {{adj}}.",
                        name: {list(NAMES)}, food: {list(FOODS)}, adj: {list(ADJECTIVES)})
transform gender_swap = swap(male, female)
measure s(x) = log(clf.prob(x, "positive")) - log(clf.prob(x, "negative"))
""".replace("'", '"')

GAP = "abs(s(x) - s(gender_swap(x)))"


def run(tmp_path: Path, body: str, seed: int = 0) -> dict[str, Finding]:
    path = tmp_path / "gaps.msl"
    path.write_text(HEADER + body)
    doc = Runner(RunOptions(seed=seed, progress=False, cache=False)).check([check_file(path)])
    return {f.claim.name: f for f in doc.findings}


@pytest.fixture(scope="module")
def gaps() -> dict[str, float]:
    """|s(x) − s(swap(x))| for every review, with s the log-odds of "positive", computed
    from the organism's logits with transformers (the swap done here by hand)."""
    male, female = load_lexicon("names.male"), load_lexicon("names.female")
    tok = AutoTokenizer.from_pretrained(ORGANISM)
    model = AutoModelForSequenceClassification.from_pretrained(ORGANISM, use_safetensors=True).eval()
    pos, neg = model.config.label2id["positive"], model.config.label2id["negative"]
    texts = [f"{n} said the {f} was {a}." for n in NAMES for f in FOODS for a in ADJECTIVES]
    swapped = [t.replace(t.split()[0], female[male.index(t.split()[0])], 1) for t in texts]
    with torch.no_grad():
        logp = torch.log_softmax(model(**tok(texts + swapped, return_tensors="pt", padding=True)).logits.double(), -1)
    s = (logp[:, pos] - logp[:, neg]).numpy()
    return dict(zip(texts, np.abs(s[: len(texts)] - s[len(texts) :]).tolist(), strict=True))


def test_max_over_a_for_claim_is_the_largest_over_its_instances(tmp_path: Path, gaps: dict[str, float]) -> None:
    largest, smallest = max(gaps.values()), min(gaps.values())
    reach = largest * 0.98  # only the largest gaps reach it: per instance, this is violated
    assert sum(g < reach for g in gaps.values()) > len(gaps) // 2
    found = run(tmp_path, f"""
verify largest_gap_reaches {{ for x in reviews  expect max({GAP}) >= {reach} }}
verify largest_gap_stays_under {{ for x in reviews  expect max({GAP}) <= {reach} }}
verify smallest_gap_is_small {{ for x in reviews  expect min({GAP}) <= {smallest * 1.02 + 1e-6} }}
verify mean_gap {{ for x in reviews  expect mean({GAP}) >= 0 }}
""")
    verdicts = {name: f.verdict.value for name, f in found.items()}
    assert verdicts == {"largest_gap_reaches": "holds", "largest_gap_stays_under": "violated",
                        "smallest_gap_is_small": "holds", "mean_gap": "holds"}
    for name in verdicts:
        assert found[name].method.value == "exhaustive"
    values = found["largest_gap_reaches"].statistics.values
    assert values[f"max({GAP})"] == pytest.approx(largest, rel=1e-4)
    assert found["smallest_gap_is_small"].statistics.values[f"min({GAP})"] == pytest.approx(
        smallest, rel=1e-3, abs=1e-5
    )
    mean = found["mean_gap"].statistics.values
    assert mean[f"mean({GAP})"] == pytest.approx(np.mean(list(gaps.values())), rel=1e-4)
    assert 0 <= mean[f"mean({GAP}) ci_low"] <= mean[f"mean({GAP})"] <= mean[f"mean({GAP}) ci_high"]
    assert found["mean_gap"].statistics.interval_method == {f"mean({GAP})": "bootstrap-bca"}


def test_max_over_a_sample_decides_only_from_the_side_the_sample_bounds(tmp_path: Path, gaps: dict[str, float]) -> None:
    """The set's largest gap is at least the sample's: a sample can show that the largest
    reaches a level (a witness), or that it exceeds one, never that it stays under."""
    largest = max(gaps.values())
    found = run(tmp_path, f"""
verify reaches {{ for x in sample(reviews, 20)  expect max({GAP}) >= {largest * 0.5} }}
verify stays_under_all {{ for x in sample(reviews, 20)  expect max({GAP}) <= {largest * 1.5} }}
verify stays_under_less {{ for x in sample(reviews, 20)  expect max({GAP}) <= {largest * 0.5} }}
verify misses {{ for x in sample(reviews, 20)  expect max({GAP}) >= {largest * 1.5} }}
""")
    sample_max = found["reaches"].statistics.values[f"max({GAP})"]
    assert sample_max <= largest * (1 + 1e-4) and sample_max >= largest * 0.5  # the sample holds a Kevin review
    assert {name: (f.verdict.value, f.method.value) for name, f in found.items()} == {
        "reaches": ("holds", "statistical"),               # true of the whole set: largest >= 0.5 largest
        "stays_under_all": ("inconclusive", "statistical"),  # true of the set, but a sample cannot show it
        "stays_under_less": ("violated", "statistical"),     # a sampled gap already exceeds it
        "misses": ("inconclusive", "statistical"),           # false of the set; the sample cannot show that
    }
    assert "check the whole set" in (found["stays_under_all"].message or "")


def checker_problems(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "readings.msl"
    path.write_text('msl 1.0\nmodel net: network = "organism:relu-net"\n' + body)
    try:
        spec = check_file(path)
    except SpecErrors as exc:
        return [f"{e.severity.name.lower()}: {e.message}" for e in exc.errors]
    return [f"{e.severity.name.lower()}: {e.message}" for e in spec.warnings
            if e.severity is Severity.WARNING and "never used" not in e.message]


@pytest.mark.parametrize(("expect", "quantifier", "problems"), [
    # several numbers: the largest of them, on each instance — no note
    ("max(net(x)[0], net(x)[1]) >= 0", "for x in [[0, 0, 0, 0]]", []),
    # a vector: its largest element, on each instance (the L-infinity distance)
    ("max(abs(net(x) - net(x))) <= 1", "for x in [[0, 0, 0, 0]]", []),
    ("max(abs(net(x) - net(x))) <= 1", "forall x in box(lower: [0, 0, 0, 0], upper: [1, 1, 1, 1])", []),
    # one number per instance: over the instances, and the checker says so
    ("max(net(x)[0]) >= 0", "for x in [[0, 0, 0, 0]]",
     ["warning: `max` of one number per instance is the largest over the claim's instances "
      "(an aggregate, as `mean` is)"]),
    ("min(net(x)[0]) >= 0", "for x in [[0, 0, 0, 0]]",
     ["warning: `min` of one number per instance is the smallest over the claim's instances "
      "(an aggregate, as `mean` is)"]),
    ("mean(net(x)[0]) >= 0", "for x in [[0, 0, 0, 0]]", []),
    # a domain's points have no instances to aggregate
    ("mean(net(x)[0]) >= 0", "forall x in box(lower: [0, 0, 0, 0], upper: [1, 1, 1, 1])",
     ["error: `mean` would aggregate over the points of `forall x in …`, and a domain has no instances to aggregate"]),
    ("max(net(x)[0]) <= 9", "forall x in box(lower: [0, 0, 0, 0], upper: [1, 1, 1, 1])",
     ["error: `max` would aggregate over the points of `forall x in …`, and a domain has no instances to aggregate"]),
    # a value of unknown type: over the instances, and the checker says so
    ("mean(x.score) >= 0", "for x in [{text: \"a\", score: 1}]",
     ["warning: the type of `x.score` is not known here: `mean` reads it as one value per instance "
      "and aggregates it over the claim's instances"]),
])
def test_the_checker_names_each_reading(tmp_path: Path, expect: str, quantifier: str, problems: list[str]) -> None:
    assert checker_problems(tmp_path, f"verify c {{\n  {quantifier}\n  expect {expect}\n}}\n") == problems


def test_max_takes_a_generator_like_every_aggregate(tmp_path: Path) -> None:
    """`max(f(x) for x in S)` was refused ("`max` is not an aggregate"); its value is the
    largest over the generator, checked against the network run with onnxruntime."""
    import onnxruntime

    points = [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [-1.0, 0.5, 0.0, 1.0]]
    session = onnxruntime.InferenceSession(str(ROOT / "msl" / "organisms" / "relu-net.onnx"))
    feed = session.get_inputs()[0].name
    largest = max(float(session.run(None, {feed: np.asarray([p], np.float32)})[0][0][0]) for p in points)
    path = tmp_path / "generator.msl"
    path.write_text(f"""msl 1.0
model net: network = "organism:relu-net"
verify reaches {{ expect max(net(x)[0] for x in {points}) >= {largest - 1e-3} }}
verify exceeds {{ expect max(net(x)[0] for x in {points}) > {largest + 1e-3} }}
""")
    doc = Runner(RunOptions(progress=False, cache=False)).check([check_file(path)])
    found = {f.claim.name: f for f in doc.findings}
    assert found["reaches"].verdict.value == "holds" and found["exceeds"].verdict.value == "violated"
    value = next(v for k, v in found["reaches"].statistics.values.items() if k.startswith("max("))
    assert value == pytest.approx(largest, abs=1e-5)


def test_a_mean_over_instances_reports_an_interval_in_its_range(tmp_path: Path) -> None:
    """Issue 12, item 10: the mean of a non-negative quantity (here `abs`, as a KL) with
    one large value had a t interval below 0. The finding's interval stays among the
    values, and the finding says how each interval was made."""
    values = [0.001, 0.002, 0.001, 0.003, 0.001, 0.002, 0.001, 0.001, 0.002, 0.001, 3.0]
    path = tmp_path / "kl.msl"
    path.write_text(f"""msl 1.0
verify mean_small {{ for v in {values}  expect mean(abs(v)) <= 1 }}
verify sampled {{ for v in sample({values}, 8)  expect v >= 0  expect mean(abs(v)) <= 5  tolerate 50% }}
""")
    doc = Runner(RunOptions(progress=False, cache=False)).check([check_file(path)])
    found = {f.claim.name: f for f in doc.findings}
    stats = found["mean_small"].statistics
    assert found["mean_small"].verdict.value == "holds"
    assert stats.values["mean(abs(v))"] == pytest.approx(np.mean(values))
    assert min(values) <= stats.values["mean(abs(v)) ci_low"] <= stats.values["mean(abs(v)) ci_high"] <= max(values)
    assert stats.interval_method == {"mean(abs(v))": "bootstrap-bca"}
    sampled = found["sampled"].statistics
    assert sampled.interval_method == {"mean(abs(v))": "bootstrap-percentile", "rate": "clopper-pearson"}
    assert 0 <= sampled.values["mean(abs(v)) ci_low"]


def test_lint_says_what_a_sample_cannot_show_about_an_extreme(tmp_path: Path) -> None:
    from msl.lint import lint_spec

    path = tmp_path / "sampled.msl"
    path.write_text("""msl 1.0
data xs = [1, 2, 3, 4, 5, 6]
verify reaches { for v in sample(xs, 3)  expect max(v) >= 3 }
verify stays_under { for v in sample(xs, 3)  expect max(v) <= 9 }
verify total { for v in sample(xs, 3)  expect sum(v) <= 9 }
verify average { for v in sample(xs, 3)  expect mean(v) <= 9 }
""")
    found = {(p.span.line, p.message) for p in lint_spec(check_file(path)) if p.severity is Severity.WARNING}
    assert found == {
        (4, "a sample bounds the whole set's `max` from one side only: this expectation can end violated "
            "or inconclusive, not holds"),
        (5, "`sum` over a sample is not an estimate of the whole set's: this expectation ends inconclusive"),
    }


def test_an_aggregate_of_a_single_value_is_an_error_not_the_value(tmp_path: Path) -> None:
    """Inside a measure the checker cannot see an instance: `max(g)` of the number a claim
    passes is neither a collection nor the values over the instances, so it is an error
    (it used to be the number itself, read per instance)."""
    path = tmp_path / "single.msl"
    path.write_text("msl 1.0\nmeasure worst(g) = max(g)\nverify w { for v in [1, 2, 3]  expect worst(v) >= 3 }\n")
    (finding,) = Runner(RunOptions(progress=False, cache=False)).check([check_file(path)]).findings
    assert finding.verdict.value == "error"
    assert finding.error is not None and "`max` of a single value" in finding.error.message
