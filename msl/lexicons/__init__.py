"""Built-in lexicons: word lists and small tables written for MSL.

Specs fill template slots from lexicons (``{name}``, ``{adj}``) and swap words between
them (``names.male`` ↔ ``names.female``). They are plain JSON data files in this package,
one per lexicon, so they ship with the wheel, can be read by anyone without running code,
and are covered by the data hash of a finding like any other data. ``docs/lexicons.md``
documents each one.

A lexicon is either a *word list* (``"words": [...]``), loaded as a tuple of strings, or a
*table* (``"fields": [...]``, ``"rows": [{...}]``), loaded as a tuple of records whose
fields are all strings. Lists that declare ``aligned_with`` are index-aligned with that
list (same length; the i-th entries correspond), which is what a swap perturbation needs.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from msl.errors import SpecError

__all__ = ["LexiconInfo", "UnknownLexiconError", "available", "describe", "load_lexicon"]

_SUFFIX = ".json"


class UnknownLexiconError(SpecError, KeyError):
    """A spec named a lexicon that is not built in; the hint suggests the closest name.

    Also a :class:`KeyError`, so code that treats "no such entry" generically still
    catches it; its ``str`` is the plain message, not ``KeyError``'s quoted key.
    """

    def __init__(self, name: str) -> None:
        names = available()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        self.name = name
        self.suggestion = close[0] if close else None
        hint = f"did you mean '{close[0]}'?" if close else "built-in lexicons: " + ", ".join(names)
        super().__init__(f"unknown lexicon '{name}'", hint=hint)


@dataclass(frozen=True, slots=True)
class LexiconInfo:
    """What a lexicon is, without its entries: enough for a checker to type a slot."""

    name: str
    description: str
    use: str
    size: int
    #: Field names of a table; ``None`` for a word list.
    fields: tuple[str, ...] | None
    #: The word list this one is index-aligned with, if any.
    aligned_with: str | None


def available() -> list[str]:
    """Names of every built-in lexicon, sorted."""
    return list(_names())


@cache
def _names() -> tuple[str, ...]:
    files = resources.files(__name__).iterdir()
    return tuple(sorted(f.name.removesuffix(_SUFFIX) for f in files if f.name.endswith(_SUFFIX)))


@cache
def _raw(name: str) -> dict[str, Any]:
    if name not in _names():
        raise UnknownLexiconError(name)
    text = resources.files(__name__).joinpath(name + _SUFFIX).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def describe(name: str) -> LexiconInfo:
    """Metadata of lexicon ``name``; raises :class:`UnknownLexiconError` for an unknown name."""
    data = _raw(name)
    fields = tuple(data["fields"]) if "fields" in data else None
    size = len(data["rows"] if fields is not None else data["words"])
    return LexiconInfo(
        name=name,
        description=data["description"],
        use=data["use"],
        size=size,
        fields=fields,
        aligned_with=data.get("aligned_with"),
    )


def load_lexicon(name: str) -> tuple[str, ...] | tuple[dict[str, str], ...]:
    """The entries of lexicon ``name``, in file order.

    A word list gives a tuple of strings; a table gives a tuple of fresh dicts (one per
    row, keys = the table's fields), so a caller may not corrupt the shared copy.
    """
    data = _raw(name)
    if "fields" in data:
        return tuple(dict(row) for row in data["rows"])
    return tuple(data["words"])
