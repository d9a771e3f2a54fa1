"""A Pygments lexer for MSL, used by the HTML report and by any Pygments user (docs).

Registered under the ``pygments.lexers`` entry point, so with MSL installed
``pygmentize -l msl spec.msl`` and Sphinx/MkDocs code blocks marked ``msl`` are coloured.

The words are not a copy: keywords come from the grammar (:func:`msl.parse.keywords`),
built-in functions and model measurements from the built-in registry, model kinds from
:data:`msl.types.MODEL_KINDS` — a new keyword or built-in is coloured without touching
this file. Keywords are soft in MSL (``data`` or ``at`` may name a keyword argument), so a
word is classified by its neighbours the way the parser would read it: after ``.`` it is
an attribute or a measurement, before ``:`` a field or keyword-argument name, before ``(``
a call. What the language's own lexer rejects — a character outside the language, a
single-quoted or an unterminated string — is an error token, so a spec that lexes
without error tokens has no lexical error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from pygments.lexer import RegexLexer
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

#: The next character that is not white space.
_NEXT = re.compile(r"[^ \t\r\n\f]")


@cache
def _words() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """Keywords, built-in functions, model measurements and model kinds."""
    from msl.builtins import all_builtins
    from msl.parse import keywords
    from msl.types import MODEL_KINDS

    builtins = list(all_builtins())
    return (
        keywords(),
        frozenset(b.name for b in builtins if b.receiver is None),
        frozenset(b.name for b in builtins if b.receiver is not None),
        frozenset(MODEL_KINDS),
    )


def _classify(word: str, previous: str, following: str) -> Any:
    """The token type of a word, given the token before it and the character after it."""
    keywords, functions, measurements, kinds = _words()
    if previous == ".":
        return Name.Function if word in measurements else Name.Attribute
    if following == ":" and word not in kinds:
        return Name.Variable  # a field, a keyword argument, or the role of `model lm: kind`
    if word in ("true", "false"):
        return Keyword.Constant
    if word in keywords:
        return Keyword
    if word in kinds:
        return Keyword.Type
    if word in functions:
        return Name.Builtin
    if following == "(":
        return Name.Function  # a measure the spec declares
    return Name


class MslLexer(RegexLexer):
    """MSL, the Model Specification Language (``.msl`` specs)."""

    name = "MSL"
    aliases = ["msl"]
    filenames = ["*.msl"]
    mimetypes = ["text/x-msl"]

    tokens = {
        "root": [
            (r"[ \t\r\n\f]+", Whitespace),
            (r"#[^\r\n]*", Comment.Single),
            (r'"(?=(?:[^"\\\r\n]|\\.)*")', String.Double, "string"),
            (r'"(?:[^"\\\r\n]|\\.)*', Error),  # unterminated: the line ends first
            (r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", Number),
            (r"<=|>=|==|!=|[<>+\-*/=%]", Operator),
            (r"[()\[\]{},:.]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),  # classified by get_tokens_unprocessed
        ],
        # JSON string syntax, as the grammar's STRING (entered only when the string ends
        # on its line).
        "string": [
            (r'\\.', String.Escape),
            (r'[^"\\\r\n]+', String.Double),
            (r'"', String.Double, "#pop"),
        ],
    }

    def get_tokens_unprocessed(self, text: str, stack: Any = ("root",)) -> Iterator[tuple[int, Any, str]]:
        """The regex lexer's tokens, with every word classified (see :func:`_classify`)."""
        previous = ""
        for index, token, value in super().get_tokens_unprocessed(text, stack):
            if token is Name:
                after = _NEXT.search(text, index + len(value))
                token = _classify(value, previous, after.group() if after else "")
            if token not in Whitespace and token not in Comment:
                previous = value
            yield index, token, value
