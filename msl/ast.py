"""The typed AST of MSL.

Nodes are small frozen dataclasses. Each carries the :class:`~msl.source.Span` of the text
it came from; spans are excluded from equality (``compare=False``), so two ASTs are equal
exactly when they mean the same program — which is what ``msl fmt`` must preserve.

Passes over the tree (checking, linting, formatting, evaluation) are written as functions
that dispatch on the node type, not as methods on the nodes, so each pass stays in its
own module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Literal, TypeAlias

from msl.source import Span

NO_SPAN = Span("<none>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node; ``span`` locates it in its source file."""

    span: Span = _span()

    def children(self) -> Iterator[Node]:
        """The direct child nodes, in source order."""
        for name in _child_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, Node):
                        yield item


@cache
def _child_fields(cls: type[Node]) -> tuple[str, ...]:
    """Names of the fields that may hold nodes (not the spans), cached per class."""
    return tuple(f.name for f in fields(cls) if f.compare)


def walk(node: Node) -> Iterator[Node]:
    """Every node of the subtree, parents before children (iterative: trees may be deep)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(current.children())))


# ── Expressions ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A numeric literal; ``percent`` marks ``5%`` (whose value is 0.05)."""

    value: int | float
    percent: bool = False

    @property
    def fraction(self) -> float:
        return self.value / 100 if self.percent else float(self.value)


@dataclass(frozen=True, slots=True)
class String(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Name(Node):
    id: str


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class RecordField(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class RecordLit(Node):
    fields: tuple[RecordField, ...]


@dataclass(frozen=True, slots=True)
class Comprehension(Node):
    """``E for x in S if C``: a list ``[...]`` or the sole argument of an aggregate call."""

    element: Expr
    var: str
    iterable: Expr
    condition: Expr | None = None
    bracketed: bool = True


@dataclass(frozen=True, slots=True)
class Attribute(Node):
    obj: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    obj: Expr
    index: Expr


@dataclass(frozen=True, slots=True)
class Keyword(Node):
    """A keyword argument ``name: value`` of a call."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: Literal["-", "not"]
    operand: Expr


BinaryOp: TypeAlias = Literal["+", "-", "*", "/", "and", "or", "then"]


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: BinaryOp
    left: Expr
    right: Expr


CompareOp: TypeAlias = Literal["<", "<=", ">", ">=", "==", "!="]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """A comparison chain: ``a < b <= c`` has ops ``("<", "<=")`` and three operands."""

    ops: tuple[CompareOp, ...]
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class With(Node):
    """``expr with intervention``: every model query inside ``expr`` runs intervened."""

    expr: Expr
    intervention: Expr


Expr: TypeAlias = (
    Number | String | Bool | Name | ListLit | RecordLit | Comprehension | Attribute | Index
    | Call | Unary | Binary | Compare | With
)

# ── Expectations ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Invariant(Node):
    """``invariant E under T within tol``: |E − E'| ≤ tol, E' evaluated after T."""

    expr: Expr
    under: Expr
    within: Expr


@dataclass(frozen=True, slots=True)
class Directional(Node):
    """``increases E under T by d`` (E' − E ≥ d) or ``decreases …`` (E − E' ≥ d)."""

    direction: Literal["increases", "decreases"]
    expr: Expr
    under: Expr
    by: Expr


@dataclass(frozen=True, slots=True)
class Agree(Node):
    """``agree A, B [within tol]``: two measurements of one thing agree (consistency)."""

    left: Expr
    right: Expr
    within: Expr | None = None


Expectation: TypeAlias = Expr | Invariant | Directional | Agree

# ── Claim statements ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Description(Node):
    text: str


@dataclass(frozen=True, slots=True)
class Tags(Node):
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Severity(Node):
    level: str


@dataclass(frozen=True, slots=True)
class For(Node):
    """``for x in S``: the claim is checked on every (or a sampled) element of S."""

    var: str
    iterable: Expr
    var_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Forall(Node):
    """``forall x in D [where C]``: a universal claim over a domain, proved or searched."""

    var: str
    domain: Expr
    where: Expr | None = None
    var_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Let(Node):
    name: str
    value: Expr
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Expect(Node):
    condition: Expectation


@dataclass(frozen=True, slots=True)
class Tolerate(Node):
    """``tolerate 2% at 95% confidence``: the violation rate allowed, and the confidence."""

    rate: Expr
    confidence: Expr | None = None


@dataclass(frozen=True, slots=True)
class RoleBinding(Node):
    """``base = m`` or ``refined = m with push`` in a refine claim."""

    role: Literal["base", "refined"]
    value: Expr


@dataclass(frozen=True, slots=True)
class Preserves(Node):
    """``preserves "core.msl" role lm``: core.msl's claims hold on refined as on base."""

    path: str
    role: str | None = None


Statement: TypeAlias = (
    Description | Tags | Severity | For | Forall | Let | Expect | Tolerate | RoleBinding | Preserves
)

# ── Top level ────────────────────────────────────────────────────────────────────────────

ClaimKind: TypeAlias = Literal["verify", "explore", "steer", "refine"]
DeclKeyword: TypeAlias = Literal["lexicon", "data", "transform", "vector", "intervention", "let"]


@dataclass(frozen=True, slots=True)
class Import(Node):
    path: str


@dataclass(frozen=True, slots=True)
class ModelDecl(Node):
    name: str
    kind: str
    ref: str | None = None
    fingerprint: str | None = None
    name_span: Span = _span()
    kind_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Decl(Node):
    keyword: DeclKeyword
    name: str
    value: Expr
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class MeasureDecl(Node):
    name: str
    params: tuple[str, ...]
    body: Expr
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Claim(Node):
    kind: ClaimKind
    name: str
    body: tuple[Statement, ...]
    name_span: Span = _span()

    def statements(self, kind: type[Statement]) -> list[Statement]:
        return [s for s in self.body if isinstance(s, kind)]


Item: TypeAlias = Import | ModelDecl | Decl | MeasureDecl | Claim


@dataclass(frozen=True, slots=True)
class Module(Node):
    """One `.msl` file: its language version and its items in source order."""

    version: str
    items: tuple[Item, ...]

    @property
    def claims(self) -> list[Claim]:
        return [i for i in self.items if isinstance(i, Claim)]

    @property
    def imports(self) -> list[Import]:
        return [i for i in self.items if isinstance(i, Import)]


@dataclass(frozen=True, slots=True)
class Comment(Node):
    """A ``#`` comment; kept beside the AST (not in it) so ``msl fmt`` can put it back."""

    text: str
