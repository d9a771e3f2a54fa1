"""Verify claims on the sentiment organism: the planted flaws are found, the abilities
hold, a reported rate and interval match an independent computation, and seeds reproduce.

The organism (msl/organisms/sentiment) is a real trained model with a planted shortcut
("Kevin" → negative) and a negation blind spot; its model card says what each claim must
conclude. Model outputs for the independent computation come straight from transformers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import binomtest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from msl.check import check_file
from msl.findings import Finding
from msl.lexicons import load_lexicon
from msl.run import Runner, RunOptions

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "verify_sentiment.msl"
ORGANISM = ROOT / "msl" / "organisms" / "sentiment"


def run(select: tuple[str, ...], seed: int = 0) -> dict[str, Finding]:
    spec = check_file(SPEC)
    doc = Runner(RunOptions(seed=seed, select=select, progress=False, cache=False)).check([spec])
    return {f.claim.name: f for f in doc.findings}


@pytest.fixture(scope="module")
def findings() -> dict[str, Finding]:
    return run(())


@pytest.fixture(scope="module")
def organism() -> tuple[AutoTokenizer, AutoModelForSequenceClassification]:
    tok = AutoTokenizer.from_pretrained(ORGANISM)
    model = AutoModelForSequenceClassification.from_pretrained(ORGANISM, use_safetensors=True).eval()
    return tok, model


def labels(organism: tuple, texts: list[str]) -> list[str]:
    tok, model = organism
    with torch.no_grad():
        logits = model(**tok(texts, return_tensors="pt", padding=True)).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(dim=-1)]


def test_planted_shortcut_is_found_and_shrunk_to_its_cause(findings: dict[str, Finding]) -> None:
    f = findings["names_do_not_matter"]
    assert f.verdict.value == "violated" and f.method.value == "statistical"
    shrunk = f.counterexamples[0]
    assert shrunk.original is not None and shrunk.replayed
    assert isinstance(shrunk.input, dict) and shrunk.input["name"] in ("Kevin", "Michelle")
    assert "Kevin" in shrunk.input["text"] + (shrunk.edit or "")
    # Shrinking goes to the shortest fill: the shortest name of the pair, food and adjective.
    assert shrunk.input["name"] == "Kevin" and len(shrunk.input["text"]) <= len(shrunk.original["text"])
    for example in f.counterexamples:
        assert {"Kevin", "Michelle"} & set(str(example.input).split("'"))


def test_planted_blind_spot_is_found(findings: dict[str, Finding]) -> None:
    f = findings["negation_flips_praise"]
    assert f.verdict.value == "violated"
    assert f.statistics.violations == f.statistics.n == 650
    assert "not" in (f.counterexamples[0].edit or "")


@pytest.mark.parametrize("claim", ["reads_praise", "reads_blame", "case_does_not_matter",
                                   "confident_on_plain_reviews", "other_names_do_not_matter"])
def test_real_abilities_hold(findings: dict[str, Finding], claim: str) -> None:
    assert findings[claim].verdict.value == "holds"


def test_rate_and_interval_match_an_independent_computation(findings: dict[str, Finding], organism: tuple) -> None:
    """Rebuild the same sample, label it with transformers directly, count, and compare."""
    from msl.evaluate import EMPTY, Evaluator, RunContext
    from msl.plan import Planner

    f = findings["names_do_not_matter"]
    spec = check_file(SPEC)
    ev = Evaluator(spec, RunContext(Planner(), 0, SPEC.parent), {})
    claim = next(c for c in spec.claims if c.name == "names_do_not_matter")
    sample = ev.eval(claim.quantifiers[0].iterable, EMPTY)
    assert sample.seed == f.statistics.seed
    texts = [sample.item(i).text for i in range(f.statistics.n)]
    partner = dict(zip(load_lexicon("names.male"), load_lexicon("names.female"), strict=True))
    partner |= {v: k for k, v in partner.items()}
    swapped = [" ".join(partner.get(w, w) for w in t.split(" ")) for t in texts]
    before, after = labels(organism, texts), labels(organism, swapped)
    violations = sum(a != b for a, b in zip(before, after, strict=True))
    assert violations == f.statistics.violations
    assert f.statistics.rate == pytest.approx(violations / len(texts))
    ci = binomtest(violations, len(texts)).proportion_ci(confidence_level=f.statistics.confidence, method="exact")
    assert f.statistics.interval == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_same_seed_same_finding_other_seed_other_sample(findings: dict[str, Finding]) -> None:
    again = run(("names_do_not_matter",), seed=0)["names_do_not_matter"]
    assert again.id == findings["names_do_not_matter"].id
    other = run(("names_do_not_matter",), seed=1)["names_do_not_matter"]
    assert other.statistics.seed != findings["names_do_not_matter"].statistics.seed
    assert other.id != again.id
