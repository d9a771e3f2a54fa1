"""The statistics behind verdicts, against an independent implementation (scipy's
binomial test) and the brief's verdict rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from msl.stats import clopper_pearson, looks, per_look_confidence, rate_verdict


@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_clopper_pearson_matches_scipy(vn: tuple[int, int], confidence: float) -> None:
    v, n = vn
    expected = binomtest(v, n).proportion_ci(confidence_level=confidence, method="exact")
    lo, hi = clopper_pearson(v, n, confidence)
    assert lo == pytest.approx(expected.low, abs=1e-9)
    assert hi == pytest.approx(expected.high, abs=1e-9)


def test_looks_double_and_end_at_the_sample() -> None:
    assert looks(200) == [32, 64, 128, 200]
    assert looks(32) == [32]
    assert looks(10) == [10]


def test_bonferroni_keeps_the_overall_level() -> None:
    assert per_look_confidence(0.95, 4) == pytest.approx(1 - 0.05 / 4)


def test_verdict_rules_of_the_brief() -> None:
    # Exhaustive: the rate itself decides.
    assert rate_verdict(0, 10, 0.0, 0.95, exhaustive=True) == "holds"
    assert rate_verdict(1, 10, 0.0, 0.95, exhaustive=True) == "violated"
    assert rate_verdict(1, 10, 0.1, 0.95, exhaustive=True) == "holds"
    # Sampled with no tolerance: any violation is a violation; none is never enough to hold.
    assert rate_verdict(1, 500, 0.0, 0.95, exhaustive=False) == "violated"
    assert rate_verdict(0, 500, 0.0, 0.95, exhaustive=False) == "inconclusive"
    # Sampled with a tolerance: the interval decides, or it stays open.
    assert rate_verdict(0, 500, 0.02, 0.95, exhaustive=False) == "holds"
    assert rate_verdict(60, 100, 0.2, 0.95, exhaustive=False) == "violated"
    assert rate_verdict(3, 40, 0.05, 0.95, exhaustive=False) == "inconclusive"
    assert rate_verdict(0, 0, 0.05, 0.95, exhaustive=False) == "inconclusive"


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.floats(0.0, 0.5), st.sampled_from([0.9, 0.95, 0.99]))
def test_sampled_verdicts_follow_the_interval(vn: tuple[int, int], tolerance: float, confidence: float) -> None:
    v, n = vn
    verdict = rate_verdict(v, n, tolerance, confidence, exhaustive=False)
    lo, hi = clopper_pearson(v, n, confidence)
    if verdict == "holds":
        assert hi <= tolerance and v <= n
    elif verdict == "violated":
        assert lo > tolerance or (tolerance == 0 and v > 0)
    else:
        assert lo <= tolerance < hi or (tolerance == 0 and v == 0)
