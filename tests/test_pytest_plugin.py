"""The pytest plugin: every claim of a collected `.msl` file is a test item whose outcome is
its verdict, run on the real ReLU organism (the formal engine answers in milliseconds)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SPEC = """msl 1.0

model net: network = "organism:relu-net"

verify top_right_is_not_class_zero {
  forall x in box(lower: [0.5, 0.5, 0, -1], upper: [1, 1, 1, 1])
  expect argmax(net(x)) != 0
}

verify right_half_is_not_class_zero {
  forall x in box(lower: [0, -1, -1, -1], upper: [1, 1, 1, 1])
  expect argmax(net(x)) != 0
}

verify a_sample_without_tolerance {
  for x in sample([[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5]], 2)
  expect argmax(net(x)) == 2
}

verify points_of_class_two {
  for x in [[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5]]
  expect argmax(net(x)) == 2
}
"""

#: Load the plugin by module, whether or not the installed entry point ("msl") is active.
PLUGIN = ("-p", "no:msl", "-p", "msl.pytest_plugin", "-p", "no:cacheprovider")


def test_claims_are_items_with_their_verdicts(pytester: pytest.Pytester) -> None:
    pytester.makefile(".msl", relu=SPEC)
    result = pytester.runpytest_subprocess(*PLUGIN, "-v", "relu.msl")
    # proved and holds pass; refuted fails with its witness; inconclusive is skipped. A lint
    # *warning* (a sample without `tolerate` can never hold) does not stop the file's claims.
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*relu.msl::top_right_is_not_class_zero PASSED*",
                                 "*relu.msl::right_half_is_not_class_zero FAILED*",
                                 "*relu.msl::a_sample_without_tolerance SKIPPED*",
                                 "*relu.msl::points_of_class_two PASSED*"])
    strict = pytester.runpytest_subprocess(*PLUGIN, "--msl-strict", "relu.msl")
    strict.assert_outcomes(passed=2, failed=2)
    assert "counterexample" in result.stdout.str() and "relu.msl:10" in result.stdout.str()


def test_a_spec_with_errors_is_one_failing_item(pytester: pytest.Pytester) -> None:
    pytester.makefile(".msl", broken="msl 1.0\n\nverify c {\n  expect nosuch(1) > 0\n}\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "broken.msl")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*broken.msl:4:*"])
    assert "Traceback" not in result.stdout.str()


def test_a_bug_in_one_claim_leaves_the_others_their_findings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A claim that meets an internal error ends `error`; the run goes on (plumbing: the
    failing step is patched in, the other claim runs on the real network)."""
    from msl.check import check_file
    from msl.engines.finite import ExhaustiveRun
    from msl.run import Runner, RunOptions

    spec_file = tmp_path / "relu.msl"
    spec_file.write_text(SPEC, encoding="utf-8")
    spec = check_file(spec_file)
    real_step = ExhaustiveRun.step

    def step(self) -> None:  # type: ignore[no-untyped-def]
        if self.claim.name == "points_of_class_two":
            raise TypeError("something the engine did not expect")
        real_step(self)

    monkeypatch.setattr(ExhaustiveRun, "step", step)
    monkeypatch.delenv("MSL_DEBUG", raising=False)
    document = Runner(RunOptions(cache=False, progress=False)).check([spec])
    verdicts = {f.claim.name: f.verdict.value for f in document.findings}
    assert verdicts == {"top_right_is_not_class_zero": "proved", "right_half_is_not_class_zero": "refuted",
                        "a_sample_without_tolerance": "inconclusive", "points_of_class_two": "error"}
    broken = next(f for f in document.findings if f.verdict.value == "error")
    assert broken.error is not None and "TypeError: something the engine did not expect" in broken.error.message
