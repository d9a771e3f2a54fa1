"""docs/tutorial.md stays true: its code is the example spec's, and the verdicts and numbers
it quotes are what the spec earns on the organisms."""

from __future__ import annotations

import re
from pathlib import Path

from msl.check import check_file
from msl.lint import lint_spec
from msl.run import Runner, RunOptions

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
EXAMPLE = ROOT / "docs" / "examples" / "first.msl"


def test_every_msl_block_of_the_tutorial_is_in_the_example_spec() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    blocks = re.findall(r"```msl\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 4
    for block in blocks:
        for line in block.strip().splitlines():
            assert line in example, line


def test_the_example_spec_earns_what_the_tutorial_says() -> None:
    spec = check_file(EXAMPLE)
    assert lint_spec(spec) == []
    doc = Runner(RunOptions(progress=False, cache=False)).check([spec])
    findings = {f.claim.name: f for f in doc.findings}
    assert {n: f.verdict.value for n, f in findings.items()} == {
        "praise_is_positive": "holds", "names_rarely_matter": "violated",
        "no_name_flips_praise": "refuted", "top_right_is_class_two": "proved",
    }
    assert findings["praise_is_positive"].statistics.n == 650
    sampled = findings["names_rarely_matter"].statistics
    assert (sampled.violations, sampled.n) == (3, 32)  # the tutorial quotes 3/32, CI 1.08%–30.28%
    assert round(sampled.interval[0] * 100, 2) == 1.08 and round(sampled.interval[1] * 100, 2) == 30.28
    shrunk = findings["no_name_flips_praise"].counterexamples[0]
    assert shrunk.input["text"] == "Kevin said the tea was good."
