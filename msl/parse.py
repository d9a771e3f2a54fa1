"""Parse: `.msl` text → typed AST (:mod:`msl.ast`), with errors a person can act on.

The grammar lives in ``grammar/msl.lark`` (LALR(1), so parsing is linear in the input and
iterative: 20 000 nested brackets cost nothing). The parse tree is turned into AST nodes
by a non-recursive Lark transformer; the depth of the resulting expressions is capped so
that the recursive passes after this one never exhaust the Python stack.

A syntax error is reported with the expected tokens in words (“expected `}` or a
statement”), a “did you mean” for misspelt keywords, and — after the first error — the
remaining top-level items are parsed on their own so that several errors are reported at
once.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.visitors import Transformer_NonRecursive, v_args

from msl import ast
from msl.errors import SpecError, SpecErrors, printable, quote_lines
from msl.source import Source, Span, check_size

#: Expressions nested deeper than this are refused; real specs stay far below it.
MAX_DEPTH = 100
#: At most this many syntax errors are reported for one file.
MAX_ERRORS = 20

SUPPORTED_VERSIONS = ("1", "1.0")


@dataclass(frozen=True)
class Parsed:
    """A parsed file: its AST, the comments beside it, and the source for diagnostics."""

    module: ast.Module
    comments: tuple[ast.Comment, ...]
    source: Source


@cache
def grammar_text() -> str:
    """The grammar, from the installed package or, in a checkout, from ``grammar/``."""
    packaged = resources.files("msl").joinpath("_grammar/msl.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "msl.lark").read_text(encoding="utf-8")


#: Comment tokens seen by the lexer during the current parse (Lark's documented way to
#: keep ignored tokens); :func:`parse_source` empties it before each parse.
_COMMENT_TOKENS: list[Token] = []


@cache
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "item"],
        lexer_callbacks={"COMMENT": _COMMENT_TOKENS.append},
    )


@cache
def keywords() -> frozenset[str]:
    """Every word the grammar uses as a keyword (they are soft: see the grammar)."""
    return frozenset(
        t.pattern.value
        for t in _parser().terminals
        if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)
    )


def parse_source(source: Source) -> Parsed:
    """Parse one decoded source file; raises :class:`SpecErrors` with every syntax error,
    each quoting its line."""
    try:
        return _parse_source(source)
    except SpecErrors as exc:
        quote_lines(exc.errors, [source])
        raise


def _parse_source(source: Source) -> Parsed:
    try:
        check_size(source.name, len(source.text))
    except SpecError as exc:
        raise SpecErrors([exc]) from None
    parser = _parser()
    _COMMENT_TOKENS.clear()
    try:
        tree = parser.parse(source.text, start="start", on_error=None)
    except UnexpectedInput as exc:
        raise SpecErrors(_collect_errors(source, exc)) from None
    except LarkError as exc:  # pragma: no cover - Lark raises UnexpectedInput for bad input
        raise SpecErrors([SpecError(f"cannot parse: {exc}", Span.point(source.name))]) from None
    comments = tuple(ast.Comment(t.value, span=_token_span(source.name, t)) for t in _COMMENT_TOKENS)
    module = _Builder(source.name).transform(tree)
    return Parsed(module, comments, source)


def parse_text(text: str, name: str = "<string>") -> Parsed:
    return parse_source(Source(name, text))


def parse_file(path: Path, display: str | None = None, root: Path | None = None) -> Parsed:
    """Read (see :meth:`Source.read` for the folder ``root``) and parse one spec file."""
    try:
        return parse_source(Source.read(path, display, root))
    except SpecError as exc:
        raise SpecErrors([exc]) from None


# ── Errors ───────────────────────────────────────────────────────────────────────────────

_STATEMENT_WORDS = frozenset({
    "expect", "for", "forall", "let", "tolerate", "description", "tags", "severity",
    "base", "refined", "preserves",
})
_ITEM_WORDS = frozenset({
    "import", "model", "lexicon", "data", "transform", "vector", "intervention", "let", "measure",
    "verify", "explore", "steer", "refine",
})

#: Groups of expected tokens that read better as one phrase, in the order they are said.
_PHRASES: tuple[tuple[str, frozenset[str]], ...] = (
    ("a statement (`expect`, `for`, `let`, `tolerate`, …)", _STATEMENT_WORDS),
    ("a declaration or claim (`model`, `data`, `verify`, …)", _ITEM_WORDS),
    ("an expectation", frozenset({"invariant", "increases", "decreases", "agree"})),
    ("an expression", frozenset({"NAME", "NUMBER", "STRING", "(", "["})),
    ("an operator", frozenset({"(", "[", ".", "MUL", "ADD", "COMPARE", "and", "or", "then", "with", "%"})),
)

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMPARE": "a comparison",
    "ADD": "`+` or `-`",
    "MUL": "`*` or `/`",
    "$END": "the end of the file",
}

#: Characters from other languages, and what MSL writes instead.
_PYTHONISMS = {
    "&&": "write `and`",
    "&": "write `and`",
    "||": "write `or`",
    "|": "write `or`",
    "!": "write `not`",
    ";": "no `;` is needed: a statement ends where the next one begins",
}

#: Tokens that can begin an expression (after another expression: a missing comma?).
_EXPRESSION_START = frozenset({"NAME", "NUMBER", "STRING", "(", "[", "{", "-", "not", "true", "false"})
_CLOSER = {"(": ")", "[": "]", "{": "}"}
#: What bracket scanning skips: strings (even unterminated ones) and comments.
_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[()\[\]{}]')


@cache
def _terminal_text() -> dict[str, str]:
    """Map Lark's terminal names (LBRACE, EXPECT, …) to the text they stand for."""
    out = {}
    for t in _parser().terminals:
        out[t.name] = t.pattern.value if t.pattern.type == "str" else t.name
    return out


