"""Diagnostics: errors that carry a span and render themselves.

Every user-facing problem is an :class:`MslError` (or a list of them in
:class:`SpecErrors`). The CLI catches these and prints ``file:line:col: message``,
the source line and a caret, never a Python traceback. The exit code comes from the
error's class, following the CLI contract of the brief.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors sit below sources: they only carry spans and quoted lines
    from msl.source import Source, Span


class ExitCode(IntEnum):
    """Exit codes of the CLI contract (see the brief)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    RUNTIME = 3


class Severity(IntEnum):
    WARNING = 1
    ERROR = 2


class MslError(Exception):
    """An error with a location; ``render`` shows it the way a compiler would."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.severity = severity
        #: the text of the line the span points into, quoted under the message; set by
        #: :func:`quote_lines` where the source is known (parsing, checking, linting)
        self.line: str | None = None

    def render(self) -> str:
        """``file:line:col: error: message``, then the quoted line, a caret and the hint."""
        label = "warning" if self.severity is Severity.WARNING else "error"
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{label}: {self.message}"]
        if self.span and self.line is not None:
            text = self.line
            end = self.span.end_column if self.span.end_line == self.span.line else len(text) + 1
            out.extend("  " + part for part in quote(text, self.span.column, end))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return f"{self.span}: {self.message}" if self.span else self.message


class SpecError(MslError):
    """A problem in a spec: syntax, names, types (exit code 2)."""


class UsageError(MslError):
    """A problem with the command line or an input file that is not a spec (exit code 2)."""


class RuntimeFailure(MslError):
    """A model or runtime failure outside any single claim (exit code 3)."""

    exit_code = ExitCode.RUNTIME


@dataclass
class SpecErrors(Exception):
    """Several diagnostics at once (a parse with recovery, a checking pass)."""

    errors: Sequence[MslError]

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


#: Quoted source lines longer than this are shown as a window around the caret.
QUOTE_WIDTH = 100


def quote(line: str, column: int, end_column: int) -> tuple[str, str]:
    """A source line made printable and a caret line under columns [column, end_column).

    Control characters are escaped before the caret is placed, so it stays under the
    right character; a very long line (a hostile file) is cut to a window around it.
    """
    start = min(max(column - 1, 0), len(line))
    stop = min(max(end_column - 1, start + 1), len(line))
    before, marked, after = (printable(part.expandtabs(1)) for part in (line[:start], line[start:stop], line[stop:]))
    shown, caret_at, width = before + marked + after, len(before), max(1, len(marked))
    if len(shown) > QUOTE_WIDTH:
        left = max(0, caret_at - QUOTE_WIDTH // 3)
        prefix = "…" if left else ""
        suffix = "…" if left + QUOTE_WIDTH < len(shown) else ""
        shown = prefix + shown[left : left + QUOTE_WIDTH] + suffix
        caret_at += len(prefix) - left
        width = min(width, QUOTE_WIDTH - (caret_at - len(prefix)))
    return shown, " " * caret_at + "^" * width


def printable(text: str) -> str:
    """Escape control and other non-printable characters so a message is safe to print."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def quote_lines(errors: Iterable[MslError], sources: Iterable[Source]) -> None:
    """Give each error not quoted yet the text of the line its span points into, from the
    source of that file among ``sources`` (a line past the end of the file is not quoted)."""
    by_name = {source.name: source for source in sources}
    for error in errors:
        source = by_name.get(error.span.file) if error.span is not None and error.line is None else None
        if source is not None and error.span is not None:
            text = source.line(error.span.line)
            if text or error.span.line <= len(source.lines):
                error.line = text


def errors_in(items: Iterable[MslError]) -> list[MslError]:
    """Only the errors (not warnings) of ``items``."""
    return [e for e in items if e.severity is Severity.ERROR]
