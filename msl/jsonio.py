"""JSON files in and out: bounded, strict reading of files that come from elsewhere,
and atomic writing.

Findings and baselines are shared between labs, so MSL treats them as hostile input:
the bytes are size-limited before they are read in full, decoded strictly, parsed as
*strict* JSON (no ``NaN``/``Infinity``, no numbers that overflow to infinity, no
duplicate keys, no lone surrogates), and bounded in depth and string length before any
model validation runs. Every failure becomes a one-line :class:`~msl.errors.UsageError`
(exit code 2), whatever the bytes; nothing read here is ever executed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msl.errors import UsageError, printable
from msl.source import Span

#: Default cap on a findings or baseline file; large enough for thousands of findings
#: with counterexamples, small enough that a hostile file stays cheap to refuse.
MAX_JSON_BYTES = 32 * 1024 * 1024
#: The findings format nests about eight levels; anything much deeper is not ours.
MAX_JSON_DEPTH = 64
#: No single string in a findings file (claim text, a counterexample) needs more.
MAX_JSON_STRING = 1_000_000
#: Integers longer than this are not seeds or counts; refusing them avoids slow bignums.
MAX_INT_DIGITS = 40


class _Rejected(ValueError):
    """Raised from inside the JSON parser's hooks to stop at the first bad token."""


def read_bounded(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """Read at most ``max_bytes`` of ``path``; refuse larger files without reading them.

    The size is checked both from ``stat`` and while reading, so a device or a pipe that
    claims to be small (``/dev/zero``) cannot make MSL read without end.
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise UsageError(f"{what} {name!r} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {name!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UsageError(
            f"{what} {name!r} is larger than the limit of {max_bytes / 1e6:.0f} MB",
            hint="split the findings into several files, or raise the limit explicitly",
        )
    return data


def decode_text(data: bytes, name: str, what: str) -> str:
    """Strict UTF-8, with a leading byte-order mark dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} is not UTF-8 text (bad byte 0x{data[exc.start]:02x} at offset {exc.start})", Span.point(name)
        ) from None
    return text.removeprefix("\ufeff")


def parse_json(
    text: str,
    name: str,
    what: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_string: int = MAX_JSON_STRING,
) -> Any:
    """Parse strict JSON, then check depth and string lengths.

    Returns plain Python data (dicts, lists, str, int, float, bool, None).
    """
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg}", Span.point(name, exc.lineno, exc.colno)) from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply", Span.point(name)) from None
    except ValueError as exc:  # _Rejected, and anything else the parser refuses
        raise UsageError(f"{what} is not strict JSON: {printable(str(exc))[:200]}", Span.point(name)) from None
    _check_shape(value, name, what, max_depth, max_string)
    return value


def validation_message(exc: ValidationError, limit: int = 3) -> str:
    """One line naming where validation failed, e.g. ``findings[0].verdict: Input should be ...``.

    Locations come from the untrusted file (dict keys), so each part is made printable and
    shortened; pydantic's messages never echo input values here.
    """
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ""
        for part in err["loc"]:
            if isinstance(part, int):
                where += f"[{part}]"
            else:
                shown = printable(str(part))
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                where += f".{shown}" if where else shown
        problems.append(f"{where or '(top level)'}: {err['msg']}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Rejected(f"duplicate key {printable(key)[:60]!r}")
        result[key] = value
    return result


def _no_constant(token: str) -> Any:
    raise _Rejected(f"{token} is not a JSON number (NaN and infinities are never valid evidence)")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _Rejected(f"number {token[:40]} is out of range")
    return value


def _bounded_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_INT_DIGITS:
        raise _Rejected(f"integer with {len(token)} digits is too long")
    return int(token)


def _check_shape(value: Any, name: str, what: str, max_depth: int, max_string: int) -> None:
    """Walk the parsed value without recursion; refuse deep nesting, huge or unencodable strings."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.items())
            if depth > max_depth:
                raise UsageError(f"{what} nests deeper than {max_depth} levels", Span.point(name))
            for key, child in children:
                _check_string(key, name, what, max_string)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise UsageError(f"{what} nests deeper than {max_depth} levels", Span.point(name))
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item, name, what, max_string)


def _check_string(text: str, name: str, what: str, max_string: int) -> None:
    if len(text) > max_string:
        raise UsageError(
            f"{what} holds a string of {len(text):,} characters (the limit is {max_string:,})", Span.point(name)
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} holds a string with a lone surrogate escape", Span.point(name)) from None


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """:func:`write_bytes_atomic` of ``text`` as UTF-8 (``\n`` line ends as given)."""
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``, so a
    crash or a full disk never leaves half a report for CI to upload. ``mode`` replaces
    mkstemp's 0600, which would make reports unreadable to others. Failing to write is a
    :class:`~msl.errors.UsageError` naming the path."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
