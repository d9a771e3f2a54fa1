"""The types the checker gives MSL expressions.

The language has few types, on purpose: a spec author thinks in texts, numbers, sets of
inputs and the models' outputs, not in tensors. Types are values (frozen dataclasses) so
that they can be compared, printed in messages and parsed from the compact signature
strings of the built-in registry (``"logprob(text: text, continuation: str) -> number"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class Type:
    """A type: a name and type arguments (``set[str]``); ``fields`` for known record fields."""

    name: str
    args: tuple[Type, ...] = ()
    fields: frozenset[str] | None = None

    def __str__(self) -> str:
        if self.args:
            return f"{self.name}[{', '.join(str(a) for a in self.args)}]"
        return self.name

    @property
    def elem(self) -> Type:
        """The element type of a set, series or aggregate (``any`` when unknown)."""
        return self.args[0] if self.args else ANY


ANY = Type("any")
NUMBER = Type("number")
BOOL = Type("bool")
STR = Type("str")
TEXT = Type("text")  # what a measurement reads: a string, or a record with a `text` field
RECORD = Type("record")
VECTOR = Type("vector")
DIST = Type("dist")  # a probability distribution (next token, classes)
TRANSFORM = Type("transform")
INTERVENTION = Type("intervention")
SITE = Type("site")
SITE_FAMILY = Type("sites")  # lm.resid_post without a layer: one site per layer
TOKENS = Type("tokens")
DOMAIN = Type("domain")
MODEL = Type("model")
MEASURE = Type("measure")
NONE = Type("none")

MODEL_KINDS = ("causal_lm", "classifier", "encoder", "network")
SITE_POINTS = ("resid_pre", "resid_post", "attn_out", "mlp_out")


def with_article(word: str) -> str:
    """A word with its indefinite article: “a classifier”, “an encoder”."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def set_of(elem: Type) -> Type:
    return Type("set", (elem,))


def series_of(elem: Type) -> Type:
    return Type("series", (elem,))


def model_of(kind: str) -> Type:
    return Type("model", (Type(kind),))


def record(fields: frozenset[str] | None) -> Type:
    return Type("record", fields=fields)


def is_set(t: Type) -> bool:
    return t.name == "set"


def is_model(t: Type) -> bool:
    return t.name == "model"


def model_kind(t: Type) -> str | None:
    return t.args[0].name if t.name == "model" and t.args else None


def assignable(actual: Type, expected: Type) -> bool:
    """Whether a value of type ``actual`` may be passed where ``expected`` is wanted."""
    if ANY in (actual, expected) or actual == expected:
        return True
    a, e = actual.name, expected.name
    if e == "text":
        return a in ("str", "text") or (a == "record" and (actual.fields is None or "text" in actual.fields))
    if e == "str":
        return a == "text"
    if e == "record":
        return a == "record"
    if e == "tokens":  # "last", "all", "from 3", or a position
        return a in ("str", "number")
    if e == "vector":
        return a == "vector" or (a == "set" and assignable(actual.elem, NUMBER))
    if e in ("set", "series", "model", "agg") and a == e:
        if not expected.args or not actual.args:
            return True
        return all(assignable(x, y) for x, y in zip(actual.args, expected.args, strict=True))
    if e == "agg":  # an aggregate accepts a collection of its element type
        return a in ("set", "series") and assignable(actual.elem, expected.elem) or (
            a == "vector" and assignable(NUMBER, expected.elem)
        )
    return False


_SIMPLE = {
    t.name: t
    for t in (
        ANY, NUMBER, BOOL, STR, TEXT, RECORD, VECTOR, DIST, TRANSFORM, INTERVENTION, SITE,
        SITE_FAMILY, TOKENS, DOMAIN, MODEL, NONE,
    )
}


@cache
def parse_type(text: str) -> Type:
    """Parse a type as written in a built-in signature: ``set[text]``, ``agg[number]``."""
    text = text.strip()
    m = re.fullmatch(r"(\w+)\[(.*)\]", text)
    if m:
        return Type(m.group(1), tuple(parse_type(a) for a in _split_top(m.group(2))))
    if text in _SIMPLE:
        return _SIMPLE[text]
    if text in MODEL_KINDS:
        return model_of(text)
    if text in ("set", "series"):
        return Type(text, (ANY,))
    raise ValueError(f"unknown type in a built-in signature: {text!r}")


def _split_top(text: str) -> list[str]:
    """Split ``a, b[c, d]`` at top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (s.strip() for s in parts) if p]


def describe(t: Type) -> str:
    """A type in words, for messages: “a set of texts”, “a number”."""
    words = {
        "any": "a value", "number": "a number", "bool": "a condition", "str": "a string",
        "text": "a text", "record": "a record", "vector": "a vector", "dist": "a distribution",
        "transform": "a transformation", "intervention": "an intervention", "site": "a site",
        "sites": "a family of sites", "tokens": "a token selector", "domain": "a domain",
        "model": "a model", "measure": "a measure", "none": "nothing",
    }
    if t.name == "set":
        return f"a set of {describe(t.elem).split(' ', 1)[1]}s" if t.elem != ANY else "a set"
    if t.name == "series":
        return "a per-layer series"
    if t.name == "model" and t.args:
        return f"a {t.args[0].name} model"
    if t.name == "agg":
        return f"values to aggregate ({describe(t.elem)} for each)"
    return words.get(t.name, t.name)
