"""Format: the canonical layout of a spec (``msl fmt``).

The printer works from the AST, so the output always parses back to the same AST —
formatting never changes meaning — and printing its own output again changes nothing.
Comments and the blank lines that group declarations and statements are kept: each
comment stays before, or at the end of, the line it was on (a comment inside a
multi-line statement or declaration moves to just before it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from msl import ast
from msl.parse import Parsed
from msl.source import Source

INDENT = "  "
#: Statements longer than this have their outermost list or call laid out one item a line.
WIDTH = 100

# Binding strength, loosest first; see the expression rules of grammar/msl.lark.
_THEN, _OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _WITH, _POSTFIX, _ATOM = range(1, 12)
_BINARY = {"then": _THEN, "or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}


def format_parsed(parsed: Parsed) -> str:
    """The canonical text of a parsed spec."""
    return _Printer(parsed).module()


def format_module(module: ast.Module) -> str:
    """The canonical text of a bare AST (no comments, no source layout to keep).

    Tools that build specs as ASTs (and the round-trip tests) print through this.
    """
    return format_parsed(Parsed(module, (), Source("<ast>", "")))


# ── Expressions ──────────────────────────────────────────────────────────────────────────


def expr(node: ast.Node, outer: int = 0) -> str:
    """An expression on one line, with the fewest parentheses that keep its meaning."""
    text, strength = _expr(node)
    return f"({text})" if strength < outer else text


def _number(node: ast.Number) -> str:
    text = str(node.value) if isinstance(node.value, int) else repr(float(node.value))
    return text + ("%" if node.percent else "")


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _call_arguments(node: ast.Call) -> list[str]:
    return [expr(a) for a in node.args] + [f"{k.name}: {expr(k.value)}" for k in node.kwargs]


def _comprehension(node: ast.Comprehension) -> str:
    text = f"{expr(node.element)} for {node.var} in {expr(node.iterable)}"
    if node.condition is not None:
        text += f" if {expr(node.condition)}"
    return f"[{text}]" if node.bracketed else text


def _expr(node: ast.Node) -> tuple[str, int]:
    match node:
        case ast.Number():
            return _number(node), _ATOM
        case ast.String():
            return _string(node.value), _ATOM
        case ast.Bool():
            return ("true" if node.value else "false"), _ATOM
        case ast.Name():
            return node.id, _ATOM
        case ast.ListLit():
            return "[" + ", ".join(expr(i) for i in node.items) + "]", _ATOM
        case ast.RecordLit():
            return "{" + ", ".join(f"{f.name}: {expr(f.value)}" for f in node.fields) + "}", _ATOM
        case ast.Comprehension():
            return _comprehension(node), _ATOM
        case ast.Attribute():
            return f"{expr(node.obj, _POSTFIX)}.{node.name}", _POSTFIX
        case ast.Index():
            return f"{expr(node.obj, _POSTFIX)}[{expr(node.index)}]", _POSTFIX
        case ast.Call():
            return f"{expr(node.func, _POSTFIX)}({', '.join(_call_arguments(node))})", _POSTFIX
        case ast.Unary(op="not"):
            return f"not {expr(node.operand, _NOT)}", _NOT
        case ast.Unary():
            return f"-{expr(node.operand, _UNARY)}", _UNARY
        case ast.Binary():
            strength = _BINARY[node.op]
            return f"{expr(node.left, strength)} {node.op} {expr(node.right, strength + 1)}", strength
        case ast.Compare():
            parts = [expr(node.operands[0], _SUM)]
            for op, operand in zip(node.ops, node.operands[1:], strict=True):
                parts.append(f"{op} {expr(operand, _SUM)}")
            return " ".join(parts), _COMPARE
        case ast.With():
            return f"{expr(node.expr, _WITH)} with {expr(node.intervention, _POSTFIX)}", _WITH
    raise TypeError(f"not an expression: {type(node).__name__}")


def expectation(node: ast.Node) -> str:
    match node:
        case ast.Invariant():
            return f"invariant {expr(node.expr)} under {expr(node.under)} within {expr(node.within)}"
        case ast.Directional():
            return f"{node.direction} {expr(node.expr)} under {expr(node.under)} by {expr(node.by)}"
        case ast.Agree():
            text = f"agree {expr(node.left)}, {expr(node.right)}"
            return text + (f" within {expr(node.within)}" if node.within is not None else "")
    return expr(node)


def statement(node: ast.Node) -> str:
    """One claim statement on one line (wrapping is done by the caller)."""
    match node:
        case ast.Description():
            return f"description {_string(node.text)}"
        case ast.Tags():
            return "tags " + ", ".join(node.names)
        case ast.Severity():
            return f"severity {node.level}"
        case ast.For():
            return f"for {node.var} in {expr(node.iterable)}"
        case ast.Forall():
            text = f"forall {node.var} in {expr(node.domain)}"
            return text + (f" where {expr(node.where)}" if node.where is not None else "")
        case ast.Let():
            return f"let {node.name} = {expr(node.value)}"
        case ast.Expect():
            return f"expect {expectation(node.condition)}"
        case ast.Tolerate():
            text = f"tolerate {expr(node.rate)}"
            return text + (f" at {expr(node.confidence)} confidence" if node.confidence is not None else "")
        case ast.RoleBinding():
            return f"{node.role} = {expr(node.value)}"
        case ast.Preserves():
            text = f"preserves {_string(node.path)}"
            return text + (f" role {node.role}" if node.role is not None else "")
    raise TypeError(f"not a statement: {type(node).__name__}")


def item_head(node: ast.Node) -> str:
    match node:
        case ast.Import():
            return f"import {_string(node.path)}"
        case ast.ModelDecl():
            text = f"model {node.name}: {node.kind}"
            if node.ref is not None:
                text += f" = {_string(node.ref)}"
            if node.fingerprint is not None:
                text += f" fingerprint {_string(node.fingerprint)}"
            return text
        case ast.Decl():
            return f"{node.keyword} {node.name} = {expr(node.value)}"
        case ast.MeasureDecl():
            return f"measure {node.name}({', '.join(node.params)}) = {expr(node.body)}"
    raise TypeError(f"not an item: {type(node).__name__}")


def _value_of(node: ast.Node) -> ast.Node | None:
    """The expression whose list or call may be wrapped when its line is too long."""
    match node:
        case ast.Decl() | ast.Let():
            return node.value
        case ast.MeasureDecl():
            return node.body
        case ast.For():
            return node.iterable
        case ast.Expect() if not isinstance(node.condition, ast.Invariant | ast.Directional | ast.Agree):
            return node.condition
    return None


def _wrapped(line: str, value: ast.Node | None, indent: str) -> list[str]:
    """A too-long line whose value ends it, with that list or call one item per line."""
    if value is None or len(indent + line) <= WIDTH:
        return [indent + line]
    flat = expr(value)
    if not line.endswith(flat):
        return [indent + line]
    head = line[: len(line) - len(flat)]
    match value:
        case ast.ListLit() if value.items:
            opener, items, closer = "[", [expr(i) for i in value.items], "]"
        case ast.RecordLit() if value.fields:
            opener, items, closer = "{", [f"{f.name}: {expr(f.value)}" for f in value.fields], "}"
        case ast.Call() if value.args or value.kwargs:
            opener, items, closer = expr(value.func, _POSTFIX) + "(", _call_arguments(value), ")"
        case _:
            return [indent + line]
    inner = indent + INDENT
    # A generator is a call's only argument and the grammar allows no comma after it.
    comma = "" if isinstance(value, ast.Call) and _is_generator_call(value) else ","
    return [indent + head + opener] + [f"{inner}{i}{comma}" for i in items] + [indent + closer]


def _is_generator_call(node: ast.Call) -> bool:
    return any(isinstance(a, ast.Comprehension) and not a.bracketed for a in node.args)


# ── Layout with comments ─────────────────────────────────────────────────────────────────


@dataclass
class _Printer:
    parsed: Parsed

    def __post_init__(self) -> None:
        self.lines = self.parsed.source.lines
        self.comments = {c.span.line: c for c in self.parsed.comments}
        self.out: list[str] = []

    def module(self) -> str:
        module = self.parsed.module
        header_line = module.span.line if module.span is not ast.NO_SPAN else 1
        self.gap(0, header_line, "", blank_first=False)
        self.emit(f"msl {module.version}", header_line, "")
        previous_end, previous_claim = header_line, True
        for item in module.items:
            is_claim = isinstance(item, ast.Claim)
            self.gap(previous_end, item.span.line, "", blank_first=previous_claim or is_claim)
            if is_claim:
                self.claim(item)
            else:
                for line in range(item.span.line, item.span.end_line):
                    self.comment_at(line, "")  # comments inside a multi-line declaration
                value = (
                    item.value
                    if isinstance(item, ast.Decl)
                    else item.body
                    if isinstance(item, ast.MeasureDecl)
                    else None
                )
                self.block(_wrapped(item_head(item), value, ""), item.span.end_line)
            previous_end, previous_claim = item.span.end_line, is_claim
        self.gap(previous_end, len(self.lines) + 1, "", blank_first=False, trailing_blanks=False)
        while self.out and not self.out[-1]:
            self.out.pop()
        return "\n".join(self.out) + "\n"

    def claim(self, node: ast.Claim) -> None:
        first_line = node.span.line
        self.emit(f"{node.kind} {node.name} {{", first_line, "")
        previous = first_line
        for stmt in node.body:
            self.gap(previous, stmt.span.line, INDENT, blank_first=False, leading_blanks=previous != first_line)
            for line in range(stmt.span.line, stmt.span.end_line):
                self.comment_at(line, INDENT)  # comments inside a multi-line statement
            self.block(_wrapped(statement(stmt), _value_of(stmt), INDENT), stmt.span.end_line)
            previous = stmt.span.end_line
        self.gap(previous, node.span.end_line, INDENT, blank_first=False, trailing_blanks=False,
                 leading_blanks=previous != first_line)
        self.emit("}", node.span.end_line, "")

    def gap(
        self,
        after: int,
        before: int,
        indent: str,
        blank_first: bool,
        leading_blanks: bool = True,
        trailing_blanks: bool = True,
    ) -> None:
        """The lines strictly between two nodes: their comments and (one) blank lines."""
        emitted: list[str] = []
        pending_blank = False
        for line in range(after + 1, before):
            if line in self.comments:
                if pending_blank and (emitted or leading_blanks):
                    emitted.append("")
                pending_blank = False
                emitted.append(indent + self.comments.pop(line).text)
            elif line <= len(self.lines) and not self.lines[line - 1].strip():
                pending_blank = True
        if pending_blank and trailing_blanks and (emitted or leading_blanks):
            emitted.append("")
        if blank_first and self.out and (not emitted or emitted[0]):
            emitted.insert(0, "")
        self.out.extend(emitted)

    def comment_at(self, line: int, indent: str) -> None:
        if line in self.comments:
            self.out.append(indent + self.comments.pop(line).text)

    def block(self, lines: list[str], end_line: int) -> None:
        self.out.extend(lines[:-1])
        self.emit(lines[-1], end_line, "")

    def emit(self, text: str, line: int, indent: str) -> None:
        """One output line, with the comment that ended source line ``line`` after it."""
        comment = self.comments.pop(line, None)
        self.out.append(indent + text + (f"  {comment.text}" if comment else ""))

