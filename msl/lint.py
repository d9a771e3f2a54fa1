"""Lint: find expectations that can never hold together, or can never fail (z3).

Two claims over overlapping sets whose expectations no input can satisfy at once — say
``expect s(x) >= 1`` and ``expect s(x) <= 0`` over the same ``x`` — cannot both pass,
whatever the model does, and neither can one expectation that no measurement satisfies;
an expectation that no measurement can falsify, or a tolerance of 100%, would pass
without evidence. All are spec errors, found before any model runs.

Expectations are read as formulas over *atoms*: each measurement (``lm.logprob(_, " a")``,
with the claim's variable written ``_``) is an unknown real, string or condition, with the
range its built-in guarantees (a rate is in [0, 1]). Lets and measures are inlined, so
``score(x)`` and its definition are the same atom. Linear arithmetic, comparisons,
``and``/``or``/``not``, ``abs``, ``min`` and ``max`` are exact; anything else is an atom.
A claim's ``base`` and ``refined`` are inlined like lets, since they name other models in
other claims. The solver gets a time budget per spec; when a hostile spec spends it, lint
says so in a warning instead of running for hours.
"""

from __future__ import annotations

import difflib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import z3

from msl import ast
from msl import types as T
from msl.builtins import Bounds, lookup, receivers_of
from msl.builtins.data import literal
from msl.engines.statistical import ESTIMATES, witness_side
from msl.errors import MslError, Severity, SpecError, UsageError
from msl.fmt import expr as show
from msl.ir import CheckedClaim, CheckedSpec
from msl.models.base import UnknownModelError
from msl.models.facts import ModelFacts, model_facts, spec_reference
from msl.models.registry import REGISTRY
from msl.source import Span

#: Work, not seconds, bounds lint's questions, so that a spec gets the same warnings on every
#: machine: each satisfiability question gets this many z3 resource units (an unknown answer
#: reports nothing) ...
QUESTION_RLIMIT = 2_000_000
#: ... and one spec at most this many questions (hostile specs stay cheap).
MAX_QUESTIONS = 20_000
#: A wall-clock safety net far beyond what the budgets take; its warning says so.
SAFETY_S = 60.0

#: Aggregates whose value lies between the smallest and the largest value aggregated, so
#: in any range those values keep: ``mean(kl(…))`` is in [0, ∞) as every ``kl`` is.
_WITHIN_VALUES = ("mean", "median", "quantile", "min", "max")


class _Untranslatable(Exception):
    """Raised inside translation: this expectation is not a formula lint can read."""


@dataclass(frozen=True)
class _Fact:
    claim: CheckedClaim
    expect: ast.Expect
    group: str  # the set the claim ranges over ("" for closed expectations)
    formula: z3.BoolRef
    axioms: z3.BoolRef  # the ranges of the formula's atoms
    atoms: frozenset[str]  # the names of its atoms: facts that share none cannot clash


def lint_spec(spec: CheckedSpec) -> list[MslError]:
    """Contradictions and vacuous expectations in one checked spec."""
    problems: list[MslError] = []
    facts: list[_Fact] = []
    solver = _Solver()
    for claim in spec.claims:
        if (claim.engine == "statistical" and claim.tolerance == 0
                and any(e.shape == "instance" for e in claim.expects)):
            problems.append(SpecError(
                "a sample can show a violation rate below a tolerance, never that it is zero: "
                "without `tolerate` this claim can end violated or inconclusive, not holds",
                claim.claim.name_span,
                hint="add e.g. `tolerate 2%`, or check the whole set",
                severity=Severity.WARNING,
            ))
        if claim.engine == "statistical":
            problems.extend(_sampled_extremes(spec, claim))
        problems.extend(_empty_domains(claim))
        if claim.tolerance >= 1:
            tolerate = claim.claim.statements(ast.Tolerate)[0]
            problems.append(SpecError(
                "tolerating 100% of violations makes this claim pass whatever the model does",
                tolerate.span,
                hint="a tolerance is the share of inputs allowed to fail, e.g. `tolerate 5%`",
            ))
        for fact in _facts(spec, claim):
            if solver.unsat(z3.And(fact.axioms, fact.formula)):
                problems.append(SpecError(
                    "this expectation can never hold, whatever the model does",
                    fact.expect.span,
                    hint=f"no value of the measurements satisfies `{show(_cond(fact.expect))}`",
                ))
                continue  # it would clash with every other expectation: say it once
            facts.append(fact)
            if solver.unsat(z3.And(fact.axioms, z3.Not(fact.formula))):
                problems.append(SpecError(
                    "this expectation holds whatever the model does, so it checks nothing",
                    fact.expect.span,
                    hint="compare the measurement with a threshold that a model could miss",
                ))
    problems.extend(_contradictions(facts, solver))
    if solver.exhausted:
        spent = f"{MAX_QUESTIONS} questions" if solver.questions >= MAX_QUESTIONS else f"{SAFETY_S:g} s (safety net)"
        problems.append(SpecError(
            f"lint stopped searching for contradictions after {spent}; "
            "the expectations after this one were not all compared",
            solver.exhausted.expect.span,
            hint="split the spec into smaller files to lint them completely",
            severity=Severity.WARNING,
        ))
    return problems


