"""Expression typing: the type of every expression of a spec, and the mistakes found on the way.

:class:`ExpressionTyper` is the part of the checker (:mod:`msl.check`) that walks
expressions: names, literals, members, calls of built-ins and measures, aggregates,
arithmetic and comparisons. It records each expression's type by node id and reports
through the checker's diagnostics; declarations, scopes of claims and the rules of each
claim kind stay in :mod:`msl.check`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from msl import ast
from msl import types as T
from msl.builtins import Builtin, Param, aggregates, bind_arguments, functions, lookup, measurements, receivers_of
from msl.builtins.data import literal
from msl.errors import MslError, Severity, SpecError
from msl.fmt import expr as _show
from msl.ir import Symbol
from msl.source import Span


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



class ExpressionTyper:
    """Types expressions for the checker, which owns the state declared here."""

    diagnostics: list[MslError]
    suggestion_budget: int
    #: every name some module declares (a use before the declaration gets a hint)
    declared: set[str]
    types: dict[int, T.Type]
    implicit: set[int]
    symbols: dict[str, Symbol]
    used: set[str]
    claim: ast.Claim | None
    claim_vars: set[str]
    #: the claim's `forall` variables: points of a domain, never aggregated over
    domain_vars: set[str]

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
        for op, (a, b), (na, nb) in zip(
            node.ops,
            zip(types, types[1:], strict=False),
            zip(node.operands, node.operands[1:], strict=False),
            strict=True,
        ):
            if op in ("<", "<=", ">", ">="):
                for t, n in ((a, na), (b, nb)):
                    if t not in (T.NUMBER, T.ANY) and t.name != "series":
                        self.error(f"`{op}` compares numbers, not {T.describe(t)}", n.span)
            elif T.ANY not in (a, b) and not (T.assignable(a, b) or T.assignable(b, a)):
                mixed = {_scalar(a), _scalar(b)} == {"text", "number"}
                if mixed or not ({a.name, b.name} <= {"str", "text", "record", "number", "series"}):
                    always = "always true" if op == "!=" else "always false"
                    hint = (
                        'a label or a token is a text: compare it with a string, e.g. `== "positive"`'
                        if mixed
                        else None
                    )
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
