"""Diagnostics: errors that carry a span and render themselves.

Every user-facing problem is an :class:`MslError` (or a list of them in
:class:`SpecErrors`). The CLI catches these and prints ``file:line:col: message``,
the source line and a caret, never a Python traceback. The exit code comes from the
error's class, following the CLI contract of the brief.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from msl.source import Source, Span, lookup

#: Specs larger than this are refused before parsing, so hostile input stays cheap
#: (the pure-Python LALR parser reads about 60 KB a second; data belongs in datasets).
MAX_SPEC_BYTES = 256 * 1024


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

    def render(self, source: Source | None = None) -> str:
        """``file:line:col: error: message``, then the quoted line, a caret and the hint."""
        label = "warning" if self.severity is Severity.WARNING else "error"
        if source is None and self.span is not None:
            source = lookup(self.span.file)
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{label}: {self.message}"]
        if self.span and source is not None and source.name == self.span.file:
            text = source.line(self.span.line)
            if text or self.span.line <= len(source.lines):
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


#: How a spec begins: the `msl` header, after blank lines and comments.
_SPEC_START = re.compile(r"\ufeff?(?:\s|#[^\n]*\n)*msl\b")


def decode_utf8(name: str, data: bytes) -> str:
    """Decode spec bytes strictly; a bad byte is reported at its line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        # the column in characters, and the text with the bad bytes shown as U+FFFD, so the
        # diagnostic can quote the line with a caret like any other
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        shown = data.decode("utf-8", errors="replace")
        # a file that does not even begin like a spec is quoted no further than its start
        (Source(name, shown) if _SPEC_START.match(shown) else Source.peek(name, shown, line)).register()
        raise SpecError(
            f"file is not valid UTF-8 text (byte 0x{data[exc.start]:02x})",
            Span.point(name, line, column),
            hint="MSL specs are UTF-8 text files",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def check_size(name: str, size: int) -> None:
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"file is too large for a spec ({size // 1024} KB; the limit is {MAX_SPEC_BYTES // 1024} KB)",
            Span.point(name),
            hint="put large data in a JSONL or CSV dataset and load it with dataset(...)",
        )


def errors_in(items: Iterable[MslError]) -> list[MslError]:
    """Only the errors (not warnings) of ``items``."""
    return [e for e in items if e.severity is Severity.ERROR]
