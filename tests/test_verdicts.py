"""Honest verdicts on degenerate claims, run on the real ReLU organism: nothing passes
without evidence — an empty set is inconclusive, undefined arithmetic (0/0, the log of a
negative output, the mean of nothing) is an error, never a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from msl.check import check_file
from msl.findings import Finding
from msl.run import Runner, RunOptions

SPEC = """msl 1.0

model net: network = "organism:relu-net"

data nothing = [x for x in [[1, 1, 1, 1]] if x[0] > 5]

verify empty_set {
  for x in nothing
  expect argmax(net(x)) == 2
}

verify empty_mean {
  expect mean(net(x)[2] for x in nothing) >= 0
}

verify zero_over_zero {
  for x in [[1, 1, 1, 1]]
  expect net(x)[2] * 0 / 0 >= 0
}

verify log_of_a_negative_output {
  for x in [[1, 1, 1, 1]]
  expect log(net(x)[0]) <= 10
}

verify one_real_point {
  for x in [[1, 1, 1, 1]]
  expect argmax(net(x)) == 2
}

measure wins_two(m, x) = argmax(m(x)) == 2

verify a_measure_as_the_condition {
  for x in [[1, 1, 1, 1], [0, -1, -1, -1]]
  expect wins_two(net, x)
}

verify a_negative_threshold {
  for x in [[1, 1, 1, 1]]
  expect net(x)[0] >= -0.5
}
"""


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finding]:
    path: Path = tmp_path_factory.mktemp("verdicts") / "degenerate.msl"
    path.write_text(SPEC, encoding="utf-8")
    document = Runner(RunOptions(cache=False, progress=False)).check([check_file(path)])
    return {f.claim.name: f for f in document.findings}


def test_an_empty_set_is_inconclusive_and_says_why(findings: dict[str, Finding]) -> None:
    f = findings["empty_set"]
    assert f.verdict.value == "inconclusive" and f.statistics.n == 0
    assert "the set is empty" in (f.message or "")


@pytest.mark.parametrize(("claim", "why", "where"), [
    ("empty_mean", "mean of an empty set", "degenerate.msl:13:10"),
    ("zero_over_zero", "division by zero", "degenerate.msl:18:10"),
    ("log_of_a_negative_output", "log of a non-positive number", "degenerate.msl:23:10"),
])
def test_undefined_values_are_errors_located_in_the_spec(
    findings: dict[str, Finding], claim: str, why: str, where: str
) -> None:
    f = findings[claim]
    assert f.verdict.value == "error" and f.error is not None and why in f.error.message
    assert f.error.location is not None and f.error.location.endswith(where)


def test_one_checked_point_is_evidence(findings: dict[str, Finding]) -> None:
    f = findings["one_real_point"]
    assert f.verdict.value == "holds" and f.statistics.n == 1 and f.statistics.violations == 0


def test_a_violated_measure_shows_what_its_body_read(findings: dict[str, Finding]) -> None:
    """Not the measure's arguments (`m='net'`) but the values it compared."""
    f = findings["a_measure_as_the_condition"]
    assert f.verdict.value == "violated" and f.statistics.violations == 1
    (example,) = f.counterexamples
    assert example.input == [0.0, -1.0, -1.0, -1.0] and example.values == {"argmax(m(x))": 0.0}


def test_a_select_that_matches_nothing_is_a_usage_error(tmp_path: Path) -> None:
    """A CI job whose --select has a typo must not pass with nothing checked."""
    import subprocess
    import sys

    spec = tmp_path / "degenerate.msl"
    spec.write_text(SPEC, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "msl", "check", str(spec), "--select", "one_real_pint"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "--select one_real_pint: no claim matches" in result.stderr and "one_real_point" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_counterexample_lists_measured_values_not_the_constants(findings: dict[str, Finding]) -> None:
    (example,) = findings["a_negative_threshold"].counterexamples
    assert list(example.values) == ["net(x)[0]"] and example.values["net(x)[0]"] == pytest.approx(-0.9409, abs=1e-4)


def test_a_number_as_the_failing_input_is_reported_and_replayed(tmp_path: Path) -> None:
    """`for i in [1, 2] expect i > 1` fails at 1: every report shows it (it was an internal error),
    and replay reads the input back."""
    from msl.replay import _item
    from msl.reporters import render_report

    spec = tmp_path / "n.msl"
    spec.write_text("msl 1.0\nverify v {\n  for i in [1, 2]\n  expect i > 1\n}\n", encoding="utf-8")
    doc = Runner(RunOptions(cache=False, progress=False)).check([check_file(spec)])
    (finding,) = doc.findings
    assert finding.verdict.value == "violated" and [cx.input for cx in finding.counterexamples] == [1.0]
    for fmt in ("text", "json", "junit", "sarif", "html"):
        assert render_report(doc, fmt)
    assert _item(finding.counterexamples[0].input) == 1.0  # replay reads it back as the number
