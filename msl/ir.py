"""The checked spec: what checking a spec hands to the linter, the planner and the engines.

These are plain records; :mod:`msl.check` builds them, nothing here checks anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from msl import ast
from msl import types as T
from msl.errors import MslError
from msl.parse import Parsed
from msl.source import Source

Shape = Literal["instance", "aggregate", "closed"]


@dataclass(frozen=True)
class Symbol:
    """A top-level declaration visible in a spec, and the file it comes from."""

    name: str
    node: ast.ModelDecl | ast.Decl | ast.MeasureDecl
    file: str
    type: T.Type


@dataclass(frozen=True)
class CheckedExpect:
    """An expectation with what the evaluator needs to know about its shape.

    ``shape`` is ``instance`` (checked on each instance of the claim's quantifier),
    ``aggregate`` (only aggregates over the instances: checked once), or ``closed``
    (mentions no instance). ``varied`` is the variable an ``under T`` transformation
    changes.
    """

    node: ast.Expect
    shape: Shape
    varied: str | None = None


@dataclass(frozen=True)
class CheckedClaim:
    claim: ast.Claim
    file: str
    quantifiers: tuple[ast.For | ast.Forall, ...]
    expects: tuple[CheckedExpect, ...]
    tolerance: float
    confidence: float
    roles: tuple[str, ...]  # the model roles the claim uses
    #: the engine that checks it: ``preserves``, ``symbolic`` (a ``forall``), ``statistical``
    #: (one ``for`` over a sample), or ``exhaustive`` (see :func:`msl.check.engine_of`)
    engine: str
    description: str = ""
    tags: tuple[str, ...] = ()
    severity: str | None = None
    #: the claim's `let`s whose value depends on the quantified instance
    instance_lets: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.claim.name

    @property
    def kind(self) -> str:
        return self.claim.kind


@dataclass
class CheckedSpec:
    """A root spec with everything the planner and engines need, and its warnings."""

    path: Path
    parsed: Parsed
    modules: dict[Path, Parsed]
    symbols: dict[str, Symbol]
    claims: list[CheckedClaim]
    warnings: list[MslError]
    types: dict[int, T.Type] = field(repr=False)
    #: ids of aggregate calls that aggregate over the claim's instances (``mean(s(x))``)
    implicit_aggregates: set[int] = field(repr=False)
    #: checked specs named by ``preserves`` statements, by path as written
    preserved: dict[str, CheckedSpec] = field(default_factory=dict, repr=False)

    @property
    def roles(self) -> dict[str, ast.ModelDecl]:
        return {n: s.node for n, s in self.symbols.items() if isinstance(s.node, ast.ModelDecl)}

    def sources(self) -> list[Source]:
        """The text of every file the spec reads (its own, its imports, the specs it
        preserves): what its diagnostics quote."""
        own = [parsed.source for parsed in self.modules.values()]
        return own + [source for spec in self.preserved.values() for source in spec.sources()]

    def folder_of(self, item: ast.Node) -> Path:
        """The folder of the file that declares ``item``: the paths a spec names (datasets,
        models) are relative to it, not to the working directory."""
        for path, parsed in self.modules.items():
            if any(i is item for i in parsed.module.items):
                return path.parent
        return self.path.parent
