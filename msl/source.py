"""Source text and spans.

Every AST node, diagnostic and finding points back into the `.msl` text through a
:class:`Span`, so that an error or a violated claim can always be shown at its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


#: Every source read in this process, by name, so any diagnostic can quote its line.
_SOURCES: dict[str, Source] = {}


def lookup(name: str) -> Source | None:
    """The source text of a file read earlier in this process (for diagnostics)."""
    return _SOURCES.get(name)


@dataclass(frozen=True, slots=True)
class Source:
    """A decoded source file; ``lines`` is kept so diagnostics can quote the text."""

    name: str
    text: str
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # lines as shown in diagnostics: the \r of a CRLF line end is not part of the line
        object.__setattr__(self, "lines", tuple(line.removesuffix("\r") for line in self.text.split("\n")))

    def register(self) -> Source:
        """Make this text the one diagnostics about ``name`` quote."""
        _SOURCES[self.name] = self
        return self

    def line(self, number: int) -> str:
        """The text of 1-based line ``number``, or ``""`` past the end."""
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else ""

    @classmethod
    def read(cls, path: Path, display: str | None = None) -> Source:
        """Read and decode a spec file; raises :class:`msl.errors.SpecError` on bad bytes."""
        from msl.errors import SpecError, check_size, decode_utf8

        from msl.errors import MAX_SPEC_BYTES

        name = display if display is not None else str(path)
        try:
            if not path.is_file():  # a device or a pipe could be read forever
                raise SpecError("not a regular file", Span.point(name), hint="name a .msl file or a folder")
            check_size(name, path.stat().st_size)
            with path.open("rb") as handle:
                data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(f"cannot read file: {exc.strerror or exc}", Span.point(name)) from None
        check_size(name, len(data))
        return cls(name, decode_utf8(name, data))
