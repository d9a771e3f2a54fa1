"""Check: a parsed spec and its imports → a checked spec, or every error found.

The checking pass resolves names across imports (reporting cycles), gives every
expression a type, matches measurements to model kinds (``logprob`` on a classifier is
an error), checks built-ins' arities and argument types, percent against fraction,
tolerances and confidences, duplicate claims, the rules of each claim kind, and warns
about declarations nothing uses. It never runs a model and never executes anything
from the spec.

Declarations are checked in order — a name must be declared before it is used — so
checking is one linear pass, however long the spec.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from msl import ast
from msl import types as T
from msl.builtins import Builtin, Param, aggregates, bind_arguments, functions, lookup, measurements, receivers_of
from msl.builtins.data import literal
from msl.errors import MslError, Severity, SpecError, SpecErrors
from msl.fmt import expr as _show
from msl.parse import Parsed, parse_file
from msl.source import INSIDE_HINT, Span, confined, not_read

SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_CONFIDENCE = 0.95

Shape = Literal["instance", "aggregate", "closed"]


# ── Results ──────────────────────────────────────────────────────────────────────────────


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

    def folder_of(self, item: ast.Node) -> Path:
        """The folder of the file that declares ``item``: the paths a spec names (datasets,
        models) are relative to it, not to the working directory."""
        for path, parsed in self.modules.items():
            if any(i is item for i in parsed.module.items):
                return path.parent
        return self.path.parent


# ── Loading: a root file and its imports ─────────────────────────────────────────────────


def display_path(path: Path) -> str:
    """A path as diagnostics show it: relative to the working directory when inside it.

    Links are not resolved: a diagnostic names the file as the user reached it, never
    where a link leads.
    """
    try:
        return str(Path(os.path.normpath(path.absolute())).relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside the working directory; the working directory is gone
        return str(path)


#: One spec may import at most this many files (directly or not): real specs import a
#: handful, and a hostile chain of thousands must stay cheap to reject.
MAX_IMPORTS = 100
#: `preserves` may name a spec that preserves another … at most this deep.
MAX_PRESERVES_DEPTH = 8
#: One call of a measure may evaluate at most this many expressions, the measures it
#: calls expanded (a limit on work, checked before anything runs).
MAX_MEASURE_EXPANSION = 100_000
#: "Did you mean" compares a misspelt name with at most this many candidates per spec.
SUGGESTION_BUDGET = 200_000

#: Parse results by resolved path, shared by the specs of one `msl lint` run so that a
#: file imported by many specs is read once.
ParseCache = dict[Path, "Parsed | SpecErrors"]


def _parse_cached(path: Path, cache: ParseCache, folder: Path) -> Parsed | SpecErrors:
    # the folder is checked before the cache is asked: a file parsed for one folder
    # must not be handed to a spec under another through a link
    try:
        key = confined(path, folder)
    except ValueError as exc:
        return SpecErrors([not_read(display_path(path), exc)])
    if key not in cache:
        try:
            cache[key] = parse_file(path, display_path(path), folder)
        except SpecErrors as exc:
            cache[key] = exc
    return cache[key]


def load_modules(
    root: Path, cache: ParseCache | None = None, folder: Path | None = None
) -> tuple[Parsed, dict[Path, Parsed], list[MslError]]:
    """Parse ``root`` and, depth-first, every file it imports; report cycles.

    Every file read must lie inside ``folder`` (by default the root spec's own), links
    resolved. The walk keeps its own stack (an import chain is as long as a hostile
    folder makes it) and returns the modules imported-first, so declarations resolve in
    order.
    """
    cache = {} if cache is None else cache
    folder = root.parent if folder is None else folder
    parsed = _parse_cached(root, cache, folder)
    if isinstance(parsed, SpecErrors):
        raise parsed
    root_key = root.resolve()
    modules: dict[Path, Parsed] = {root_key: parsed}
    errors: list[MslError] = []
    order: list[Path] = []
    failed: set[Path] = set()
    stack: list[tuple[Path, Path, Iterator[ast.Import]]] = [(root_key, root, iter(parsed.module.imports))]
    while stack:
        key, path, pending = stack[-1]
        imp = next(pending, None)
        if imp is None:
            stack.pop()
            order.append(key)
            continue
        target = _import_target(path, imp, errors, folder)
        if target is None:
            continue
        target_key = target.resolve()
        chain = [frame[0] for frame in stack]
        if target_key in chain:
            cycle = " → ".join(display_path(p) for p in chain[chain.index(target_key):] + [target_key])
            errors.append(SpecError(f"import cycle: {cycle}", imp.span, hint="a file cannot import itself, even through others"))
            continue
        if target_key in modules or target_key in failed:
            continue
        if len(modules) >= MAX_IMPORTS:
            errors.append(SpecError(f"this spec imports more than {MAX_IMPORTS} files", imp.span))
            break
        result = _parse_cached(target, cache, folder)
        if isinstance(result, SpecErrors):
            errors.extend(result.errors)
            failed.add(target_key)
            continue
        modules[target_key] = result
        stack.append((target_key, target, iter(result.module.imports)))
    return parsed, {k: modules[k] for k in order}, errors


def _import_target(importer: Path, imp: ast.Import, errors: list[MslError], folder: Path) -> Path | None:
    target = Path(imp.path)
    if target.is_absolute():
        errors.append(SpecError("imports are relative to the importing file", imp.span))
        return None
    if target.suffix != ".msl":
        errors.append(SpecError("only .msl files can be imported", imp.span, hint="MSL never imports code"))
        return None
    resolved = importer.parent / target
    outside = _outside(resolved, folder, "import")
    if outside is not None:
        errors.append(SpecError(outside, imp.span, hint=INSIDE_HINT))
        return None
    if not resolved.is_file():
        errors.append(SpecError(f"no file {imp.path!r} to import", imp.span))
        return None
    return resolved


def _outside(path: Path, folder: Path, what: str) -> str | None:
    """Why ``path`` (named by an `import` or `preserves`) may not be read, or None."""
    try:
        confined(path, folder)
    except ValueError as exc:
        return f"this {what} is not read: {exc}"
    return None


def check_file(
    path: Path, _seen: tuple[Path, ...] = (), cache: ParseCache | None = None, folder: Path | None = None
) -> CheckedSpec:
    """Load, parse and check one spec with its imports, every file inside ``folder``
    (by default the spec's own); raises :class:`SpecErrors`."""
    spec, diagnostics = analyse_file(path, _seen, cache, folder)
    if spec is None:
        raise SpecErrors(diagnostics)
    hard = [e for e in diagnostics if e.severity is Severity.ERROR]
    if hard:
        raise SpecErrors(sorted(hard, key=_order) + [w for w in diagnostics if w not in hard])
    return spec


def analyse_file(
    path: Path, _seen: tuple[Path, ...] = (), cache: ParseCache | None = None, folder: Path | None = None
) -> tuple[CheckedSpec | None, list[MslError]]:
    """:func:`check_file` without raising: the checked spec and every diagnostic.

    The spec is returned even when it has errors (``None`` only when the root file does
    not parse): an editor still shows the names and types of the parts that check.
    """
    cache = {} if cache is None else cache
    folder = path.parent if folder is None else folder
    try:
        root, modules, errors = load_modules(path, cache, folder)
    except SpecErrors as exc:
        return None, list(exc.errors)
    checker = _Checker(path, root, modules, errors, _seen + (path.resolve(),), cache, folder)
    spec = checker.run()
    return spec, checker.diagnostics


def _order(e: MslError) -> tuple[str, int, int]:
    return (e.span.file, e.span.line, e.span.column) if e.span else ("", 0, 0)


# ── The checker ──────────────────────────────────────────────────────────────────────────


@dataclass
class _Binding:
    type: T.Type
    deps: frozenset[str] = frozenset()  # the claim's quantified variables it depends on
    symbol: Symbol | None = None


class _Scope:
    """Nested names: claim-local bindings over the spec's symbols."""

    def __init__(self, parent: _Scope | None = None) -> None:
        self.parent = parent
        self.names: dict[str, _Binding] = {}

    def find(self, name: str) -> _Binding | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> Iterator[str]:
        scope: _Scope | None = self
        while scope is not None:
            yield from scope.names
            scope = scope.parent


class _Checker:
    def __init__(
        self,
        path: Path,
        root: Parsed,
        modules: dict[Path, Parsed],
        errors: list[MslError],
        seen: tuple[Path, ...],
        cache: ParseCache,
        folder: Path,
    ) -> None:
        self.path = path
        self.cache = cache
        #: the folder being checked: every spec `preserves` names lies inside it
        self.folder = folder
        self.suggestion_budget = SUGGESTION_BUDGET
        #: every name some module declares (a use before the declaration gets a hint)
        self.declared = {
            i.name for p in modules.values() for i in p.module.items
            if isinstance(i, (ast.Decl, ast.ModelDecl, ast.MeasureDecl))
        }
        self.root = root
        self.modules = modules
        self.diagnostics: list[MslError] = list(errors)
        self.seen = seen
        self.types: dict[int, T.Type] = {}
        self.implicit: set[int] = set()
        self.symbols: dict[str, Symbol] = {}
        #: the model roles each declaration reads, directly or through earlier ones
        self.roles_of: dict[str, frozenset[str]] = {}
        self.used: set[str] = set()
        self.globals = _Scope()
        self.claim: ast.Claim | None = None
        self.claim_vars: set[str] = set()
        #: the claim's `forall` variables: points of a domain, never aggregated over
        self.domain_vars: set[str] = set()
        self.preserved: dict[str, CheckedSpec] = {}
        #: expressions one call of each measure evaluates, its measure calls expanded
        #: (None: over the limit, reported)
        self.measure_cost: dict[str, int | None] = {}

    # diagnostics

    def error(self, message: str, span: Span, hint: str | None = None) -> T.Type:
        self.diagnostics.append(SpecError(message, span, hint))
        return T.ANY

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(SpecError(message, span, hint, Severity.WARNING))

    def suggest(self, word: str, candidates: list[str]) -> str | None:
        """The candidate ``word`` was probably meant to be, within a budget per spec:
        thousands of unknown names among thousands of declarations would otherwise
        take minutes of string matching."""
        self.suggestion_budget -= len(candidates)
        if self.suggestion_budget < 0:
            return None
        close = difflib.get_close_matches(word, candidates, n=1)
        return close[0] if close else None

    def report(self, message: str, span: Span, hint: str | None = None) -> None:
        """The callback built-in validators report through."""
        self.error(message, span, hint)

    # driver

    def run(self) -> CheckedSpec:
        for parsed in self.modules.values():
            self.module(parsed, is_root=parsed is self.root)
        claims = [c for c in (self.claim_(c) for c in self.root.module.claims) if c is not None]
        self.duplicates(self.root.module.claims)
        if not any(d.severity is Severity.ERROR for d in self.diagnostics):
            self.unused()
        return CheckedSpec(
            self.path, self.root, self.modules, self.symbols, claims,
            [d for d in self.diagnostics if d.severity is Severity.WARNING],
            self.types, self.implicit, self.preserved,
        )

    def module(self, parsed: Parsed, is_root: bool) -> None:
        for item in parsed.module.items:
            if isinstance(item, ast.ModelDecl):
                self.declare(item, self.model_decl(item), parsed)
            elif isinstance(item, ast.Decl):
                self.declare(item, self.decl(item), parsed)
            elif isinstance(item, ast.MeasureDecl):
                self.declare(item, self.measure(item), parsed)

    def declare(self, node: ast.ModelDecl | ast.Decl | ast.MeasureDecl, type_: T.Type, parsed: Parsed) -> None:
        previous = self.symbols.get(node.name)
        if previous is not None and previous.node is not node:
            self.error(
                f"`{node.name}` is already declared at {_where(previous.node.name_span, node.name_span)}",
                node.name_span,
            )
            return
        if lookup(node.name) is not None:
            self.warn(f"`{node.name}` hides the built-in of the same name", node.name_span)
        symbol = Symbol(node.name, node, parsed.source.name, type_)
        self.symbols[node.name] = symbol
        self.globals.names[node.name] = _Binding(type_, symbol=symbol)
        self.roles_of[node.name] = frozenset({node.name}) if isinstance(node, ast.ModelDecl) else self.roles_read(node)

    def model_decl(self, node: ast.ModelDecl) -> T.Type:
        if node.kind not in T.MODEL_KINDS:
            close = difflib.get_close_matches(node.kind, T.MODEL_KINDS, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"kinds: {', '.join(T.MODEL_KINDS)}"
            return self.error(f"unknown model kind `{node.kind}`", node.kind_span, hint)
        if node.fingerprint is not None and not _is_fingerprint(node.fingerprint):
            self.error(
                "a fingerprint is `sha256:` and 64 hex digits",
                node.span,
                hint="`msl check` prints each model's fingerprint in its findings",
            )
        return T.model_of(node.kind)

    def decl(self, node: ast.Decl) -> T.Type:
        t = self.infer(node.value, self.globals)
        expected = {
            "lexicon": T.set_of(T.STR),
            "data": T.set_of(T.ANY),
            "transform": T.TRANSFORM,
            "vector": T.VECTOR,
            "intervention": T.INTERVENTION,
        }.get(node.keyword)
        if expected is not None and not T.assignable(t, expected):
            self.error(
                f"`{node.keyword} {node.name}` must be {T.describe(expected)}, not {T.describe(t)}",
                node.value.span,
                hint="use `let` for other values" if node.keyword != "let" else None,
            )
        if expected is not None and (t == T.ANY or not T.assignable(t, expected)):
            # the keyword says what the name is, even when its value has an error: uses of
            # the name are then checked against that, not reported again
            return expected
        return t

    def measure(self, node: ast.MeasureDecl) -> T.Type:
        if len(set(node.params)) != len(node.params):
            self.error("a parameter name is repeated", node.name_span)
        scope = _Scope(self.globals)
        for p in node.params:
            scope.names[p] = _Binding(T.ANY)
        body = self.infer(node.body, scope)
        self.types[id(node)] = body
        self.expansion(node)
        return T.MEASURE

    def expansion(self, node: ast.MeasureDecl) -> None:
        """Refuse a measure whose calls of other measures multiply beyond
        :data:`MAX_MEASURE_EXPANSION` evaluations: 40 measures that each call the
        previous twice are 2^40 evaluations of a tiny spec."""
        cost = 0
        for n in ast.walk(node.body):
            cost += 1
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in node.params:
                callee = self.measure_cost.get(n.func.id, 0)
                if callee is None:  # refused already: reported there, not at each caller
                    self.measure_cost[node.name] = None
                    return
                cost += callee
        if cost > MAX_MEASURE_EXPANSION:
            self.error(
                f"one call of `{node.name}` evaluates more than {MAX_MEASURE_EXPANSION:,} expressions "
                "(the measures it calls, and those they call, multiply)",
                node.name_span,
                hint="call a measure once and reuse its value, e.g. `2 * m(x)` rather than `m(x) + m(x)`",
            )
        self.measure_cost[node.name] = cost if cost <= MAX_MEASURE_EXPANSION else None

    # claims

    def claim_(self, node: ast.Claim) -> CheckedClaim | None:
        self.claim, self.claim_vars, self.domain_vars = node, set(), set()
        scope = _Scope(self.globals)
        quantifiers: list[ast.For | ast.Forall] = []
        expects: list[CheckedExpect] = []
        tolerance: ast.Tolerate | None = None
        meta: dict[type, ast.Node] = {}
        roles: dict[str, ast.RoleBinding] = {}
        preserves: list[ast.Preserves] = []
        instance_lets: set[str] = set()
        start = len(self.diagnostics)
        for stmt in node.body:
            if isinstance(stmt, (ast.Description, ast.Tags, ast.Severity, ast.Tolerate)):
                if type(stmt) in meta:
                    self.error(f"`{_keyword(stmt)}` is given twice in this claim", stmt.span)
                meta[type(stmt)] = stmt
            if isinstance(stmt, ast.Severity) and stmt.level not in SEVERITIES:
                close = difflib.get_close_matches(stmt.level, SEVERITIES, n=1)
                self.error(
                    f"unknown severity `{stmt.level}`",
                    stmt.span,
                    f"did you mean `{close[0]}`?" if close else f"severities: {', '.join(SEVERITIES)}",
                )
            elif isinstance(stmt, ast.For):
                quantifiers.append(stmt)
                self.bind_var(scope, stmt.var, stmt.var_span, self.iterable(stmt, scope))
            elif isinstance(stmt, ast.Forall):
                quantifiers.append(stmt)
                self.bind_var(scope, stmt.var, stmt.var_span, self.domain(stmt, scope))
                self.domain_vars.add(stmt.var)
                if stmt.where is not None:
                    self.expect_bool(self.infer(stmt.where, scope), stmt.where, "a `where` clause")
            elif isinstance(stmt, ast.Let):
                t = self.infer(stmt.value, scope)
                if stmt.name in self.claim_vars:
                    self.error(f"`{stmt.name}` is the claim's quantified variable", stmt.name_span)
                    continue  # keep the variable's binding: uses of it are not errors too
                deps = self.deps(stmt.value, scope)
                scope.names[stmt.name] = _Binding(t, deps)
                if deps:
                    instance_lets.add(stmt.name)
            elif isinstance(stmt, ast.Expect):
                expects.append(self.expect(stmt, scope))
            elif isinstance(stmt, ast.Tolerate):
                tolerance = stmt
            elif isinstance(stmt, ast.RoleBinding):
                if stmt.role in roles:
                    self.error(f"`{stmt.role}` is given twice in this claim", stmt.span)
                roles[stmt.role] = stmt
                t = self.infer(stmt.value, scope)
                if not T.is_model(t) and t != T.ANY:
                    self.error(f"`{stmt.role}` must be a model role, not {T.describe(t)}", stmt.value.span)
                scope.names[stmt.role] = _Binding(t)
            elif isinstance(stmt, ast.Preserves):
                preserves.append(stmt)
        self.claim_rules(node, quantifiers, expects, tolerance, roles, preserves)
        self.claim = None
        if any(d.severity is Severity.ERROR for d in self.diagnostics[start:]):
            return None
        rate, confidence = self.tolerance(tolerance)
        description = meta.get(ast.Description)
        tags = meta.get(ast.Tags)
        severity = meta.get(ast.Severity)
        return CheckedClaim(
            node,
            node.span.file,
            tuple(quantifiers),
            tuple(expects),
            rate,
            confidence,
            tuple(sorted(self.claim_roles(node))),
            description.text if isinstance(description, ast.Description) else "",
            tags.names if isinstance(tags, ast.Tags) else (),
            severity.level if isinstance(severity, ast.Severity) else None,
            frozenset(instance_lets),
        )

    def bind_var(self, scope: _Scope, name: str, span: Span, t: T.Type) -> None:
        if name in self.claim_vars or scope.find(name) is not None and name in scope.names:
            self.error(f"`{name}` is already bound in this claim", span)
        self.claim_vars.add(name)
        scope.names[name] = _Binding(t, frozenset({name}))

    def iterable(self, stmt: ast.For, scope: _Scope) -> T.Type:
        t = self.infer(stmt.iterable, scope)
        if T.is_set(t):
            return t.elem
        if t.name == "domain":
            return self.error(
                "`for` runs over a finite set; a domain needs `forall`",
                stmt.iterable.span,
                hint=f"write `forall {stmt.var} in ...`",
            )
        if t != T.ANY:
            return self.error(f"`for` needs a set to run over, not {T.describe(t)}", stmt.iterable.span)
        return T.ANY

    def domain(self, stmt: ast.Forall, scope: _Scope) -> T.Type:
        t = self.infer(stmt.domain, scope)
        if t.name == "domain":
            return T.VECTOR
        if T.is_set(t):
            if stmt.where is not None:
                self.error("`where` constrains a domain of network inputs", stmt.where.span)
            return t.elem
        if t != T.ANY:
            return self.error(
                f"`forall` needs a domain (box, linf_ball, l2_ball) or a set, not {T.describe(t)}",
                stmt.domain.span,
            )
        return T.ANY

    def expect(self, stmt: ast.Expect, scope: _Scope) -> CheckedExpect:
        cond = stmt.condition
        varied: str | None = None
        if isinstance(cond, ast.Invariant | ast.Directional):
            value = self.infer(cond.expr, scope)
            under = self.infer(cond.under, scope)
            amount = cond.within if isinstance(cond, ast.Invariant) else cond.by
            self.expect_number(self.infer(amount, scope), amount, "the tolerance" if isinstance(cond, ast.Invariant) else "the change")
            self.absolute_amount(amount, cond.expr)
            if isinstance(cond, ast.Directional):
                self.expect_number(value, cond.expr, "a directional expectation")
            elif value not in (T.ANY, T.NUMBER, T.STR, T.BOOL, T.VECTOR):
                self.error(f"an invariance compares numbers or texts, not {T.describe(value)}", cond.expr.span)
            if under == T.TRANSFORM:
                varied = self.varied(cond, scope)
            elif under not in (T.INTERVENTION, T.ANY):
                self.error(
                    f"`under` takes a transformation or an intervention, not {T.describe(under)}",
                    cond.under.span,
                )
        elif isinstance(cond, ast.Agree):
            left, right = self.infer(cond.left, scope), self.infer(cond.right, scope)
            if cond.within is not None:
                self.expect_number(self.infer(cond.within, scope), cond.within, "the tolerance")
                self.absolute_amount(cond.within, cond.left)
                self.expect_number(left, cond.left, "`agree … within`")
                self.expect_number(right, cond.right, "`agree … within`")
        else:
            self.expect_bool(self.infer(cond, scope), cond, "an expectation")
            self.unit_mistakes(cond)
        return CheckedExpect(stmt, self.shape(stmt, scope), varied)

    def varied(self, cond: ast.Invariant | ast.Directional, scope: _Scope) -> str | None:
        """The quantified variable an ``under T`` transformation applies to."""
        used = sorted(self.deps(cond.expr, scope))
        if len(used) == 1:
            return used[0]
        if not used:
            self.error(
                "`under` a transformation needs an expression that reads the claim's input",
                cond.expr.span,
                hint="e.g. `for x in reviews` then `invariant score(x) under swap_names within 0.1`",
            )
        else:
            self.error(
                f"`under` cannot tell which input to transform: the expression reads {', '.join(used)}",
                cond.expr.span,
            )
        return None

    def shape(self, stmt: ast.Expect, scope: _Scope) -> Shape:
        inside, outside = set(), set()
        for var, in_agg in self.occurrences(stmt.condition, scope, False):
            (inside if in_agg else outside).add(var)
        if inside and outside:
            self.error(
                "this expectation mixes per-instance values with aggregates over the instances",
                stmt.span,
                hint="state them as two expectations",
            )
        if outside:
            return "instance"
        return "aggregate" if inside else "closed"

    def occurrences(self, node: ast.Node, scope: _Scope, in_agg: bool) -> Iterator[tuple[str, bool]]:
        """Each quantified variable the expression reads, and whether inside an aggregate."""
        stack: list[tuple[ast.Node, bool, frozenset[str]]] = [(node, in_agg, frozenset())]
        while stack:
            current, agg, bound = stack.pop()
            if isinstance(current, ast.Name) and current.id not in bound:
                binding = scope.find(current.id)
                if binding is not None:
                    for var in binding.deps:
                        yield var, agg
                continue
            if isinstance(current, ast.Comprehension):
                stack.append((current.iterable, agg, bound))
                inner = bound | {current.var}
                stack.append((current.element, agg, inner))
                if current.condition is not None:
                    stack.append((current.condition, agg, inner))
                continue
            now_agg = agg or id(current) in self.implicit
            for child in current.children():
                stack.append((child, now_agg, bound))

    def deps(self, node: ast.Node, scope: _Scope) -> frozenset[str]:
        return frozenset(var for var, _ in self.occurrences(node, scope, False))

    def claim_rules(
        self,
        node: ast.Claim,
        quantifiers: list[ast.For | ast.Forall],
        expects: list[CheckedExpect],
        tolerance: ast.Tolerate | None,
        roles: dict[str, ast.RoleBinding],
        preserves: list[ast.Preserves],
    ) -> None:
        if node.kind == "refine":
            for role in ("base", "refined"):
                if role not in roles:
                    self.error(f"a refine claim names its `{role}` model", node.name_span, hint=f"add `{role} = <model>`")
            if "base" in roles and "refined" in roles:
                kinds = {T.model_kind(self.types.get(id(roles[r].value), T.ANY)) for r in ("base", "refined")}
                if len(kinds - {None}) > 1:
                    self.error("`base` and `refined` must be models of the same kind", roles["refined"].span)
            for stmt in preserves:
                self.preserved_spec(stmt, roles)
            if preserves and (expects or quantifiers):
                self.error(
                    "a `preserves` claim only names base, refined and the specs they share",
                    (expects[0].node if expects else quantifiers[0]).span,
                    hint="state other expectations in a claim of their own",
                )
        else:
            for stmt in list(roles.values()) + preserves:
                self.error(f"`{_keyword(stmt)}` belongs in a refine claim", stmt.span)
        if not expects and not preserves:
            if node.kind == "explore":
                self.warn(
                    "this explore claim states no expectation: its results are reported, its verdict is inconclusive",
                    node.name_span,
                )
            else:
                self.error("this claim has no expectation, so nothing could be checked", node.name_span, hint="add `expect ...`")
        if node.kind == "steer" and not any(self.mentions_intervention(e.node) for e in expects):
            self.error(
                "a steer claim states what an intervention does: use `with` or `under` an intervention",
                node.name_span,
                hint="e.g. `expect increases score(p) under push by 0.5` or `expect lm.top(p) with push == \" yes\"`",
            )
        foralls = [q for q in quantifiers if isinstance(q, ast.Forall)]
        if foralls and len(quantifiers) > 1:
            self.error("a `forall` claim has exactly one quantifier", quantifiers[1].span)
        if tolerance is not None:
            if foralls:
                self.error(
                    "a `forall` claim is universal: it tolerates no violation",
                    tolerance.span,
                    hint="remove `tolerate`, or state the claim with `for x in S` over a finite set",
                )
            elif not any(e.shape == "instance" for e in expects):
                self.error(
                    "`tolerate` needs per-instance expectations (`for x in ...` and `expect` on x)",
                    tolerance.span,
                )
        for e in expects:
            if e.shape == "instance" and not quantifiers:
                self.error("internal: instance expectation without quantifier", e.node.span)

    def mentions_intervention(self, node: ast.Node, seen: frozenset[str] = frozenset()) -> bool:
        """Whether an expectation applies an intervention, itself or in a measure it calls."""
        for n in ast.walk(node):
            if isinstance(n, ast.With):
                return True
            if isinstance(n, ast.Invariant | ast.Directional) and self.types.get(id(n.under)) == T.INTERVENTION:
                return True
            if isinstance(n, ast.Name) and self.types.get(id(n)) == T.INTERVENTION:
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in seen:
                symbol = self.symbols.get(n.func.id)
                if symbol is not None and isinstance(symbol.node, ast.MeasureDecl) and self.mentions_intervention(
                    symbol.node.body, seen | {n.func.id}
                ):
                    return True
        return False

    def preserved_spec(self, stmt: ast.Preserves, roles: dict[str, ast.RoleBinding]) -> None:
        target = Path(stmt.path)
        if target.is_absolute() or target.suffix != ".msl":
            self.error("`preserves` names a .msl file relative to this one", stmt.span)
            return
        resolved = Path(stmt.span.file).parent / target
        outside = _outside(resolved, self.folder, "spec")
        if outside is not None:
            self.error(outside, stmt.span, hint=INSIDE_HINT)
            return
        if not resolved.is_file():
            self.error(f"no spec {stmt.path!r} next to this one", stmt.span)
            return
        if resolved.resolve() in self.seen:
            self.error("a spec cannot preserve itself (directly or through another spec)", stmt.span)
            return
        if len(self.seen) > MAX_PRESERVES_DEPTH:
            self.error(f"`preserves` is nested more than {MAX_PRESERVES_DEPTH} specs deep", stmt.span)
            return
        try:
            spec = self.preserved.get(stmt.path) or check_file(resolved, self.seen, self.cache, self.folder)
        except SpecErrors as exc:
            self.diagnostics.extend(exc.errors)
            self.error(f"{stmt.path!r} has errors", stmt.span)
            return
        self.preserved[stmt.path] = spec
        base = roles.get("base")
        kind = T.model_kind(self.types.get(id(base.value), T.ANY)) if base else None
        candidates = [n for n, m in spec.roles.items() if kind is None or m.kind == kind]
        if stmt.role is not None:
            if stmt.role not in spec.roles:
                self.error(
                    f"{stmt.path!r} has no model role `{stmt.role}`",
                    stmt.span,
                    hint=f"its roles: {', '.join(spec.roles) or 'none'}",
                )
        elif len(candidates) != 1:
            self.error(
                f"say which role of {stmt.path!r} to rebind: `preserves {stmt.path!r} role NAME`",
                stmt.span,
                hint=f"its roles: {', '.join(spec.roles) or 'none'}",
            )

    def claim_roles(self, node: ast.Claim) -> set[str]:
        """The model roles a claim reads, directly or through measures, vectors, …"""
        return set(self.roles_read(node))

    def roles_read(self, node: ast.Node) -> frozenset[str]:
        """The roles ``node`` reads: declarations know theirs already (see ``declare``), so
        this is one walk, not one walk per declaration per claim."""
        roles: set[str] = set()
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in self.roles_of:
                roles |= self.roles_of[n.id]
        return frozenset(roles)

    def tolerance(self, stmt: ast.Tolerate | None) -> tuple[float, float]:
        if stmt is None:
            return 0.0, DEFAULT_CONFIDENCE
        rate = self.fraction(stmt.rate, "the tolerated violation rate", closed=True)
        confidence = DEFAULT_CONFIDENCE
        if stmt.confidence is not None:
            confidence = self.fraction(stmt.confidence, "the confidence", closed=False)
        return rate, confidence

    def fraction(self, node: ast.Expr, what: str, closed: bool) -> float:
        value = literal(node)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.error(f"{what} must be a number literal such as 5%", node.span)
            return 0.0
        if isinstance(node, ast.Number) and not node.percent and value > 1:
            self.error(f"{what} is a fraction in [0, 1]", node.span, hint=f"did you mean {node.value}%?")
            return 0.0
        ok = 0 <= value <= 1 if closed else 0 < value < 1
        if not ok:
            interval = "[0%, 100%]" if closed else "(0%, 100%), e.g. 95%"
            self.error(f"{what} must be in {interval}", node.span)
            return 0.0
        return float(value)

    def unit_mistakes(self, cond: ast.Expr) -> None:
        """``rate(...) >= 90`` — a fraction compared with a number meant as a percent."""
        for n in ast.walk(cond):
            if not isinstance(n, ast.Compare):
                continue
            if not any(self.is_fraction_valued(o) for o in n.operands):
                continue
            for o in n.operands:
                if isinstance(o, ast.Number) and not o.percent and o.value > 1:
                    self.error(
                        f"a rate or probability is at most 1, so {o.value} is out of reach",
                        o.span,
                        hint=f"did you mean {o.value}%?",
                    )
                elif isinstance(o, ast.Number) and o.percent and o.value > 100:
                    self.error("a rate or probability is at most 100%", o.span)

    def is_fraction_valued(self, node: ast.Expr, depth: int = 0) -> bool:
        """Whether ``node`` is a rate, probability or cosine, directly or as the body of the
        measure it calls."""
        if not isinstance(node, ast.Call):
            return False
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.name if isinstance(f, ast.Attribute) else None
        symbol = self.symbols.get(name) if isinstance(f, ast.Name) and name is not None else None
        if symbol is not None and isinstance(symbol.node, ast.MeasureDecl) and depth < 20:
            return self.is_fraction_valued(symbol.node.body, depth + 1)
        return name in ("rate", "prob", "cosine")

    def absolute_amount(self, amount: ast.Expr, measured: ast.Expr) -> None:
        """``invariant lm.logprob(…) under T within 5%`` reads as a difference of 0.05 nats,
        not a relative change: a percent is an error unless the measurement is a fraction."""
        if isinstance(amount, ast.Number) and amount.percent and not self.is_fraction_valued(measured):
            self.error(
                f"{amount.value:g}% here is an absolute difference of {amount.fraction:g} in the measurement's "
                "own units, not a relative change",
                amount.span,
                hint=f"write the difference as a number (e.g. `{amount.fraction:g}`); percents are for rates "
                "and probabilities",
            )

    # checks shared by statements

    def expect_bool(self, t: T.Type, node: ast.Node, what: str) -> None:
        if t not in (T.BOOL, T.ANY):
            hint = None
            if t == T.NUMBER:
                hint = "compare it: e.g. `>= 0.5`"
            self.error(f"{what} must be a condition, not {T.describe(t)}", node.span, hint)

    def expect_number(self, t: T.Type, node: ast.Node, what: str) -> None:
        if t not in (T.NUMBER, T.ANY):
            self.error(f"{what} must be a number, not {T.describe(t)}", node.span)

    def duplicates(self, claims: list[ast.Claim]) -> None:
        seen: dict[str, ast.Claim] = {}
        for c in claims:
            if c.name in seen:
                where = _where(seen[c.name].name_span, c.name_span)
                self.error(f"claim `{c.name}` is already defined at {where}", c.name_span, hint="claim names are unique in a spec")
            else:
                seen[c.name] = c

    def unused(self) -> None:
        if not self.root.module.claims:
            return  # a file of declarations only is a library that other specs import
        for item in self.root.module.items:
            if isinstance(item, (ast.ModelDecl, ast.Decl, ast.MeasureDecl)) and item.name not in self.used:
                what = "model role" if isinstance(item, ast.ModelDecl) else getattr(item, "keyword", "measure")
                self.warn(f"{what} `{item.name}` is declared but never used", item.name_span)

    # ── expressions ──────────────────────────────────────────────────────────────────────

    def infer(self, node: ast.Expr, scope: _Scope) -> T.Type:
        handler = self._HANDLERS.get(type(node))
        t = handler(self, node, scope) if handler else self.error("not an expression", node.span)
        self.types[id(node)] = t
        return t

    def e_number(self, node: ast.Number, scope: _Scope) -> T.Type:
        return T.NUMBER

    def e_string(self, node: ast.String, scope: _Scope) -> T.Type:
        return T.STR

    def e_bool(self, node: ast.Bool, scope: _Scope) -> T.Type:
        return T.BOOL

    def e_name(self, node: ast.Name, scope: _Scope) -> T.Type:
        binding = scope.find(node.id)
        if binding is not None:
            if binding.symbol is not None:
                self.used.add(node.id)
            return binding.type
        fn = lookup(node.id)
        if fn is not None and not any(p.required for p in fn.params):
            self.types[id(node)] = self.result_type(fn, {}, {})
            return self.types[id(node)]
        if fn is not None:
            return self.error(f"`{node.id}` is a built-in function: call it", node.span, hint=f"`{fn.signature}`")
        return self.unknown_name(node, scope)

    def unknown_name(self, node: ast.Name, scope: _Scope) -> T.Type:
        close = None
        if self.suggestion_budget > 0:
            close = self.suggest(node.id, list(scope.visible()) + list(functions()))
        hint = f"did you mean `{close}`?" if close else None
        if node.id.lower() in ("true", "false"):
            hint = f"did you mean `{node.id.lower()}`?"
        if node.id in self.declared and node.id not in self.symbols:
            hint = f"`{node.id}` is declared further down; declare it before use"
        return self.error(f"unknown name `{node.id}`", node.span, hint)

    def e_list(self, node: ast.ListLit, scope: _Scope) -> T.Type:
        items = [self.infer(i, scope) for i in node.items]
        kinds = set(items) - {T.ANY}
        if len(kinds) == 1:
            return T.set_of(kinds.pop())
        if kinds <= {T.STR, T.TEXT} and kinds:
            return T.set_of(T.TEXT)
        if len(kinds) > 1 and all(k.name == "record" for k in kinds):
            return T.set_of(T.record(None))
        return T.set_of(T.ANY)

    def e_record(self, node: ast.RecordLit, scope: _Scope) -> T.Type:
        for f in node.fields:
            self.infer(f.value, scope)
        return T.record(frozenset(f.name for f in node.fields))

    def e_comprehension(self, node: ast.Comprehension, scope: _Scope) -> T.Type:
        source = self.infer(node.iterable, scope)
        elem = self.element_of(source, node.iterable)
        inner = _Scope(scope)
        inner.names[node.var] = _Binding(elem)
        if node.condition is not None:
            self.expect_bool(self.infer(node.condition, inner), node.condition, "a comprehension's `if`")
        element = self.infer(node.element, inner)
        return T.set_of(element) if node.bracketed else T.Type("agg", (element,))

    def element_of(self, t: T.Type, node: ast.Node) -> T.Type:
        if t.name in ("set", "series"):
            return t.elem
        if t == T.VECTOR:
            return T.NUMBER
        if t == T.ANY:
            return T.ANY
        return self.error(f"cannot iterate over {T.describe(t)}", node.span)

    def e_attribute(self, node: ast.Attribute, scope: _Scope) -> T.Type:
        obj = self.infer(node.obj, scope)
        kind = T.model_kind(obj)
        if kind is not None:
            if node.name in T.SITE_POINTS:
                if kind == "network":
                    return self.error("sites belong to transformer models, not networks", node.span)
                return T.SITE_FAMILY
            if node.name in measurements(kind):
                return self.error(
                    f"`{node.name}` is a measurement: call it",
                    node.span,
                    hint=f"`{measurements(kind)[node.name].signature}`",
                )
            return self.unknown_member(node, kind)
        if obj.name == "record":
            if obj.fields is not None and node.name not in obj.fields:
                close = self.suggest(node.name, sorted(obj.fields))
                hint = f"did you mean `{close}`?" if close else f"its fields: {', '.join(sorted(obj.fields))}"
                return self.error(f"the input has no field `{node.name}`", node.span, hint)
            return T.STR if node.name == "text" else T.ANY
        if obj in (T.TEXT, T.ANY):
            return T.STR if node.name == "text" else T.ANY
        if obj == T.STR:
            return self.error(f"a string has no field `{node.name}`", node.span)
        return self.error(f"{T.describe(obj)} has no field `{node.name}`", node.span)

    def unknown_member(self, node: ast.Attribute, kind: str) -> T.Type:
        available = sorted(measurements(kind)) + (list(T.SITE_POINTS) if kind != "network" else [])
        owners = receivers_of(node.name)
        if owners:
            return self.error(
                f"`{node.name}` is a measurement of {' and '.join(owners)} models, and this is {T.with_article(kind)}",
                node.span,
                hint=f"{T.with_article(kind)} offers: {', '.join(available)}",
            )
        close = difflib.get_close_matches(node.name, available, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"{T.with_article(kind)} offers: {', '.join(available)}"
        return self.error(f"{T.with_article(kind)} has no measurement or site `{node.name}`", node.span, hint)

    def e_index(self, node: ast.Index, scope: _Scope) -> T.Type:
        obj = self.infer(node.obj, scope)
        index = self.infer(node.index, scope)
        self.expect_number(index, node.index, "an index")
        value = literal(node.index)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            self.error("an index is a whole number", node.index.span)
        if obj == T.SITE_FAMILY:
            return T.SITE
        if obj in (T.VECTOR, T.ANY):
            return T.NUMBER if obj == T.VECTOR else T.ANY
        if obj.name in ("set", "series"):
            return obj.elem
        return self.error(f"cannot index {T.describe(obj)}", node.span)

    def e_unary(self, node: ast.Unary, scope: _Scope) -> T.Type:
        t = self.infer(node.operand, scope)
        if node.op == "not":
            self.expect_bool(t, node.operand, "`not`")
            return T.BOOL
        if t not in (T.NUMBER, T.VECTOR, T.ANY) and t.name != "series":
            return self.error(f"cannot negate {T.describe(t)}", node.span)
        return t

    def e_binary(self, node: ast.Binary, scope: _Scope) -> T.Type:
        left, right = self.infer(node.left, scope), self.infer(node.right, scope)
        if node.op in ("and", "or"):
            self.expect_bool(left, node.left, f"`{node.op}`")
            self.expect_bool(right, node.right, f"`{node.op}`")
            return T.BOOL
        if node.op == "then":
            for side, t in ((node.left, left), (node.right, right)):
                if t not in (T.TRANSFORM, T.ANY):
                    self.error(f"`then` composes transformations, not {T.describe(t)}", side.span)
            return T.TRANSFORM
        return self.arithmetic(node, left, right)

    def arithmetic(self, node: ast.Binary, left: T.Type, right: T.Type) -> T.Type:
        if T.ANY in (left, right):
            return right if left == T.ANY and right != T.NUMBER else left if right == T.ANY else T.ANY
        if left == right == T.NUMBER:
            return T.NUMBER
        numeric = (T.NUMBER, T.VECTOR)
        if left in numeric and right in numeric:
            return T.VECTOR
        if "series" in (left.name, right.name) and {left.name, right.name} <= {"series", "number"}:
            return T.series_of(T.NUMBER)
        if node.op == "+" and {left, right} <= {T.STR, T.TEXT}:
            return T.STR
        if node.op == "+" and T.is_set(left) and T.is_set(right):
            return left if left == right else T.set_of(T.ANY)
        if T.is_set(left) and left.elem == T.NUMBER and right in numeric or (
            T.is_set(right) and right.elem == T.NUMBER and left in numeric
        ):
            return T.VECTOR
        return self.error(f"cannot apply `{node.op}` to {T.describe(left)} and {T.describe(right)}", node.span)

    def e_compare(self, node: ast.Compare, scope: _Scope) -> T.Type:
        types = [self.infer(o, scope) for o in node.operands]
        series = any(t.name == "series" for t in types)
        for op, (a, b), (na, nb) in zip(node.ops, zip(types, types[1:]), zip(node.operands, node.operands[1:])):
            if op in ("<", "<=", ">", ">="):
                for t, n in ((a, na), (b, nb)):
                    if t not in (T.NUMBER, T.ANY) and t.name != "series":
                        self.error(f"`{op}` compares numbers, not {T.describe(t)}", n.span)
            elif T.ANY not in (a, b) and not (T.assignable(a, b) or T.assignable(b, a)):
                mixed = {_scalar(a), _scalar(b)} == {"text", "number"}
                if mixed or not ({a.name, b.name} <= {"str", "text", "record", "number", "series"}):
                    always = "always true" if op == "!=" else "always false"
                    hint = "a label or a token is a text: compare it with a string, e.g. `== \"positive\"`" if mixed else None
                    self.error(f"`{op}` between {T.describe(a)} and {T.describe(b)} is {always}", node.span, hint)
        return T.series_of(T.BOOL) if series else T.BOOL

    def e_with(self, node: ast.With, scope: _Scope) -> T.Type:
        t = self.infer(node.expr, scope)
        i = self.infer(node.intervention, scope)
        if i not in (T.INTERVENTION, T.ANY):
            self.error(f"`with` takes an intervention, not {T.describe(i)}", node.intervention.span)
        return t

    def e_call(self, node: ast.Call, scope: _Scope) -> T.Type:
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = self.infer(func.obj, scope)
            kind = T.model_kind(owner)
            if kind is not None:
                method = measurements(kind).get(func.name)
                if method is None:
                    return self.unknown_member(func, kind)
                self.types[id(func)] = T.MEASURE
                return self.call_builtin(method, node, scope)
            if owner != T.ANY:
                return self.error(f"{T.describe(owner)} has no measurement `{func.name}`", func.span)
            for a in node.args:
                self.infer(a, scope)
            return T.ANY
        if not isinstance(func, ast.Name):
            t = self.infer(func, scope)
            if t in (T.TRANSFORM, T.ANY):  # typos(1)(x): a transformation applied at once
                return self.call_value(node, _Binding(t), scope)
            return self.error("only built-ins, measures, transformations and networks can be called", func.span)
        binding = scope.find(func.id)
        if binding is not None:
            if binding.symbol is not None:
                self.used.add(func.id)
            self.types[id(func)] = binding.type
            return self.call_value(node, binding, scope)
        fn = lookup(func.id)
        if fn is None:
            for a in node.args:
                self.infer(a, scope)
            return self.unknown_name(func, scope)
        return self.call_builtin(fn, node, scope)

    def call_value(self, node: ast.Call, binding: _Binding, scope: _Scope) -> T.Type:
        """Calling a declared thing: a measure, a transformation, a network."""
        t = binding.type
        args = [self.infer(a, scope) for a in node.args]
        for k in node.kwargs:
            self.error("only built-ins take keyword arguments", k.span)
        name = node.func.id if isinstance(node.func, ast.Name) else "?"
        if t == T.MEASURE and binding.symbol is not None:
            measure = binding.symbol.node
            assert isinstance(measure, ast.MeasureDecl)
            if len(args) != len(measure.params):
                self.error(
                    f"measure `{name}` takes {len(measure.params)} argument(s), got {len(args)}",
                    node.span,
                    hint=f"`{name}({', '.join(measure.params)})`",
                )
            return self.types.get(id(measure), T.ANY)
        if t == T.TRANSFORM:
            if len(args) != 1:
                return self.error(f"a transformation takes one input, got {len(args)}", node.span)
            return T.record(None) if args[0] != T.ANY else T.ANY
        kind = T.model_kind(t)
        if kind == "network":
            if len(args) != 1:
                return self.error(f"a network takes one input vector, got {len(args)}", node.span)
            if not T.assignable(args[0], T.VECTOR):
                self.error(f"a network's input is a vector, not {T.describe(args[0])}", node.args[0].span)
            return T.VECTOR
        if kind is not None:
            offers = ", ".join(sorted(measurements(kind)))
            return self.error(
                f"{T.with_article(kind)} model cannot be called; use one of its measurements",
                node.span,
                hint=f"e.g. `{name}.{sorted(measurements(kind))[0]}(...)`; {T.with_article(kind)} offers: {offers}",
            )
        if t == T.ANY:
            return T.ANY
        return self.error(f"`{name}` is {T.describe(t)}, which cannot be called", node.span)

    def call_builtin(self, fn: Builtin, node: ast.Call, scope: _Scope) -> T.Type:
        bound = self.bind(fn, node)
        if bound is None:
            for a in node.args:
                self.infer(a, scope)
            for k in node.kwargs:
                self.infer(k.value, scope)
            return T.ANY
        types: dict[str, T.Type] = {}
        nodes: dict[str, ast.Expr] = {}
        for param, arg in bound:
            t = self.infer(arg, scope)
            types[param.name], nodes[param.name] = t, arg
            self.check_argument(fn, param, arg, t, node, scope)
        if fn.validate is not None:
            fn.validate(nodes, types, self.report)
        return self.result_type(fn, nodes, types)

    def result_type(self, fn: Builtin, nodes: dict[str, ast.Expr], types: dict[str, T.Type]) -> T.Type:
        if fn.infer is not None:
            return fn.infer(nodes, types)
        if isinstance(fn.returns, str):
            return types.get(fn.returns[1:], T.ANY)
        return fn.returns

    def bind(self, fn: Builtin, node: ast.Call) -> list[tuple[Param, ast.Expr]] | None:
        """Match a call's arguments to a built-in's parameters; report what does not fit."""
        pairs, problems = bind_arguments(fn, node.args, node.kwargs)
        for problem in problems:
            self.error(problem.message, (problem.node or node).span, problem.hint)
        return None if problems else pairs

    def check_argument(
        self, fn: Builtin, param: Param, arg: ast.Expr, t: T.Type, call: ast.Call, scope: _Scope
    ) -> None:
        if aggregates(param, call.args):
            self.aggregate_argument(fn, param.type, arg, t, call, scope)
            return
        expected = param.type.elem if param.type.name == "agg" else param.type  # max(a, b): numbers
        if isinstance(arg, ast.Comprehension) and not arg.bracketed:
            self.error(f"a generator is only an aggregate's argument; `{fn.name}` is not an aggregate", arg.span)
            return
        if not T.assignable(t, expected):
            self.error(
                f"`{fn.name}`'s `{param.name}` must be {T.describe(expected)}, not {T.describe(t)}",
                arg.span,
                hint=f"`{fn.signature}`",
            )

    def aggregate_argument(
        self, fn: Builtin, expected: T.Type, arg: ast.Expr, t: T.Type, call: ast.Call, scope: _Scope
    ) -> None:
        """What an aggregate's one argument is — the one rule for every aggregate
        (``mean``, ``max``, ``rate``, …, docs/language.md#aggregates):

        1. a generator: its elements;
        2. a collection (vector, set, series): its elements — on each instance when it
           reads the claim's input (``max(abs(refined(x) - base(x)))``);
        3. one value per instance (a number or condition reading a ``for`` variable):
           the values over the claim's instances (``mean(s(x))``, ``max(gap(x))``).

        A value of unknown type that reads the claim's input takes reading 3, and the
        checker says so; so does ``min``/``max`` of one number per instance, which
        reads as the number itself in other languages.
        """
        if t.name == "agg":
            if not T.assignable(t.elem, expected.elem):
                self.error(f"`{fn.name}` aggregates {T.describe(expected.elem)}s, not {T.describe(t.elem)}", arg.span)
            return
        reads = self.deps(arg, scope)
        if t != T.ANY and T.assignable(t, expected):
            return  # a collection's elements
        if reads and T.assignable(t, expected.elem):
            self.over_instances(fn, arg, t, call, reads)
            return
        if isinstance(arg, ast.Comprehension) or t == T.ANY:
            return
        hint = None
        if self.claim is None or not self.claim_vars:
            hint = f"e.g. `{fn.name}(f(x) for x in S)`"
        self.error(
            f"`{fn.name}` aggregates a collection, not {T.describe(t)}",
            arg.span,
            hint=hint or "inside a `for` claim, an expression of the claim's input is aggregated over the instances",
        )

    def over_instances(self, fn: Builtin, arg: ast.Expr, t: T.Type, call: ast.Call, reads: frozenset[str]) -> None:
        """Reading 3 of :meth:`aggregate_argument`: ``call`` aggregates over the instances."""
        points = sorted(reads & self.domain_vars)
        if points:
            self.error(
                f"`{fn.name}` would aggregate over the points of `forall {points[0]} in …`, "
                "and a domain has no instances to aggregate",
                call.span,
                hint="state the condition for each point, or aggregate over a finite set with `for`",
            )
            return
        self.implicit.add(id(call))
        text = _show(arg)
        if t == T.ANY:
            self.warn(
                f"the type of `{text}` is not known here: `{fn.name}` reads it as one value per "
                f"instance and aggregates it over the claim's instances",
                arg.span,
                hint=f"for the elements of a collection each instance holds, write `{fn.name}(v for v in {text})`",
            )
        elif fn.name in ("min", "max"):
            word = "largest" if fn.name == "max" else "smallest"
            self.warn(
                f"`{fn.name}` of one number per instance is the {word} over the claim's instances "
                "(an aggregate, as `mean` is)",
                call.span,
                hint="compare the number itself for a condition on each instance; "
                f"`{fn.name}(a, b)` is the {'larger' if fn.name == 'max' else 'smaller'} of two numbers",
            )

    _HANDLERS: dict[type, Callable[..., T.Type]] = {
        ast.Number: e_number,
        ast.String: e_string,
        ast.Bool: e_bool,
        ast.Name: e_name,
        ast.ListLit: e_list,
        ast.RecordLit: e_record,
        ast.Comprehension: e_comprehension,
        ast.Attribute: e_attribute,
        ast.Index: e_index,
        ast.Unary: e_unary,
        ast.Binary: e_binary,
        ast.Compare: e_compare,
        ast.With: e_with,
        ast.Call: e_call,
    }


def _keyword(stmt: ast.Node) -> str:
    return {
        ast.Description: "description", ast.Tags: "tags", ast.Severity: "severity",
        ast.Tolerate: "tolerate", ast.Preserves: "preserves",
    }.get(type(stmt)) or (stmt.role if isinstance(stmt, ast.RoleBinding) else type(stmt).__name__.lower())


def _where(there: Span, here: Span) -> str:
    """Where ``there`` is, as seen from ``here``: a line in the same file, else file:line:col."""
    return f"line {there.line}" if there.file == here.file else str(there)


def _is_fingerprint(text: str) -> bool:
    import re

    return re.fullmatch(r"sha256:[0-9a-f]{64}", text) is not None


def iter_specs(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Every .msl file named, or found under a named folder, in a stable order, each
    with the folder it was found in: the one its reads must stay inside (the folder
    named, or a named file's own folder)."""
    for path in paths:
        if path.is_dir():
            yield from ((p, path) for p in sorted(p for p in path.rglob("*.msl") if p.is_file() or p.is_symlink()))
        else:
            yield path, path.parent


def check_paths(paths: list[Path]) -> tuple[list[CheckedSpec], list[MslError]]:
    """Check every spec under ``paths``; errors of one file do not stop the others."""
    specs: list[CheckedSpec] = []
    problems: list[MslError] = []
    cache: ParseCache = {}
    for root in paths:
        where = Span.point(display_path(root))
        if not root.exists():
            problems.append(SpecError(f"no such file or folder: {root}", where))
            continue
        found = list(iter_specs([root]))
        if not found:  # a CI job pointed at the wrong folder would otherwise pass silently
            problems.append(SpecError(f"no .msl files under {root}", where, severity=Severity.WARNING))
        for path, folder in found:
            try:
                spec = check_file(path, cache=cache, folder=folder)
            except SpecErrors as exc:
                problems.extend(exc.errors)
                continue
            specs.append(spec)
            problems.extend(spec.warnings)
    return specs, _unique(problems)


def _unique(problems: list[MslError]) -> list[MslError]:
    """Each diagnostic once: a file imported by several specs is reported with each."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for p in problems:
        key = (p.span, p.message, p.severity)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def is_sample(node: ast.Expr, spec: CheckedSpec, depth: int = 0) -> bool:
    """Whether a quantifier ranges over a sample (directly or through declarations):
    such a claim is checked statistically."""
    if depth > 50:
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sample":
        return True
    if isinstance(node, ast.Name) and node.id in spec.symbols:
        decl = spec.symbols[node.id].node
        return isinstance(decl, ast.Decl) and is_sample(decl.value, spec, depth + 1)
    return False


def any_errors(problems: list[MslError]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)



def _scalar(t: T.Type) -> str:
    """``number`` or ``text`` for values (and series of values) of those kinds, else the
    type's name: a text and a number are never equal, whatever the model outputs."""
    if t.name == "series":
        t = t.elem
    if t == T.NUMBER:
        return "number"
    if t in (T.STR, T.TEXT) or t.name == "record":
        return "text"
    return t.name
