"""Lint: contradictions and vacuous expectations found with z3, before any model runs.

Each test writes a small spec, checks it (it must check clean: lint only sees checked
specs) and looks at what `lint_spec` reports. Reports that must *not* appear matter as
much as those that must: a lint that cries wolf gets switched off.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msl.check import check_file
from msl.errors import MslError, Severity
from msl.lint import lint_spec

HEADER = """msl 1.0
model lm: causal_lm
model edited: causal_lm
data prompts = ["a", "b", "c"]
data others = ["d", "e"]
measure pa(t) = lm.prob(t, " a")
measure sentiment(t) = lm.logprob(t, " positive") - lm.logprob(t, " negative")
"""


def lint(tmp_path: Path, body: str, name: str = "spec.msl") -> list[MslError]:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return lint_spec(check_file(path))


def messages(problems: list[MslError]) -> list[str]:
    return [p.message for p in problems if p.severity is Severity.ERROR]


def contradictions(problems: list[MslError]) -> list[MslError]:
    return [p for p in problems if "contradicts" in p.message]


def line_of(problem: MslError) -> int:
    assert problem.span is not None
    return problem.span.line - HEADER.count("\n")


# ── Contradictions that must be found ────────────────────────────────────────────────────


def test_contradiction_across_claims_over_the_same_set(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify high {
  for x in prompts
  expect sentiment(x) >= 1
}
verify low {
  for y in prompts
  expect sentiment(y) <= 0
}
""")
    (found,) = contradictions(problems)
    assert found.message == f"this expectation contradicts claim `high` (line {HEADER.count(chr(10)) + 4})"
    assert line_of(found) == 8
    assert found.hint == "no input satisfies both `sentiment(x) >= 1` and `sentiment(y) <= 0`"
    assert found.severity is Severity.ERROR


def test_contradiction_with_a_sample_of_the_set(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify all_high {
  for x in prompts
  expect pa(x) > 0.8
}
verify sampled_low {
  for x in sample(prompts, 2, seed: 1)
  expect pa(x) < 0.5
}
""")
    assert len(contradictions(problems)) == 1


def test_contradiction_through_let_and_measure_inlining(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify via_let {
  for x in prompts
  let p = lm.prob(x, " a")
  expect p >= 0.9
}
verify via_measure {
  for x in prompts
  expect pa(x) <= 0.1
}
verify direct {
  for x in prompts
  expect 2 * lm.prob(x, " a") - 1 > 0.9
}
""")
    found = contradictions(problems)
    # via_measure contradicts via_let; direct (p > 0.95) contradicts via_measure only
    assert [(line_of(p), p.message.split("`")[1]) for p in found] == [(9, "via_let"), (13, "via_measure")]


def test_contradiction_within_one_claim(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify torn {
  for x in prompts
  expect pa(x) > 0.6
  expect lm.prob(x, " a") < 0.4
}
""")
    (found,) = contradictions(problems)
    assert found.message == "this expectation contradicts another of the same claim"
    assert line_of(found) == 5


def test_contradiction_between_closed_expectations(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify a { expect mean(pa(x) for x in prompts) > 0.7 }
verify b { expect mean(pa(x) for x in prompts) < 0.3 }
""")
    assert len(contradictions(problems)) == 1


def test_expectation_that_can_never_hold(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify impossible {
  for x in prompts
  expect pa(x) > 0.5 and pa(x) < 0.2
  expect lm.logprob(x, " a") > 0.5
}
""")
    assert messages(problems) == ["this expectation can never hold, whatever the model does"] * 2
    assert not contradictions(problems)  # said once, not once per other expectation


def test_min_max_abs_are_exact(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify a {
  for x in prompts
  expect abs(sentiment(x)) < 1
  expect max(sentiment(x), 0) >= 2
}
""")
    assert len(contradictions(problems)) == 1


# ── Vacuous expectations and tolerance ───────────────────────────────────────────────────


@pytest.mark.parametrize("condition", [
    "lm.prob(x, \" a\") >= 0",
    "pa(x) <= 100%",
    "lm.logprob(x, \" a\") <= 0",
    "sentiment(x) > 1 or sentiment(x) <= 1",
    "not (pa(x) > 2 * pa(x) + 1)",
    "lm.perplexity(x) >= 1",
    "abs(sentiment(x)) >= 0",
])
def test_vacuous_expectation(tmp_path: Path, condition: str) -> None:
    problems = lint(tmp_path, f"""
verify v {{
  for x in prompts
  expect {condition}
}}
""")
    assert messages(problems) == ["this expectation holds whatever the model does, so it checks nothing"]
    assert problems[0].hint == "compare the measurement with a threshold that a model could miss"


