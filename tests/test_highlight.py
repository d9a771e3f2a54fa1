"""The Pygments lexer of MSL: every spec lexes without error tokens (and a lexically
broken one does not), keywords and built-ins come from the grammar and the registry, the
lexer is registered by entry point, and the HTML report shows spec text highlighted."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import findings_samples as samples
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.token import Error, Keyword, Name

from msl.builtins import all_builtins, functions
from msl.findings import FindingsDocument
from msl.highlight import MslLexer
from msl.parse import keywords
from msl.reporters import render_report

ROOT = Path(__file__).resolve().parent.parent

#: The test-data specs whose very characters are wrong (the parser's lexer rejects them):
#: the lexer must flag exactly these. The other broken specs in tests/golden are
#: grammatical mistakes made of valid tokens.
LEXICALLY_BROKEN = {
    "20_single_quoted_string.msl",  # 'x'
    "21_unterminated_string.msl",  # " Paris<newline>
    "28_python_operators.msl",  # &&
}


def _specs() -> list[Path]:
    found = [p for folder in ("specs", "docs/examples", "tests") for p in sorted((ROOT / folder).rglob("*.msl"))]
    assert len(found) > 40
    return found


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(token, value) for _, token, value in MslLexer().get_tokens_unprocessed(text)]


@pytest.mark.parametrize("path", _specs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_lexes_without_error_tokens(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tokens = _tokens(text)
    assert "".join(value for _, value in tokens) == text  # every character is in a token
    errors = [value for token, value in tokens if token in Error]
    if path.name in LEXICALLY_BROKEN:
        assert errors, "a character the language rejects must be an error token"
    else:
        assert not errors, errors


def test_the_lexically_broken_specs_are_the_ones_the_parser_rejects_for_a_character() -> None:
    """The exception list above is right: those and only those fail in the parser's lexer."""
    from msl.errors import SpecErrors
    from msl.parse import parse_file

    rejected = set()
    for path in _specs():
        try:
            parse_file(path, str(path), path.parent)
        except SpecErrors as exc:
            message = exc.errors[0].message
            if message.startswith(
                ("unexpected character", "strings are written in double quotes", "unterminated string")
            ):
                rejected.add(path.name)
    assert rejected == LEXICALLY_BROKEN


def test_keywords_come_from_the_grammar() -> None:
    assert {"verify", "expect", "tolerate", "preserves", "forall"} <= keywords()
    for word in keywords():
        (token, value), *_ = _tokens(f"{word} x")
        assert value == word and token in Keyword, (word, token)


def test_builtins_come_from_the_registry() -> None:
    for name in functions():
        (token, _), *_ = _tokens(f"{name}(x)")
        assert token is Name.Builtin, name
    for measurement in {b.name for b in all_builtins() if b.receiver is not None}:
        tokens = _tokens(f"lm.{measurement}(x)")
        assert tokens[2] == (Name.Function, measurement)


def test_soft_keywords_are_read_as_the_parser_reads_them() -> None:
    """`data`, `at` or `text` as a field, a keyword argument or an attribute are names."""
    assert _tokens("{data: 1}")[1] == (Name.Variable, "data")
    assert _tokens("r.data")[2] == (Name.Attribute, "data")
    assert _tokens("f(seed: 1)")[2] == (Name.Variable, "seed")
    assert _tokens("data d = [1]")[0] == (Keyword, "data")
    assert _tokens("model lm: causal_lm")[2] == (Name.Variable, "lm")
    assert _tokens("model lm: causal_lm")[-1] == (Keyword.Type, "causal_lm")
    # a comment ending in "." does not make the next line's keyword an attribute
    assert _tokens("# the end.\ndata d = [1]")[2] == (Keyword, "data")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab "\\#.:(){}[]<=>!&\'\n\t0123456789e%+-*/_,')), max_size=80))
def test_any_text_is_lexed_whole(text: str) -> None:
    """Untrusted text (a finding's claim) never makes the lexer fail or drop characters."""
    assert "".join(value for _, value in _tokens(text)) == text


def test_the_lexer_is_registered_by_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    target = project["entry-points"]["pygments.lexers"]["msl"]
    module, _, attribute = target.partition(":")
    assert getattr(importlib.import_module(module), attribute) is MslLexer
    assert "msl" in MslLexer.aliases and "*.msl" in MslLexer.filenames
    assert any(d.split(">")[0].split("=")[0].strip() == "pygments" for d in project["dependencies"])


def test_html_report_shows_spec_text_highlighted() -> None:
    page = render_report(FindingsDocument.of([samples.violated()]), "html")
    assert '<pre class="msl"><span class="k">verify</span>' in page
    assert "pre.msl .k {" in page  # the colours come with the page (no external CSS)
