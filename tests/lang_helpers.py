"""Shared helpers of the language front-end tests: the corpus, the CLI, and the contract
every diagnostic must meet (a location, a rendering, no other exception)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from msl.check import check_file
from msl.errors import MslError, SpecErrors
from msl.fmt import format_parsed
from msl.ir import CheckedSpec
from msl.lint import lint_spec
from msl.parse import Parsed, parse_file

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"


def example_specs() -> list[Path]:
    """The valid specs the tests start from: the corpus and the project's `specs/`."""
    return sorted(CORPUS.glob("*.msl")) + sorted((ROOT / "specs").rglob("*.msl"))


#: `file:line:col: error|warning: ...` — the first line of every rendered diagnostic.
LOCATION = re.compile(r"^(?P<file>[^\n]*?):(?P<line>\d+):(?P<col>\d+): (error|warning): \S", re.MULTILINE)


def assert_well_formed(error: MslError, files: dict[str, str] | None = None) -> str:
    """A diagnostic has a span with a sane line and column and renders without exception.

    ``files`` maps file names to their text when known, to bound the line numbers.
    """
    assert error.span is not None, f"diagnostic without a location: {error.message!r}"
    span = error.span
    assert span.line >= 1 and span.column >= 1, f"bad position {span} for {error.message!r}"
    assert span.end_line >= span.line, f"span ends before it starts: {span!r}"
    if files is not None and span.file in files:
        lines = files[span.file].split("\n")
        assert span.line <= len(lines) + 1, f"line {span.line} past the end ({len(lines)} lines)"
    rendered = error.render()
    assert LOCATION.match(rendered), rendered
    assert f"{span.file}:{span.line}:{span.column}:" in rendered
    assert error.message.strip(), "empty message"
    return rendered


@dataclass
class Outcome:
    """What the static pipeline made of one file."""

    parsed: Parsed | None
    spec: CheckedSpec | None
    problems: list[MslError]


def run_pipeline(path: Path) -> Outcome:
    """parse → check → lint, and fmt (with its own guarantees) on whatever parses.

    Any exception other than :class:`SpecErrors` escapes, which is what the tests want.
    """
    problems: list[MslError] = []
    parsed: Parsed | None = None
    try:
        parsed = parse_file(path, str(path))
    except SpecErrors as exc:
        problems.extend(exc.errors)
    if parsed is not None:
        assert_fmt_preserves(parsed)
    spec: CheckedSpec | None = None
    try:
        spec = check_file(path)
    except SpecErrors as exc:
        problems.extend(exc.errors)
    if spec is not None:
        problems.extend(spec.warnings)
        problems.extend(lint_spec(spec))
    return Outcome(parsed, spec, problems)


def assert_fmt_preserves(parsed: Parsed) -> None:
    """fmt's contract: its output parses to the same AST, keeps every comment, and
    formatting it again changes nothing."""
    from msl.parse import parse_text

    once = format_parsed(parsed)
    again = parse_text(once, parsed.source.name)
    assert again.module == parsed.module, f"fmt changed the meaning:\n{once}"
    assert format_parsed(again) == once, f"fmt is not idempotent:\n{once}"
    for comment in parsed.comments:
        assert comment.text in once, f"fmt lost the comment {comment.text!r}"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m msl ARGS`` on this checkout; the result and the seconds it took."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "msl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )
    return result, time.perf_counter() - start