def test_tolerating_everything(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
verify anything_goes {
  for x in prompts
  expect pa(x) > 0.5
  tolerate 100%
}
""")
    assert messages(problems) == ["tolerating 100% of violations makes this claim pass whatever the model does"]
    assert line_of(problems[0]) == 5


@pytest.mark.parametrize(("first", "second", "reported"), [
    ("60%", "60%", False),   # each may fail on 60%: both can pass
    ("50%", "50%", False),   # exactly enough room: half the inputs each
    ("40%", "40%", True),    # 80% of violations tolerated, 100% certain
    ("0%", "99%", True),
    ("5%", None, True),
])
def test_tolerances_that_make_a_contradiction_acceptable(
    tmp_path: Path, first: str, second: str | None, reported: bool
) -> None:
    tolerate_b = f"tolerate {second}" if second else ""
    problems = lint(tmp_path, f"""
verify a {{
  for x in prompts
  expect pa(x) > 0.8
  tolerate {first}
}}
verify b {{
  for x in prompts
  expect pa(x) < 0.2
  {tolerate_b}
}}
""")
    assert bool(contradictions(problems)) is reported


# ── What must NOT be reported ────────────────────────────────────────────────────────────


@pytest.mark.parametrize("body", [
    pytest.param("""
verify a { for x in prompts
  expect pa(x) > 0.8 }
verify b { for x in others
  expect pa(x) < 0.2 }
""", id="different-sets"),
    pytest.param("""
verify a { for x in prompts
  expect pa(x) > 0.3 }
verify b { for x in prompts
  expect pa(x) < 0.5 }
""", id="satisfiable-together"),
    pytest.param("""
verify a { for x in prompts
  expect pa(x) * sentiment(x) > 5 }
verify b { for x in prompts
  expect pa(x) < 0.1 and pa(x) * pa(x) < 0.001 }
""", id="non-linear-atoms"),
    pytest.param("""
verify a { for x in prompts
  expect pa(x) > 0.8 }
verify b { for x in prompts
  expect lm.prob(x, " b") < 0.2 }
""", id="different-measurements"),
    pytest.param("""
verify a { for x in prompts
  expect pa(x) > 0.8 }
verify b { for x in prompts
  expect pa(x) with add(mean_diff(lm.resid_post[1], ["a"], ["b"]), at: lm.resid_post[1]) < 0.2 }
""", id="intervened-is-another-quantity"),
    pytest.param("""
verify a { for x in prompts
  let v = pa(x)
  expect v > 0.8 }
verify b { for x in prompts
  let v = lm.prob(x, " b")
  expect v < 0.2 }
""", id="same-let-name-other-value"),
    pytest.param("""
refine a { base = lm
  refined = edited
  for x in prompts
  expect refined.prob(x, " a") > 0.8 }
refine b { base = edited
  refined = lm
  for x in prompts
  expect refined.prob(x, " a") < 0.2 }
""", id="refined-is-another-model-in-each-claim"),
    pytest.param("""
verify a { for x in prompts
  expect mean(pa(x)) > 0.8 }
verify b { for x in sample(prompts, 2)
  expect mean(pa(x)) < 0.2 }
""", id="mean-of-a-sample-is-not-the-mean-of-the-set"),
    pytest.param("""
verify a { for x in prompts
  expect invariant pa(x) under lowercase within 0 }
verify b { for x in prompts
  expect increases pa(x) under lowercase by 0.5
  expect agree pa(x), pa(x) within 0 }
""", id="behavioural-forms"),
    pytest.param("""
verify a { for x in prompts
  for y in others
  expect pa(x) > 0.8 }
verify b { for x in prompts
  expect pa(x) < 0.2 }
""", id="two-quantifiers"),
])
def test_not_reported(tmp_path: Path, body: str) -> None:
    problems = lint(tmp_path, body)
    assert messages(problems) == []


def test_same_refined_model_is_compared(tmp_path: Path) -> None:
    problems = lint(tmp_path, """
refine a { base = lm
  refined = edited
  for x in prompts
  expect refined.prob(x, " a") > 0.8 }
refine b { base = lm
  refined = edited
  for x in prompts
  expect refined.prob(x, " a") < 0.2 }
""")
    assert len(contradictions(problems)) == 1


def test_the_corpus_is_clean(tmp_path: Path) -> None:
    from lang_helpers import example_specs

    for spec in example_specs():
        problems = lint_spec(check_file(spec))
        assert messages(problems) == [], spec


def test_a_hostile_number_of_claims_stays_within_budget(tmp_path: Path) -> None:
    """Thousands of expectations over one set are millions of pairs: lint must stop in
    time, and say so, rather than run for hours."""
    import time

    from msl import lint as lint_module

    body = "".join(f"verify c{i} {{ for x in prompts expect pa(x) > {i % 90}% }}\n" for i in range(400))
    path = tmp_path / "many.msl"
    path.write_text(HEADER + body, encoding="utf-8")
    spec = check_file(path)
    original = lint_module.MAX_QUESTIONS
    lint_module.MAX_QUESTIONS = 500
    try:
        start = time.perf_counter()
        problems = lint_spec(spec)
        again = lint_spec(spec)
        elapsed = time.perf_counter() - start
    finally:
        lint_module.MAX_QUESTIONS = original
    assert elapsed < 10
    (warning,) = problems
    assert warning.severity is Severity.WARNING
    assert warning.message.startswith("lint stopped searching for contradictions after 500 questions")
    # counted in work: the same place every time, whatever the machine's speed
    assert [(p.message, p.span) for p in again] == [(p.message, p.span) for p in problems]


# ── Property: lint agrees with an independent interval check ─────────────────────────────

#: Atoms and the ranges their built-ins guarantee (None: unbounded on that side).
ATOMS = {
    'lm.prob(x, " a")': (Fraction(0), Fraction(1)),
    'lm.logprob(x, " a")': (None, Fraction(0)),
    'lm.perplexity(x)': (Fraction(1), None),
    'lm.rank(x, " a")': (Fraction(1), None),
    'mean(lm.prob(x, " a"))': (Fraction(0), Fraction(1)),  # a mean lies among its values
}
OPS = ["<", "<=", ">", ">=", "=="]

#: Constants with finite decimal expansions, so that the spec states them exactly.
constants = st.builds(
    lambda n, d: Fraction(n, d), st.integers(min_value=-16, max_value=16), st.sampled_from([1, 2, 4, 5, 10])
)
coefficients = st.sampled_from([-3, -2, -1, 1, 2, 4])
constraints = st.tuples(coefficients, st.sampled_from(OPS), constants)


def _decimal(q: Fraction) -> str:
    text = f"{float(abs(q)):g}"
    assert Fraction(text) == abs(q)
    return f"-{text}" if q < 0 else text


def _render(atom: str, constraint: tuple[int, str, Fraction]) -> str:
    k, op, c = constraint
    return f"{k} * {atom} {op} {_decimal(c)}"


class Interval:
    """A set of reals {v : lo (<|<=) v (<|<=) hi}, exactly, with fractions."""

    def __init__(self, lo: Fraction | None, hi: Fraction | None, lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    @classmethod
    def of(cls, constraint: tuple[int, str, Fraction]) -> Interval:
        k, op, c = constraint
        bound = c / k
        if k < 0:  # dividing by a negative number flips the comparison
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[op]
        return {
            "<": cls(None, bound, hi_open=True),
            "<=": cls(None, bound),
            ">": cls(bound, None, lo_open=True),
            ">=": cls(bound, None),
            "==": cls(bound, bound),
        }[op]

    def meet(self, other: Interval) -> Interval:
        lo, lo_open = _tighter(self.lo, self.lo_open, other.lo, other.lo_open, max)
        hi, hi_open = _tighter(self.hi, self.hi_open, other.hi, other.hi_open, min)
        return Interval(lo, hi, lo_open, hi_open)

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def contains(self, other: Interval) -> bool:
        """Whether every point of ``other`` lies in this interval."""
        def below(a: Fraction | None, a_open: bool, b: Fraction | None, b_open: bool) -> bool:
            if a is None:
                return True
            if b is None:
                return False
            return a < b or (a == b and (not a_open or b_open))

        def above(a: Fraction | None, a_open: bool, b: Fraction | None, b_open: bool) -> bool:
            if a is None:
                return True
            if b is None:
                return False
            return a > b or (a == b and (not a_open or b_open))

        return other.empty() or (
            below(self.lo, self.lo_open, other.lo, other.lo_open)
            and above(self.hi, self.hi_open, other.hi, other.hi_open)
        )


def _tighter(a, a_open, b, b_open, pick):  # type: ignore[no-untyped-def]
    if a is None:
        return b, b_open
    if b is None:
        return a, a_open
    if a == b:
        return a, a_open or b_open
    return (a, a_open) if pick(a, b) == a else (b, b_open)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(atom=st.sampled_from(sorted(ATOMS)), first=constraints, second=constraints)
def test_lint_agrees_with_interval_arithmetic(
    tmp_path: Path, atom: str, first: tuple[int, str, Fraction], second: tuple[int, str, Fraction]
) -> None:
    problems = lint(tmp_path, f"""
verify a {{
  for x in prompts
  expect {_render(atom, first)}
}}
verify b {{
  for x in prompts
  expect {_render(atom, second)}
}}
""")
    found = messages(problems)
    lo, hi = ATOMS[atom]
    domain = Interval(lo, hi)
    a, b = domain.meet(Interval.of(first)), domain.meet(Interval.of(second))
    expected = []
    for alone in (a, b):
        if alone.empty():
            expected.append("this expectation can never hold, whatever the model does")
        elif Interval.of(first if alone is a else second).contains(domain):
            expected.append("this expectation holds whatever the model does, so it checks nothing")
    if not (a.empty() or b.empty()) and a.meet(b).empty():
        expected.append("this expectation contradicts claim `a`")
    assert sorted(m.split(" (")[0] for m in found) == sorted(expected), (first, second, found)
