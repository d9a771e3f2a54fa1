"""Check: a parsed spec and its imports → a checked spec, or every error found.

The checking pass resolves names across imports (reporting cycles), gives every
expression a type, matches measurements to model kinds (``logprob`` on a classifier is
an error), checks built-ins' arities and argument types, percent against fraction,
tolerances and confidences, duplicate claims, the rules of each claim kind, and warns
about declarations nothing uses. It never runs a model and never executes anything
from the spec.

Declarations are checked in order — a name must be declared before it is used — so
checking is one linear pass, however long the spec.

Expressions are typed by :mod:`msl.typecheck`, files found and imports read by
:mod:`msl.load`; the result is the checked spec of :mod:`msl.ir`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from msl import ast
from msl import types as T
from msl.builtins import lookup
from msl.builtins.data import literal
from msl.errors import MslError, Severity, SpecErrors, quote_lines
from msl.ir import CheckedClaim, CheckedExpect, CheckedSpec, Shape, Symbol
from msl.load import ParseCache, _outside, load_modules
from msl.parse import Parsed
from msl.source import INSIDE_HINT, Span
from msl.typecheck import ExpressionTyper, _Binding, _Scope

SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_CONFIDENCE = 0.95


#: `preserves` may name a spec that preserves another … at most this deep.
MAX_PRESERVES_DEPTH = 8
#: One call of a measure may evaluate at most this many expressions, the measures it
#: calls expanded (a limit on work, checked before anything runs).
MAX_MEASURE_EXPANSION = 100_000
#: "Did you mean" compares a misspelt name with at most this many candidates per spec.
SUGGESTION_BUDGET = 200_000


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
    quote_lines(checker.diagnostics, [parsed.source for parsed in modules.values()])
    return spec, checker.diagnostics


def _order(e: MslError) -> tuple[str, int, int]:
    return (e.span.file, e.span.line, e.span.column) if e.span else ("", 0, 0)


class _Checker(ExpressionTyper):
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
            engine_of(node, quantifiers, self.symbols),
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
            self.expect_number(
                self.infer(amount, scope), amount, "the tolerance" if isinstance(cond, ast.Invariant) else "the change"
            )
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
                    self.error(
                        f"a refine claim names its `{role}` model", node.name_span, hint=f"add `{role} = <model>`"
                    )
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
                self.error(
                    "this claim has no expectation, so nothing could be checked",
                    node.name_span,
                    hint="add `expect ...`",
                )
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

    def duplicates(self, claims: list[ast.Claim]) -> None:
        seen: dict[str, ast.Claim] = {}
        for c in claims:
            if c.name in seen:
                where = _where(seen[c.name].name_span, c.name_span)
                self.error(
                    f"claim `{c.name}` is already defined at {where}",
                    c.name_span,
                    hint="claim names are unique in a spec",
                )
            else:
                seen[c.name] = c

    def unused(self) -> None:
        if not self.root.module.claims:
            return  # a file of declarations only is a library that other specs import
        for item in self.root.module.items:
            if isinstance(item, (ast.ModelDecl, ast.Decl, ast.MeasureDecl)) and item.name not in self.used:
                what = "model role" if isinstance(item, ast.ModelDecl) else getattr(item, "keyword", "measure")
                self.warn(f"{what} `{item.name}` is declared but never used", item.name_span)


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


def engine_of(node: ast.Claim, quantifiers: list[ast.For | ast.Forall], symbols: dict[str, Symbol]) -> str:
    """The engine that checks a claim: a ``preserves`` claim re-checks other specs, a
    ``forall`` is symbolic, one ``for`` over a sample is statistical (its verdict rests on
    a confidence bound), any other finite set is checked exhaustively."""
    if node.statements(ast.Preserves):
        return "preserves"
    if quantifiers and isinstance(quantifiers[0], ast.Forall):
        return "symbolic"
    if len(quantifiers) == 1 and isinstance(quantifiers[0], ast.For) and _is_sample(quantifiers[0].iterable, symbols):
        return "statistical"
    return "exhaustive"


def _is_sample(node: ast.Expr, symbols: dict[str, Symbol], depth: int = 0) -> bool:
    """Whether a quantifier ranges over a sample (directly or through declarations)."""
    if depth > 50:
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sample":
        return True
    if isinstance(node, ast.Name) and node.id in symbols:
        decl = symbols[node.id].node
        return isinstance(decl, ast.Decl) and _is_sample(decl.value, symbols, depth + 1)
    return False