def describe_expected(expected: Iterable[str]) -> str:
    """Expected terminal names in words: “`}`, a statement (`expect`, …) or an operator”."""
    texts = {_terminal_text().get(name, name) for name in expected}
    texts.discard("COMMENT")
    phrases: list[str] = []
    for phrase, members in _PHRASES:
        if len(texts & members) >= 3 or (members <= texts):
            phrases.append(phrase)
            texts -= members
    # Tokens an expression can continue or start with are noise once "an expression" is said.
    if "an expression" in phrases:
        texts -= {"-", "not", "true", "false", "{", "NUMBER", "STRING"}
    words = sorted(_TERMINAL_WORDS.get(t, f"`{t}`") for t in texts)
    items = words + phrases
    if not items:
        return "something else"
    if len(items) > 6:
        items = items[:5] + ["…"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _token_span(file: str, tok: Token) -> Span:
    line, col = tok.line or 1, tok.column or 1
    end_line = tok.end_line or line
    end_col = tok.end_column or col + max(1, len(tok.value))
    return Span(file, line, col, end_line, end_col)


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _accepted(exc: UnexpectedInput) -> set[str]:
    """The terminals the parser would have taken where it stopped.

    Lark's own ``expected`` is the lookahead set of an LALR state, which merges the
    contexts that share the state (after a string, `)` is "expected" even at top level);
    the interactive parser replays each candidate on the real stack and is exact.
    """
    fallback = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is None:
        return fallback
    try:
        return set(interactive.accepts()) or fallback
    except LarkError:  # pragma: no cover - accepts() only feeds tokens the state lists
        return fallback


def _error_from(source: Source, exc: UnexpectedInput, start: int = 0, end: int | None = None) -> SpecError:
    """Turn one Lark exception into a located, worded :class:`SpecError`.

    ``source`` is the whole file; the parse that failed read ``source.text[start:end]``
    (one top-level item, during recovery) — its positions are shifted back into the file.
    """
    text, name = source.text, source.name
    end = len(text) if end is None else end
    accepted = _accepted(exc)
    texts = {_terminal_text().get(n, n) for n in accepted}
    if isinstance(exc, UnexpectedCharacters):
        offset = start + exc.pos_in_stream
        line, col = _position(text, offset)
        char = text[offset] if offset < len(text) else ""
        span = Span(name, line, col, line, col + 1)
        if char == '"':
            return SpecError("unterminated string", span, hint='a string ends with `"` on the same line')
        if char == "'":
            return SpecError("strings are written in double quotes", span, hint='write "text", not \'text\'')
        shown = printable(char) if char else "end of input"
        hint = _PYTHONISMS.get(text[offset : offset + 2]) or _PYTHONISMS.get(char)
        return SpecError(
            f"unexpected character `{shown}`", span, hint=hint or f"expected {describe_expected(accepted)} here"
        )
    tok = exc.token if isinstance(exc, UnexpectedToken) else None
    expected = describe_expected(accepted)
    if tok is None or tok.type == "$END":
        if end < len(text):  # recovery: the item stopped where the next one begins
            offset = end
            word = _ITEM_START.match(text, end)
            line, col = _position(text, offset)
            width = len(word.group(0)) if word else 1
            span = Span(name, line, col, line, col + width)
            what = f"`{word.group(0)}`" if word else "text"
            return SpecError(f"unexpected {what}; expected {expected}", span, hint=_unclosed_hint(text, offset, texts))
        offset = len(text.rstrip())
        line, col = _position(text, offset)
        span = Span.point(name, line, col)
        if not text.strip():
            return SpecError("the file is empty", span, hint="a spec starts with its language version: `msl 1.0`")
        return SpecError(f"unexpected end of file; expected {expected}", span, hint=_unclosed_hint(text, offset, texts))
    offset = start + (tok.start_pos or 0)
    line, col = _position(text, offset)
    tok_line, tok_col = tok.line or 1, tok.column or 1
    last_line = line + (tok.end_line or tok_line) - tok_line
    last_col = (tok.end_column or tok_col + len(tok.value)) if last_line != line else col + len(tok.value)
    span = Span(name, line, col, last_line, last_col)
    if texts == {"msl"} and start == 0:
        return SpecError(
            _NO_HEADER,
            span,
            hint="add `msl 1.0` as the first line",
        )
    message = f"unexpected {_token_words(tok)}; expected {expected}"
    return SpecError(message, span, hint=_token_hint(text, offset, tok, accepted, texts))


def _token_words(tok: Token) -> str:
    value = printable(str(tok.value))
    if len(value) > 40:
        value = value[:37] + "…"
    if tok.type == "STRING":
        return f"string {value}"
    if tok.type == "NUMBER":
        return f"number `{value}`"
    return f"`{value}`"


def _token_hint(text: str, offset: int, tok: Token, accepted: set[str], texts: set[str]) -> str | None:
    """The likeliest fix: a misspelt keyword, a missing comma, an unclosed bracket."""
    word = _terminal_text().get(tok.type, tok.type)
    if word == "=" and ":" in texts:
        return "keyword arguments are written `name: value`"
    if word == "=" and "COMPARE" in accepted:
        return "compare with `==`"
    if word == ":" and "}" in texts:
        return "no `:` is needed: a statement ends where the next one begins"
    if tok.type == "NAME":
        close = _did_you_mean(str(tok.value), texts)
        if close:
            return close
    if (tok.type in _EXPRESSION_START or word in _EXPRESSION_START) and "," in texts:
        return "is a `,` missing before it?"
    if word in _STATEMENT_WORDS | _ITEM_WORDS or word in _CLOSER.values():
        return _unclosed_hint(text, offset, texts)
    return None


def _unclosed_hint(text: str, offset: int, texts: set[str]) -> str | None:
    """Name the innermost bracket still open before ``offset``, when its closer fits here."""
    stack: list[tuple[str, int]] = []
    for m in _BRACKETS.finditer(text, 0, offset):
        ch = m.group(0)
        if ch in _CLOSER:
            stack.append((ch, m.start()))
        elif ch in _CLOSER.values() and stack and _CLOSER[stack[-1][0]] == ch:
            stack.pop()
    if not stack:
        return None
    opener, at = stack[-1]
    closer = _CLOSER[opener]
    if closer not in texts:
        return None
    line, col = _position(text, at)
    return f"is a `{closer}` missing? The `{opener}` at line {line}, column {col} is not closed"


def _did_you_mean(word: str, texts: set[str]) -> str | None:
    """Suggest the keyword a misspelt word was probably meant to be."""
    words = sorted(t for t in texts if t in keywords()) or sorted(keywords())
    close = difflib.get_close_matches(word, words, n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None


#: Words that begin a top-level item; error recovery restarts parsing at them.
_ITEM_START = re.compile(
    r"^(import|model|lexicon|data|transform|vector|intervention|let|measure|verify|explore|steer|refine)\b",
    re.MULTILINE,
)


_NO_HEADER = "a spec starts with its language version: `msl 1.0`"


def _collect_errors(source: Source, first: UnexpectedInput) -> list[SpecError]:
    """The first error, then errors from parsing each later top-level item on its own."""
    errors = [_error_from(source, first)]
    if errors[0].message == _NO_HEADER:
        # not a spec: whatever the file holds (a token, a key) is not quoted, and no
        # later line is parsed to be quoted either
        quote_lines(errors, [Source.peek(source.name, source.text, errors[0].span.line if errors[0].span else 1)])
        return errors
    first_line = errors[0].span.line if errors[0].span else 1
    text = source.text
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    parser = _parser()
    for begin, end in zip(starts, starts[1:] + [len(text)], strict=False):
        if text.count("\n", 0, begin) + 1 <= first_line:
            continue  # items up to the one that holds the first error: already reported
        try:
            parser.parse(text[begin:end], start="item")
        except UnexpectedInput as exc:
            errors.append(_error_from(source, exc, begin, end))
            if len(errors) >= MAX_ERRORS:
                break
    return errors


# ── Tree → AST ───────────────────────────────────────────────────────────────────────────


def _decode_string(file: str, tok: Token) -> str:
    try:
        value = json.loads(tok.value, strict=False)
    except ValueError as exc:
        raise SpecError(
            f"bad escape in string: {exc.args[0].split(':')[0]}",
            _token_span(file, tok),
            hint='use \\" \\\\ \\n \\t or \\uXXXX inside strings',
        ) from None
    return value


def _decode_number(file: str, tok: Token) -> int | float:
    text = tok.value
    if re.fullmatch(r"[0-9]+", text):
        # the length first: Python refuses to convert more than 4 300 digits (a traceback)
        value: int | float = int(text) if len(text.lstrip("0")) <= 20 else 2**64
        if abs(value) > 2**63:
            raise SpecError("integer literal is too large", _token_span(file, tok))
        return value
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise SpecError("number literal is out of range", _token_span(file, tok))
    return number


class _Builder(Transformer_NonRecursive):
    """Builds AST nodes bottom-up; tracks nesting depth to keep later passes safe."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.depth: dict[int, int] = {}

    # helpers

    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return ast.NO_SPAN
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, tok: Token) -> Span:
        return _token_span(self.file, tok)

    def _node(self, cls: type, meta: Any, *args: Any, **kwargs: Any) -> Any:
        node = cls(*args, span=self._span(meta), **kwargs)
        depth = 1 + max((self.depth.get(id(c), 0) for c in node.children()), default=0)
        if depth > MAX_DEPTH:
            raise SpecErrors([SpecError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                node.span,
                hint="split it into `let` bindings or measures",
            )])
        self.depth[id(node)] = depth
        return node

    def transform(self, tree: Tree) -> ast.Module:  # type: ignore[override]
        try:
            return super().transform(tree)
        except SpecError as exc:
            raise SpecErrors([exc]) from None
        except LarkError as exc:
            inner = getattr(exc, "orig_exc", None)
            if isinstance(inner, SpecErrors):
                raise inner from None
            if isinstance(inner, SpecError):
                raise SpecErrors([inner]) from None
            raise

    # top level

    @v_args(meta=True)
    def start(self, meta: Any, children: list[Any]) -> ast.Module:
        version, *items = children
        return ast.Module(version, tuple(items), span=self._span(meta))

    def header(self, children: list[Token]) -> str:
        (tok,) = children
        if tok.value not in SUPPORTED_VERSIONS:
            raise SpecError(
                f"unsupported language version `msl {tok.value}`",
                self._tok(tok),
                hint="this checker reads `msl 1.0`",
            )
        return "1.0"

    @v_args(meta=True)
    def import_(self, meta: Any, children: list[Token]) -> ast.Import:
        return self._node(ast.Import, meta, _decode_string(self.file, children[0]))

    @v_args(meta=True)
    def model(self, meta: Any, children: list[Any]) -> ast.ModelDecl:
        name, kind, ref, fingerprint = children
        return self._node(
            ast.ModelDecl,
            meta,
            str(name),
            str(kind),
            _decode_string(self.file, ref) if ref is not None else None,
            _decode_string(self.file, fingerprint) if fingerprint is not None else None,
            name_span=self._tok(name),
            kind_span=self._tok(kind),
        )

    @v_args(meta=True)
    def decl(self, meta: Any, children: list[Any]) -> ast.Decl:
        keyword, name, value = children
        return self._node(ast.Decl, meta, keyword, str(name), value, name_span=self._tok(name))

    def decl_keyword(self, children: list[Token]) -> str:
        return str(children[0])

    @v_args(meta=True)
    def measure(self, meta: Any, children: list[Any]) -> ast.MeasureDecl:
        name, params, body = children
        return self._node(ast.MeasureDecl, meta, str(name), params or (), body, name_span=self._tok(name))

    def params(self, children: list[Token]) -> tuple[str, ...]:
        return tuple(str(c) for c in children)

    @v_args(meta=True)
    def claim(self, meta: Any, children: list[Any]) -> ast.Claim:
        kind, name, *body = children
        return self._node(ast.Claim, meta, kind, str(name), tuple(body), name_span=self._tok(name))

    def claim_kind(self, children: list[Token]) -> str:
        return str(children[0])

    # statements

    @v_args(meta=True)
    def description(self, meta: Any, children: list[Token]) -> ast.Description:
        return self._node(ast.Description, meta, _decode_string(self.file, children[0]))

    @v_args(meta=True)
    def tags(self, meta: Any, children: list[Token]) -> ast.Tags:
        return self._node(ast.Tags, meta, tuple(str(c) for c in children))

    @v_args(meta=True)
    def severity(self, meta: Any, children: list[Token]) -> ast.Severity:
        return self._node(ast.Severity, meta, str(children[0]))

    @v_args(meta=True)
    def for_(self, meta: Any, children: list[Any]) -> ast.For:
        var, iterable = children
        return self._node(ast.For, meta, str(var), iterable, var_span=self._tok(var))

    @v_args(meta=True)
    def forall(self, meta: Any, children: list[Any]) -> ast.Forall:
        var, domain, where = children
        return self._node(ast.Forall, meta, str(var), domain, where, var_span=self._tok(var))

    @v_args(meta=True)
    def let(self, meta: Any, children: list[Any]) -> ast.Let:
        name, value = children
        return self._node(ast.Let, meta, str(name), value, name_span=self._tok(name))

    @v_args(meta=True)
    def expect(self, meta: Any, children: list[Any]) -> ast.Expect:
        return self._node(ast.Expect, meta, children[0])

    @v_args(meta=True)
    def tolerate(self, meta: Any, children: list[Any]) -> ast.Tolerate:
        rate, confidence = children
        return self._node(ast.Tolerate, meta, rate, confidence)

    @v_args(meta=True)
    def base(self, meta: Any, children: list[Any]) -> ast.RoleBinding:
        return self._node(ast.RoleBinding, meta, "base", children[0])

    @v_args(meta=True)
    def refined(self, meta: Any, children: list[Any]) -> ast.RoleBinding:
        return self._node(ast.RoleBinding, meta, "refined", children[0])

    @v_args(meta=True)
    def preserves(self, meta: Any, children: list[Any]) -> ast.Preserves:
        path, role = children
        return self._node(
            ast.Preserves, meta, _decode_string(self.file, path), str(role) if role is not None else None
        )

    # expectations

    @v_args(meta=True)
    def invariant(self, meta: Any, children: list[Any]) -> ast.Invariant:
        return self._node(ast.Invariant, meta, *children)

    @v_args(meta=True)
    def increases(self, meta: Any, children: list[Any]) -> ast.Directional:
        return self._node(ast.Directional, meta, "increases", *children)

    @v_args(meta=True)
    def decreases(self, meta: Any, children: list[Any]) -> ast.Directional:
        return self._node(ast.Directional, meta, "decreases", *children)

    @v_args(meta=True)
    def agree(self, meta: Any, children: list[Any]) -> ast.Agree:
        return self._node(ast.Agree, meta, *children)

    # expressions

    @v_args(meta=True)
    def then(self, meta: Any, children: list[Any]) -> ast.Binary:
        return self._node(ast.Binary, meta, "then", *children)

    @v_args(meta=True)
    def or_(self, meta: Any, children: list[Any]) -> ast.Binary:
        return self._node(ast.Binary, meta, "or", *children)

    @v_args(meta=True)
    def and_(self, meta: Any, children: list[Any]) -> ast.Binary:
        return self._node(ast.Binary, meta, "and", *children)

    @v_args(meta=True)
    def not_(self, meta: Any, children: list[Any]) -> ast.Unary:
        return self._node(ast.Unary, meta, "not", children[0])

    @v_args(meta=True)
    def neg(self, meta: Any, children: list[Any]) -> ast.Unary:
        return self._node(ast.Unary, meta, "-", children[0])

    @v_args(meta=True)
    def compare(self, meta: Any, children: list[Any]) -> ast.Compare:
        operands = tuple(children[0::2])
        ops = tuple(str(t) for t in children[1::2])
        return self._node(ast.Compare, meta, ops, operands)

    @v_args(meta=True)
    def binary(self, meta: Any, children: list[Any]) -> ast.Binary:
        left, op, right = children
        return self._node(ast.Binary, meta, str(op), left, right)

    @v_args(meta=True)
    def with_(self, meta: Any, children: list[Any]) -> ast.With:
        return self._node(ast.With, meta, *children)

    @v_args(meta=True)
    def call(self, meta: Any, children: list[Any]) -> ast.Call:
        func, arguments = children
        args: list[ast.Expr] = []
        kwargs: list[ast.Keyword] = []
        for arg in arguments or ():
            if isinstance(arg, ast.Keyword):
                if any(k.name == arg.name for k in kwargs):
                    raise SpecError(f"keyword argument `{arg.name}` given twice", arg.span)
                kwargs.append(arg)
            elif kwargs:
                raise SpecError(
                    "positional argument after a keyword argument",
                    arg.span,
                    hint="put positional arguments first",
                )
            else:
                args.append(arg)
        return self._node(ast.Call, meta, func, tuple(args), tuple(kwargs))

    def arguments(self, children: list[Any]) -> list[Any]:
        return [c for c in children if c is not None]

    @v_args(meta=True)
    def generator(self, meta: Any, children: list[Any]) -> list[Any]:
        element, var, iterable, condition = children
        return [self._node(ast.Comprehension, meta, element, str(var), iterable, condition, bracketed=False)]

    @v_args(meta=True)
    def keyword(self, meta: Any, children: list[Any]) -> ast.Keyword:
        name, value = children
        return self._node(ast.Keyword, meta, str(name), value)

    @v_args(meta=True)
    def attribute(self, meta: Any, children: list[Any]) -> ast.Attribute:
        obj, name = children
        return self._node(ast.Attribute, meta, obj, str(name))

    @v_args(meta=True)
    def index(self, meta: Any, children: list[Any]) -> ast.Index:
        return self._node(ast.Index, meta, *children)

    @v_args(meta=True)
    def number(self, meta: Any, children: list[Token]) -> ast.Number:
        return self._node(ast.Number, meta, _decode_number(self.file, children[0]))

    @v_args(meta=True)
    def percent(self, meta: Any, children: list[Token]) -> ast.Number:
        return self._node(ast.Number, meta, _decode_number(self.file, children[0]), True)

    @v_args(meta=True)
    def string(self, meta: Any, children: list[Token]) -> ast.String:
        return self._node(ast.String, meta, _decode_string(self.file, children[0]))

    @v_args(meta=True)
    def true(self, meta: Any, children: list[Any]) -> ast.Bool:
        return self._node(ast.Bool, meta, True)

    @v_args(meta=True)
    def false(self, meta: Any, children: list[Any]) -> ast.Bool:
        return self._node(ast.Bool, meta, False)

    @v_args(meta=True)
    def name(self, meta: Any, children: list[Token]) -> ast.Name:
        return self._node(ast.Name, meta, str(children[0]))

    @v_args(meta=True)
    def list(self, meta: Any, children: list[Any]) -> ast.ListLit:
        return self._node(ast.ListLit, meta, tuple(c for c in children if c is not None))

    @v_args(meta=True)
    def list_comprehension(self, meta: Any, children: list[Any]) -> ast.Comprehension:
        element, var, iterable, condition = children
        return self._node(ast.Comprehension, meta, element, str(var), iterable, condition)

    @v_args(meta=True)
    def record(self, meta: Any, children: list[Any]) -> ast.RecordLit:
        fields = tuple(c for c in children if c is not None)
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise SpecError(f"field `{f.name}` given twice", f.span)
            seen.add(f.name)
        return self._node(ast.RecordLit, meta, fields)

    @v_args(meta=True)
    def field(self, meta: Any, children: list[Any]) -> ast.RecordField:
        name, value = children
        return self._node(ast.RecordField, meta, str(name), value)