def _empty_domains(claim: CheckedClaim) -> Iterator[MslError]:
    """A ``forall x in box(...) where C`` whose literal box has no point meeting a linear ``C``:
    the claim can only end inconclusive ("the set is empty"), so say so before it runs."""
    for q in claim.quantifiers:
        if not (isinstance(q, ast.Forall) and q.where is not None and isinstance(q.domain, ast.Call)
                and isinstance(q.domain.func, ast.Name) and q.domain.func.id == "box"):
            continue
        bounds = {k.name: literal(k.value) for k in q.domain.kwargs}
        lower, upper = bounds.get("lower"), bounds.get("upper")
        if not (isinstance(lower, list) and isinstance(upper, list) and len(lower) == len(upper)):
            continue
        xs = [z3.Real(f"x{i}") for i in range(len(lower))]
        try:
            where = _linear_condition(q.where, q.var, xs)
        except _NotLinear:
            continue
        box = z3.And(*[z3.And(lo <= x, x <= hi) for x, lo, hi in zip(xs, lower, upper, strict=True)])
        solver = z3.Solver()
        solver.set("rlimit", 5_000_000)  # work, not seconds: the same warning on every machine
        solver.add(box, where)
        if solver.check() == z3.unsat:
            yield SpecError(
                "no point of this box meets the `where` condition: the domain is empty, so the claim can only be"
                " inconclusive",
                q.where.span,
                hint="widen the box or loosen the condition",
                severity=Severity.WARNING,
            )


class _NotLinear(Exception):
    """A `where` condition lint does not read (it is then checked when the claim runs)."""


def _linear_condition(node: ast.Node, var: str, xs: list[z3.ArithRef]) -> z3.BoolRef:
    """A `where` condition over ``var[i]`` as a z3 formula; :class:`_NotLinear` otherwise."""
    match node:
        case ast.Binary(op="and" | "or"):
            parts = (_linear_condition(node.left, var, xs), _linear_condition(node.right, var, xs))
            return z3.And(*parts) if node.op == "and" else z3.Or(*parts)
        case ast.Unary(op="not"):
            return z3.Not(_linear_condition(node.operand, var, xs))
        case ast.Compare():
            terms = [_linear_term(o, var, xs) for o in node.operands]
            ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
                   ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
            if any(op not in ops for op in node.ops):
                raise _NotLinear
            return z3.And(*[ops[op](a, b) for op, a, b in zip(node.ops, terms, terms[1:], strict=False)])
    raise _NotLinear


def _linear_term(node: ast.Node, var: str, xs: list[z3.ArithRef]) -> z3.ArithRef:
    value = literal(node)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return z3.RealVal(value)
    match node:
        case ast.Index(obj=ast.Name(id=name), index=ast.Number(value=int(i))) if name == var and 0 <= i < len(xs):
            return xs[i]
        case ast.Unary(op="-"):
            return -_linear_term(node.operand, var, xs)
        case ast.Binary(op="+" | "-"):
            a, b = _linear_term(node.left, var, xs), _linear_term(node.right, var, xs)
            return a + b if node.op == "+" else a - b
        case ast.Binary(op="*"):
            a, b = _linear_term(node.left, var, xs), _linear_term(node.right, var, xs)
            if not (z3.is_rational_value(a) or z3.is_rational_value(b)):
                raise _NotLinear
            return a * b
    raise _NotLinear


