"""The shared pipeline (load → check → lint): which engine each checked claim names, and
diagnostics that quote their own line, whoever renders them."""

from __future__ import annotations

from pathlib import Path

import pytest

from msl.errors import MslError, SpecError, quote_lines
from msl.pipeline import any_errors, check_and_lint
from msl.source import Source, Span

SPEC = """msl 1.0
model clf: classifier
model net: network
data reviews = ["good", "bad", "fine"]
let many = sample(reviews, 2)
verify each_review {
  for x in reviews
  expect clf.label(x) == "POSITIVE"
}
verify sampled_through_a_name {
  for x in many
  expect clf.label(x) == "POSITIVE"
  tolerate 10%
}
verify sampled_inline {
  for x in sample(reviews, 2)
  expect clf.label(x) == "POSITIVE"
}
verify nested {
  for x in reviews
  for y in many
  expect clf.label(x) == clf.label(y)
}
verify in_a_box {
  forall x in box([0, 0], [1, 1])
  expect net(x)[0] >= 0
}
refine keeps {
  base = clf
  refined = clf
  preserves "other.msl"
}
"""

OTHER = """msl 1.0
model clf: classifier
verify other {
  expect clf.label("good") == "POSITIVE"
}
"""


def test_each_claim_names_the_engine_that_checks_it(tmp_path: Path) -> None:
    """A `forall` is symbolic, one `for` over a sample (inline or through a name) is
    statistical, a `for` over a whole set — or over two sets — is exhaustive, and a
    `preserves` claim re-checks the other spec."""
    (tmp_path / "other.msl").write_text(OTHER, encoding="utf-8")
    (tmp_path / "spec.msl").write_text(SPEC, encoding="utf-8")
    specs, problems = check_and_lint([tmp_path / "spec.msl"])
    assert not any_errors(problems), [p.render() for p in problems]
    engines = {c.name: c.engine for c in specs[0].claims}
    assert engines == {
        "each_review": "exhaustive",
        "sampled_through_a_name": "statistical",
        "sampled_inline": "statistical",
        "nested": "exhaustive",
        "in_a_box": "symbolic",
        "keeps": "preserves",
    }


def test_a_lint_warning_quotes_its_line(tmp_path: Path) -> None:
    """Lint runs after checking, on the checked spec: its diagnostics still quote the
    line they point at (a sample without `tolerate` can never show `holds`)."""
    (tmp_path / "other.msl").write_text(OTHER, encoding="utf-8")
    (tmp_path / "spec.msl").write_text(SPEC, encoding="utf-8")
    _, problems = check_and_lint([tmp_path / "spec.msl"])
    (warning,) = [p for p in problems if "never that it is zero" in p.message]
    lines = warning.render().splitlines()
    assert lines[0] == f"{tmp_path / 'spec.msl'}:15:8: warning: {warning.message}"
    assert lines[1] == "  verify sampled_inline {"
    assert lines[2] == "         " + "^" * len("sampled_inline")


def test_an_error_quotes_the_text_it_was_given_not_a_later_one() -> None:
    """An error keeps the line of the text it was found in: parsing a new version of the
    same file (an editor's buffer) does not change what an older diagnostic quotes."""
    old = Source("spec.msl", "msl 1.0\nverify a { expect 1 }\n")
    error = SpecError("something", Span("spec.msl", 2, 8, 2, 9))
    quote_lines([error], [old])
    Source("spec.msl", "msl 1.0\n\n\nverify b {}\n")  # a later text of the same name
    assert error.render().splitlines()[1:] == ["  verify a { expect 1 }", "         ^"]


@pytest.mark.parametrize("line", [1, 3])
def test_an_error_of_an_unknown_text_quotes_nothing(line: int) -> None:
    error = MslError("no text", Span("elsewhere.msl", line, 1, line, 2))
    quote_lines([error], [Source("spec.msl", "msl 1.0\n")])
    assert error.render() == f"elsewhere.msl:{line}:1: error: no text"
