"""Source text and spans.

Every AST node, diagnostic and finding points back into the `.msl` text through a
:class:`Span`, so that an error or a violated claim can always be shown at its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from msl.errors import SpecError, quote_lines

#: Specs larger than this are refused before parsing, so hostile input stays cheap
#: (the pure-Python LALR parser reads about 60 KB a second; data belongs in datasets).
MAX_SPEC_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Span:
    """A region of one source file: 1-based lines and columns, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @classmethod
    def point(cls, file: str, line: int = 1, column: int = 1) -> Span:
        return cls(file, line, column, line, column + 1)

    def to(self, other: Span) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)


#: Of a file that is not a spec (no `msl` header, not UTF-8), diagnostics quote at most
#: this many characters of its first line, escaped: the file could be anything a link or
#: a careless folder walk reached, and its content is not ours to print.
PEEK_CHARS = 24


def confined(path: Path, root: Path) -> Path:
    """``path`` with its links resolved, if it lies inside ``root`` (links resolved too).

    The one rule for every file a spec or a folder walk reaches: specs are untrusted, so
    a link to ``/proc/self/environ`` or ``../../.env`` must not be read. Raises
    ValueError saying why (words that follow "this file is not read:").
    """
    try:
        base, resolved = root.resolve(), path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop
        raise ValueError("its links cannot be resolved (a link loop?)") from None
    if base != resolved and base not in resolved.parents:
        raise ValueError("it leads outside the folder being checked (links resolved)")
    return resolved


#: The rule, as a hint under every refusal.
INSIDE_HINT = "MSL reads only files inside the folder it checks (for a file: its folder)"


def not_read(name: str, why: ValueError) -> SpecError:
    """The error for a file :func:`confined` refused."""
    return SpecError(
        f"this file is not read: {why}",
        Span.point(name),
        hint=INSIDE_HINT,
    )


@dataclass(frozen=True, slots=True)
class Source:
    """A decoded source file; ``lines`` is kept so diagnostics can quote the text."""

    name: str
    text: str
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # lines as shown in diagnostics: the \r of a CRLF line end is not part of the line
        object.__setattr__(self, "lines", tuple(line.removesuffix("\r") for line in self.text.split("\n")))

    @classmethod
    def peek(cls, name: str, text: str, line: int = 1) -> Source:
        """A stand-in for a file that is not a spec: only the first :data:`PEEK_CHARS`
        characters of ``line`` (where its diagnostic points), so that no diagnostic can
        quote more of it."""
        lines = text.split("\n", line)
        shown = lines[line - 1] if line <= len(lines) else ""
        return cls(name, "\n" * (line - 1) + shown[:PEEK_CHARS] + ("…" if len(shown) > PEEK_CHARS else ""))

    def line(self, number: int) -> str:
        """The text of 1-based line ``number``, or ``""`` past the end."""
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else ""

    @classmethod
    def read(cls, path: Path, display: str | None = None, root: Path | None = None) -> Source:
        """Read and decode a spec file found in ``root`` (by default its own folder).

        Raises :class:`msl.errors.SpecError` on bad bytes, and without reading a byte
        when the file, links resolved, is not a regular file inside ``root``.
        """
        name = display if display is not None else str(path)
        try:
            resolved = confined(path, path.parent if root is None else root)
        except ValueError as exc:
            raise not_read(name, exc) from None
        try:
            if not resolved.is_file():  # a device or a pipe could be read forever
                raise SpecError("not a regular file", Span.point(name), hint="name a .msl file or a folder")
            check_size(name, resolved.stat().st_size)
            with resolved.open("rb") as handle:
                data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(f"cannot read file: {exc.strerror or exc}", Span.point(name)) from None
        check_size(name, len(data))
        return cls(name, decode_utf8(name, data))


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
        error = SpecError(
            f"file is not valid UTF-8 text (byte 0x{data[exc.start]:02x})",
            Span.point(name, line, column),
            hint="MSL specs are UTF-8 text files",
        )
        quote_lines([error], [Source(name, shown) if _SPEC_START.match(shown) else Source.peek(name, shown, line)])
        raise error from None
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