def _sampled_extremes(spec: CheckedSpec, claim: CheckedClaim) -> Iterator[MslError]:
    """Aggregates over a sample that a sample cannot estimate (see the statistical engine):
    say which verdicts the expectation can still reach."""
    for ce in claim.expects:
        if ce.shape != "aggregate":
            continue
        cond = ce.node.condition
        used = {n.func.id for n in ast.walk(cond) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and id(n) in spec.implicit_aggregates} - ESTIMATES
        if not used:
            continue
        named = ", ".join(f"`{n}`" for n in sorted(used))
        side = witness_side(cond, spec.implicit_aggregates)
        if side is None:
            message = f"{named} over a sample is not an estimate of the whole set's: this expectation ends inconclusive"
        elif side:
            continue  # a sampled witness can show it holds; only its failure is undecided
        else:
            message = (f"a sample bounds the whole set's {named} from one side only: this expectation "
                       "can end violated or inconclusive, not holds")
        yield SpecError(message, ce.node.span, hint="check the whole set, or state a rate or quantile with a tolerance",
                        severity=Severity.WARNING)


def _contradictions(facts: list[_Fact], solver: _Solver) -> Iterator[MslError]:
    by_group: dict[str, list[_Fact]] = defaultdict(list)
    for f in facts:
        by_group[f.group].append(f)
    for group in by_group.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                same = a.claim is b.claim
                budget = a.claim.tolerance + (0 if same else b.claim.tolerance)
                if budget >= 1 or not (a.atoms & b.atoms):
                    continue  # facts over different atoms are each satisfiable, so jointly too
                if solver.out_of_time(b):
                    return
                if not solver.unsat(z3.And(a.formula, b.formula, a.axioms, b.axioms)):
                    continue
                if same:
                    message = "this expectation contradicts another of the same claim"
                else:
                    where = a.expect.span
                    at = f"line {where.line}" if where.file == b.expect.span.file else str(where)
                    message = f"this expectation contradicts claim `{a.claim.name}` ({at})"
                yield SpecError(
                    message,
                    b.expect.span,
                    hint=f"no input satisfies both `{show(_cond(a.expect))}` and `{show(_cond(b.expect))}`",
                )


def _cond(e: ast.Expect) -> ast.Expr:
    assert not isinstance(e.condition, ast.Invariant | ast.Directional | ast.Agree)
    return e.condition


class _Solver:
    """One z3 solver for the whole spec (push/pop is several times cheaper than a new
    solver per question), with a budget of questions: a spec with thousands of expectations
    must not keep lint busy for hours, since a pair of expectations costs one question."""

    def __init__(self) -> None:
        self.solver = z3.Solver()
        self.solver.set("rlimit", QUESTION_RLIMIT)  # per check: z3 counts each one afresh
        self.questions = 0
        self.deadline = time.monotonic() + SAFETY_S
        #: the first fact that was not fully compared when the budget ran out
        self.exhausted: _Fact | None = None

    def out_of_time(self, fact: _Fact) -> bool:
        if self.exhausted is None and (self.questions >= MAX_QUESTIONS or time.monotonic() >= self.deadline):
            self.exhausted = fact
        return self.exhausted is not None

    def unsat(self, formula: z3.BoolRef) -> bool:
        """Whether ``formula`` has no model; an unknown answer (budget spent) counts as no."""
        if self.questions >= MAX_QUESTIONS or time.monotonic() >= self.deadline:
            return False
        self.questions += 1
        self.solver.push()
        try:
            self.solver.add(formula)
            return self.solver.check() == z3.unsat
        finally:
            self.solver.pop()


def _facts(spec: CheckedSpec, claim: CheckedClaim) -> Iterator[_Fact]:
    fors = [q for q in claim.quantifiers if isinstance(q, ast.For)]
    if len(claim.quantifiers) > 1 or claim.quantifiers and not fors:
        return
    shapes = {id(e.node): e.shape for e in claim.expects}
    translator = _Translator(spec)
    lets: dict[str, ast.Node | None] = {}
    if fors:
        lets[fors[0].var] = translator.typed(ast.Name("_"), fors[0])
    for stmt in claim.claim.body:
        translator.size = 0
        try:
            if isinstance(stmt, ast.Let | ast.RoleBinding):
                # a claim-local name is its value; one lint cannot read poisons what reads it
                name = stmt.name if isinstance(stmt, ast.Let) else stmt.role
                lets[name] = None
                lets[name] = translator.subst(stmt.value, lets, 0)
            if not isinstance(stmt, ast.Expect) or isinstance(
                stmt.condition, ast.Invariant | ast.Directional | ast.Agree
            ):
                continue
            translator.axioms, translator.atoms = [], set()
            formula = translator.bool(translator.subst(stmt.condition, lets, 0))
        except (_Untranslatable, z3.Z3Exception, RecursionError):
            continue
        group = ""
        if fors:
            # per instance, a claim over a sample of S speaks about elements of S; an
            # aggregate speaks about its very set (the mean of a sample is not S's mean)
            exact = shapes.get(id(stmt)) == "aggregate"
            group = show(fors[0].iterable) if exact else _set_key(fors[0].iterable)
        yield _Fact(claim, stmt, group, formula, z3.And(*translator.axioms), frozenset(translator.atoms))


