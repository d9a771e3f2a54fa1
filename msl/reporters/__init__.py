"""Reporters: a findings document rendered for people (text, HTML) and machines (JSON,
JUnit XML, SARIF).

Each format is one function decorated with :func:`reporter`; it turns a
:class:`~msl.findings.FindingsDocument` into text. :func:`write_report` picks the format
by name and writes to a file (atomically) or to standard output, so ``msl check``,
``msl report`` and anything else share one code path. Adding a format is one decorated
function in a module imported at the bottom of this file.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from msl.errors import UsageError
from msl.findings import FindingsDocument
from msl.jsonio import write_text_atomic
from msl.registry import Registry


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What a reporter may need besides the findings.

    ``strict``: inconclusive counts as failure (JUnit failure instead of skipped).
    ``color``: the text reporter may emit ANSI colours (only for a terminal).
    ``width``: the text reporter's line width.
    """

    strict: bool = False
    color: bool = False
    width: int = 120


Render = Callable[[FindingsDocument, ReportOptions], str]


#: The formats, by name; each module below registers its own with :func:`reporter`.
REPORTERS: Registry[Render] = Registry("report format")


def reporter(name: str, suffix: str) -> Callable[[Render], Render]:
    """Register ``render`` as the reporter for format ``name`` (files end in ``suffix``).

    The first line of the function's docstring describes the format (:func:`description`).
    """
    return REPORTERS.register(name, suffix=suffix)


def description(fmt: str) -> str:
    """What format ``fmt`` is, in a line: the first line of its reporter's docstring."""
    return (REPORTERS.get(fmt).__doc__ or fmt).strip().splitlines()[0]


def formats() -> list[str]:
    """The registered format names, for ``--format`` choices."""
    return REPORTERS.names()


def render_report(doc: FindingsDocument, fmt: str, options: ReportOptions | None = None) -> str:
    """``doc`` rendered in format ``fmt``; an unknown format is a :class:`UsageError`."""
    if fmt not in REPORTERS:
        raise UsageError(f"unknown report format {fmt!r}", hint=f"choose one of {', '.join(formats())}")
    return REPORTERS.get(fmt)(doc, options or ReportOptions())


def write_report(
    doc: FindingsDocument,
    fmt: str,
    path: str | Path | None = None,
    *,
    strict: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Write ``doc`` in format ``fmt`` to ``path`` (atomically), or to ``stream`` (default
    stdout) when ``path`` is None or ``-``. Text to a terminal is coloured and as wide as
    the terminal unless ``NO_COLOR`` is set; elsewhere it is plain and 120 columns."""
    if path is not None and str(path) != "-":
        write_text_atomic(Path(path), render_report(doc, fmt, ReportOptions(strict=strict)))
        return
    out = stream or sys.stdout
    tty = out.isatty()
    width = shutil.get_terminal_size().columns if tty else 120
    options = ReportOptions(strict=strict, color=tty and "NO_COLOR" not in os.environ, width=width)
    out.write(render_report(doc, fmt, options))
    out.flush()


# Importing the format modules registers them.
from msl.reporters import html, json, junit, sarif, text  # noqa: E402,F401
