"""docs/tutorial.md stays true: its code is the example spec's, and the verdicts and numbers
it quotes are what the spec earns on the organisms."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _workflow() -> dict:
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return yaml.safe_load(block)


def _model_hash(step: dict, cwd: Path, tmp_path: Path) -> str:
    """Run the workflow's "Model references" step as GitHub would (bash, $GITHUB_OUTPUT)."""
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    env = {**os.environ, "GITHUB_OUTPUT": str(output), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, check=True, timeout=120)
    (line,) = output.read_text(encoding="utf-8").splitlines()
    name, _, value = line.partition("=")
    assert name == "hash" and re.fullmatch(r"[0-9a-f]{16}", value), line
    return value


def test_the_ci_example_caches_models_keyed_by_the_model_references(tmp_path: Path) -> None:
    """The GitHub Actions example keeps ~/.cache/msl, under a key that changes with a
    spec's model line and not with the rest of a spec."""
    steps = _workflow()["jobs"]["specs"]["steps"]
    names = [s.get("name") for s in steps]
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    refs = next(s for s in steps if s.get("id") == "models")
    assert names.index(refs["name"]) < names.index(cache["name"]) < names.index("Check specs")
    assert names.index("Install MSL") < names.index(refs["name"])  # it runs `msl --version`
    assert cache["with"]["path"] == "~/.cache/msl"
    assert "${{ steps.models.outputs.hash }}" in cache["with"]["key"]
    # The key, computed on a copy of specs/: a model line changes it, a claim does not.
    shutil.copytree(ROOT / "specs", tmp_path / "repo" / "specs")
    repo = tmp_path / "repo"
    before = _model_hash(refs, repo, tmp_path)
    spec = repo / "specs" / "verify_sentiment.msl"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text + "\nverify extra {\n  for i in [1]\n  expect i > 0\n}\n", encoding="utf-8")
    assert _model_hash(refs, repo, tmp_path) == before
    assert 'model clf: classifier = "organism:sentiment"' in text
    spec.write_text(text.replace('"organism:sentiment"', '"./my-classifier"'), encoding="utf-8")
    assert _model_hash(refs, repo, tmp_path) != before
