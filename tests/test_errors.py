"""Golden error messages for the mistakes a spec author makes most.

Each `tests/golden/NAME.msl` holds one mistake; `NAME.expected` holds exactly what
`msl lint NAME.msl` prints (diagnostics with their caret lines and hints, the summary)
and its exit code. Regenerate after a deliberate change of wording with

    MSL_UPDATE_GOLDEN=1 python -m pytest tests/test_errors.py

and read the diff before committing it: these files are the user interface.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from lang_helpers import LOCATION, run_cli

from msl.cli import cli

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MSL_UPDATE_GOLDEN") == "1"


def cases() -> list[Path]:
    return sorted(GOLDEN.glob("*.msl"))


def lint_output(name: str) -> str:
    """What `msl lint NAME` prints, run in the golden folder, and its exit code."""
    result = CliRunner().invoke(cli, ["lint", name], catch_exceptions=False)
    return result.output + f"[exit {result.exit_code}]\n"


@pytest.mark.parametrize("spec", cases(), ids=lambda p: p.stem)
def test_golden_message(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    actual = lint_output(spec.name)
    expected_file = spec.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), f"no golden output for {spec.name}: run with MSL_UPDATE_GOLDEN=1"
    assert actual == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", cases(), ids=lambda p: p.stem)
def test_golden_message_has_the_house_style(spec: Path) -> None:
    """`file:line:col: error: message`, the quoted line, a caret; exit 2 for an error."""
    text = spec.with_suffix(".expected").read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert LOCATION.match(first), first
    assert first.startswith(f"{spec.name}:")
    lines = text.splitlines()
    assert lines[1].startswith("  ") and lines[2].strip().startswith("^"), text
    assert "Traceback" not in text
    errors = text.count(": error: ")
    assert text.endswith(f"[exit {2 if errors else 0}]\n")


def test_there_are_at_least_twenty_cases() -> None:
    assert len(cases()) >= 20


def test_golden_output_is_what_the_real_command_prints() -> None:
    """The in-process runner and a real `python -m msl` subprocess agree byte for byte."""
    names = [p.name for p in cases()[:3]]
    result, _ = run_cli("lint", *names, cwd=GOLDEN)
    combined = result.stderr
    for name in names:
        golden = (GOLDEN / name).with_suffix(".expected").read_text(encoding="utf-8")
        diagnostics = golden.rsplit("\n0 spec(s) checked", 1)[0].rsplit("\n1 spec(s) checked", 1)[0]
        assert diagnostics in combined
    assert result.returncode == 2