def _set_key(iterable: ast.Expr) -> str:
    """What a claim ranges over, with samples reduced to the set they are drawn from."""
    while isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "sample":
        if not iterable.args:
            break
        iterable = iterable.args[0]
    return show(iterable)


#: Measures inlined inside measures deeper than this are left as atoms.
_MAX_INLINE = 20
#: A statement whose inlined form grows past this many nodes is not linted.
_MAX_NODES = 5000


class _Translator:
    """An expectation as a z3 formula over atoms (see the module docstring)."""

    def __init__(self, spec: CheckedSpec) -> None:
        self.spec = spec
        self.types: dict[int, T.Type] = {}
        self.keep: list[ast.Node] = []  # keeps substituted nodes alive: their ids key `types`
        self.axioms: list[z3.BoolRef] = []
        self.atoms: set[str] = set()
        self.size = 0  # nodes built for the current statement

    def subst(self, node: ast.Node, env: dict[str, ast.Node | None], depth: int) -> ast.Node:
        """``node`` with lets, the claim variable (``_``) and measure bodies substituted.

        The values in ``env`` are substituted already.
        """
        match node:
            case ast.Name() if node.id in env:
                value = env[node.id]
                if value is None:
                    raise _Untranslatable
                return value
            case ast.Call(func=ast.Name(id=name)) if name not in env and self.measure(name) and depth < _MAX_INLINE:
                measure = self.measure(name)
                assert measure is not None
                if len(node.args) != len(measure.params) or node.kwargs:
                    raise _Untranslatable
                inner = {p: self.subst(a, env, depth) for p, a in zip(measure.params, node.args, strict=True)}
                return self.typed(self.subst(measure.body, inner, depth + 1), node)  # type: ignore[arg-type]
            case ast.Comprehension():
                inner = {k: v for k, v in env.items() if k != node.var}
                changes = {
                    "iterable": self.subst(node.iterable, env, depth),
                    "element": self.subst(node.element, inner, depth),
                }
                if node.condition is not None:
                    changes["condition"] = self.subst(node.condition, inner, depth)
                return self.typed(replace(node, **changes), node)
        changes = {}
        for f in fields(node):
            value = getattr(node, f.name)
            if isinstance(value, ast.Node) and f.compare:
                changes[f.name] = self.subst(value, env, depth)
            elif isinstance(value, tuple) and value and isinstance(value[0], ast.Node):
                changes[f.name] = tuple(self.subst(v, env, depth) for v in value)
        return self.typed(replace(node, **changes) if changes else node, node)

    def typed(self, new: ast.Node, old: ast.Node) -> ast.Node:
        self.size += 1
        if self.size > _MAX_NODES:  # measures that call measures twice grow exponentially
            raise _Untranslatable
        if id(new) not in self.types:
            self.types[id(new)] = self.spec.types.get(id(old), self.types.get(id(old), T.ANY))
        self.keep.append(new)
        return new

    def measure(self, name: str) -> ast.MeasureDecl | None:
        symbol = self.spec.symbols.get(name)
        return symbol.node if symbol is not None and isinstance(symbol.node, ast.MeasureDecl) else None

    def type_of(self, node: ast.Node) -> T.Type:
        return self.types.get(id(node), T.ANY)

    def bool(self, node: ast.Node) -> z3.BoolRef:
        match node:
            case ast.Bool():
                return z3.BoolVal(node.value)
            case ast.Unary(op="not"):
                return z3.Not(self.bool(node.operand))
            case ast.Binary(op="and"):
                return z3.And(self.bool(node.left), self.bool(node.right))
            case ast.Binary(op="or"):
                return z3.Or(self.bool(node.left), self.bool(node.right))
            case ast.Compare():
                return self.compare(node)
        if self.type_of(node) != T.BOOL:
            raise _Untranslatable
        return self.atom(node)  # type: ignore[return-value]

    def compare(self, node: ast.Compare) -> z3.BoolRef:
        terms = [self.term(o) for o in node.operands]
        parts = []
        for op, a, b in zip(node.ops, terms, terms[1:], strict=False):
            if op in ("==", "!="):
                if a.sort() != b.sort():
                    raise _Untranslatable
                parts.append(a == b if op == "==" else a != b)
            else:
                if not (z3.is_arith(a) and z3.is_arith(b)):
                    raise _Untranslatable
                parts.append({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
        return z3.And(*parts) if len(parts) > 1 else parts[0]

    def term(self, node: ast.Node) -> z3.ExprRef:
        match node:
            case ast.Number():
                return z3.RealVal(str(node.fraction if node.percent else node.value))
            case ast.String():
                return z3.StringVal(node.value)
            case ast.Bool():
                return z3.BoolVal(node.value)
            case ast.Unary(op="-"):
                return -self.number(node.operand)
            case ast.Binary(op="+" | "-") if self.type_of(node) == T.NUMBER:
                a, b = self.number(node.left), self.number(node.right)
                return a + b if node.op == "+" else a - b
            case ast.Binary(op="*" | "/") if self.type_of(node) == T.NUMBER:
                return self.product(node)
            case ast.Call(func=ast.Name(id="abs"), args=(arg,)) if self.type_of(node) == T.NUMBER:
                v = self.number(arg)
                return z3.If(v >= 0, v, -v)
            case ast.Call(func=ast.Name(id="min" | "max" as name), args=(first, second)):
                a, b = self.number(first), self.number(second)
                return z3.If(a <= b if name == "min" else a >= b, a, b)
        return self.atom(node)

    def number(self, node: ast.Node) -> z3.ArithRef:
        t = self.term(node)
        if not z3.is_arith(t):
            raise _Untranslatable
        return t  # type: ignore[return-value]

    def product(self, node: ast.Binary) -> z3.ExprRef:
        # simplify folds `-3` (a negation of 3) into the constant -3, so that `-3 * x` is
        # read as linear rather than as an opaque atom
        a, b = z3.simplify(self.number(node.left)), z3.simplify(self.number(node.right))
        if node.op == "/":
            if not z3.is_rational_value(b) or b.as_fraction() == 0:
                return self.atom(node)
            return a / b
        if z3.is_rational_value(a) or z3.is_rational_value(b):
            return a * b
        return self.atom(node)

    def atom(self, node: ast.Node) -> z3.ExprRef:
        t = self.type_of(node)
        name = show(node)
        self.atoms.add(name)
        if t == T.NUMBER:
            v = z3.Real(name)
            self.bounds(node, v)
            return v
        if t in (T.STR, T.TEXT):
            return z3.String(name)
        if t == T.BOOL:
            return z3.Bool(name)
        raise _Untranslatable

    def bounds(self, node: ast.Node, v: z3.ArithRef) -> None:
        lo, hi = _range(node)
        if lo is not None:
            self.axioms.append(v >= lo)
        if hi is not None:
            self.axioms.append(v <= hi)


def _range(node: ast.Node) -> Bounds:
    """The range a call's value lies in, from the built-in registry's ``bounds``: a
    measurement offered by several model kinds (``prob``) keeps the range they share."""
    if not isinstance(node, ast.Call):
        return None, None
    f = node.func
    if isinstance(f, ast.Name):
        if f.id in _WITHIN_VALUES and len(node.args) == 1:
            return _range(node.args[0])
        fn = lookup(f.id)
        return fn.bounds if fn is not None else (None, None)
    if isinstance(f, ast.Attribute):
        ranges = [b.bounds for kind in receivers_of(f.name) if (b := lookup(f.name, kind)) is not None]
        if ranges:
            los, his = [r[0] for r in ranges], [r[1] for r in ranges]
            return (None if None in los else min(los)), (None if None in his else max(his))
    return None, None


# ── Models: what lint can know of a role's model without loading it ──────────────────────


def lint_models(spec: CheckedSpec, bindings: dict[str, str] | None = None) -> list[MslError]:
    """A role's model checked against the spec, from what its files say (no weights load).

    ``bindings`` are the command line's ``ROLE=REF`` (relative to the working directory);
    the others are the spec's own references (relative to the spec's folder). Reported:
    references that name nothing (with the closest names), a model that is not of the
    role's kind (a classifier's weights in a language-model class would get a randomly
    initialised head), labels the classifier does not have, and sites past the model's
    last block.
    """
    bindings = bindings or {}
    problems: list[MslError] = []
    facts: dict[str, ModelFacts] = {}
    for role, decl in spec.roles.items():
        bound = role in bindings
        if bound:
            ref = written = bindings[role]
            span = None
        elif decl.ref is not None:
            ref, written, span = spec_reference(decl.ref, spec.folder_of(decl)), decl.ref, decl.span
        else:
            continue  # an unbound role is reported when a claim needs it
        try:
            found = model_facts(ref)
        except UnknownModelError as exc:
            problems.append(_model_error(exc.message, span, exc.hint, role, written))
            continue
        if found.kinds is not None and decl.kind not in found.kinds:
            problems.append(_model_error(
                f"model role `{role}` is {T.with_article(decl.kind)}, "
                f"but '{written}' is {T.with_article(_main_kind(found.kinds))} "
                f"({found.what}): loaded as {T.with_article(decl.kind)} its missing weights would be random",
                span,
                f"'{written}' can be bound to {' or '.join(sorted(found.kinds))} roles; "
                f"bind `{role}` to {T.with_article(decl.kind)} model{_examples(decl.kind)}",
                role, written,
            ))
            continue
        facts[role] = found
    nodes = [n for parsed in spec.modules.values() for item in parsed.module.items for n in ast.walk(item)]
    for node in nodes:
        problems.extend(_label_problems(node, facts))
        problems.extend(_site_problems(node, facts))
    return problems


def _model_error(message: str, span: Span | None, hint: str | None, role: str, ref: str) -> MslError:
    """A problem of a spec's reference is located in the spec (``span``); one of a
    command-line binding is a usage error that quotes the binding."""
    if span is None:
        return UsageError(f"--model {role}={ref}: {message}", None, hint)
    return SpecError(message, span, hint)


def _main_kind(kinds: frozenset[str]) -> str:
    """The kind a model is, among those it can be read as (every transformer is an encoder)."""
    heads = sorted(kinds - {"encoder"})
    return heads[0] if heads else sorted(kinds)[0]


def _examples(kind: str) -> str:
    names = [name for name, entry in REGISTRY.items() if kind in entry.kinds]
    return f", e.g. {', '.join(names)}" if names else ""


def _role_call(node: ast.Node, method: str, facts: dict[str, ModelFacts]) -> str | None:
    """The role of ``role.method(...)``, when ``role`` is a model role with known facts."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.name == method:
        obj = node.func.obj
        if isinstance(obj, ast.Name) and obj.id in facts:
            return obj.id
    return None


def _label_problems(node: ast.Node, facts: dict[str, ModelFacts]) -> Iterator[MslError]:
    """String literals compared with ``clf.label(x)`` or passed to ``clf.prob(x, …)`` that
    are not labels of the classifier (a misspelt label is otherwise silently violated)."""
    pairs: list[tuple[str, ast.Expr]] = []
    if isinstance(node, ast.Compare):
        for op, a, b in zip(node.ops, node.operands, node.operands[1:], strict=False):
            if op in ("==", "!="):
                for call, other in ((a, b), (b, a)):
                    role = _role_call(call, "label", facts)
                    if role is not None and isinstance(other, ast.String):
                        pairs.append((role, other))
    role = _role_call(node, "prob", facts)
    if role is not None and isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[1], ast.String):
        pairs.append((role, node.args[1]))
    for role, text in pairs:
        labels = facts[role].labels
        if labels is None or text.value in labels:
            continue
        close = difflib.get_close_matches(text.value, labels, n=1)
        yield SpecError(
            f"classifier `{role}` has no label {json.dumps(text.value)}",
            text.span,
            hint=(f"did you mean {json.dumps(close[0])}? " if close else "")
            + f"its labels are {', '.join(map(json.dumps, labels))}",
        )


def _site_problems(node: ast.Node, facts: dict[str, ModelFacts]) -> Iterator[MslError]:
    """``lm.resid_post[40]`` on a model with fewer blocks."""
    if not (isinstance(node, ast.Index) and isinstance(node.obj, ast.Attribute) and node.obj.name in T.SITE_POINTS):
        return
    obj = node.obj.obj
    if not isinstance(obj, ast.Name) or obj.id not in facts or facts[obj.id].blocks is None:
        return
    blocks = facts[obj.id].blocks
    assert blocks is not None
    index = literal(node.index)
    if isinstance(index, int) and not isinstance(index, bool) and not -blocks <= index < blocks:
        yield SpecError(
            f"`{obj.id}` has {blocks} blocks, so {node.obj.name}[{index}] does not exist",
            node.index.span,
            hint=f"blocks are numbered 0 to {blocks - 1} (or -1 for the last)",
        )
