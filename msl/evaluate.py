"""Evaluate: MSL expressions → values, with every model query batched across claims.

Evaluation runs in *rounds*. A measurement asks the planner for its query; a result
already known comes back at once, an unknown one is recorded and :data:`PENDING` comes
back instead. ``PENDING`` flows through operators and calls like a poison value, so one
pass over every claim collects every query the claims need next; the planner then runs
them all in a few large batches, and the next pass finds them answered. Data-dependent
measurements (a generation fed to another measurement) simply take one more round.

Interventions are dynamic: ``E with I`` evaluates ``E`` — including the bodies of the
measures it calls — with ``I`` applied to every query on the intervened model's role.
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from msl import ast
from msl.builtins import REQUIRED, Builtin, Name, Param, aggregates, bind_arguments, lookup, measurements
from msl.ir import CheckedSpec
from msl.plan import PENDING, Planner
from msl.queries import QueryFailed
from msl.values import (
    MAX_ENUMERATION,
    ConcatSet,
    DataSet,
    EvalError,
    InterventionValue,
    ListSet,
    ModelHandle,
    Record,
    Series,
    SiteFamily,
    SiteRef,
    Transform,
    as_text,
)

#: Expressions one evaluation an engine asks for (one expectation of one instance, a
#: claim's `let`, a set) may evaluate, nested calls included: a limit on work, so that
#: nested comprehensions over large sets end in an error, not a hang.
MAX_EVALUATIONS = 2_000_000


class NotApplicable(Exception):
    """A transformation does not apply to this input: the instance is left out."""

    def __init__(self, transform: str) -> None:
        super().__init__(transform)
        self.transform = transform


def is_pending(value: Any) -> bool:
    return value is PENDING


# ── The context built-ins run in ─────────────────────────────────────────────────────────


@dataclass
class RunContext:
    """Shared by every claim of a run: the planner, the seed, what was read and made."""

    planner: Planner
    seed: int
    spec_dir: Path
    data_hashes: dict[str, str] = field(default_factory=dict)
    vectors: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    #: Vectors to use instead of computing them, by label (``msl check --vectors``).
    pins: dict[str, np.ndarray] = field(default_factory=dict)
    #: What is being evaluated — a declaration's name and its value node, or a claim's
    #: name — and the built-in call running now: together they label vectors.
    owner: tuple[str, ast.Node | None] = ("", None)
    call: ast.Node | None = None
    #: Model results (arrays) already found finite, by id; each entry holds its result, so
    #: the id stays its own. The planner hands out the same object on every request.
    finite: dict[int, Any] = field(default_factory=dict)

    def query(self, model: ModelHandle, query: Any, then: Callable[[Any], Any] | None = None) -> Any:
        result = self.planner.get(model.model, query, model.intervention)
        if result is PENDING:
            return PENDING
        if isinstance(result, QueryFailed):
            raise EvalError(f"{model.role}: {result.message}")
        if id(result) not in self.finite or self.finite[id(result)] is not result:
            _check_finite(result, f"{model.role} returned")
            if not isinstance(result, (float, int, str)):  # an array: checked once per result
                self.finite[id(result)] = result
        return then(result) if then is not None else result

    def query_all(self, model: ModelHandle, queries: Sequence[Any], then: Callable[[list[Any]], Any]) -> Any:
        results = [self.query(model, q) for q in queries]
        if any(r is PENDING for r in results):
            return PENDING
        return then(results)

    def rng(self, *key: object) -> random.Random:
        digest = hashlib.sha256(repr((self.seed,) + key).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def note_data(self, label: str, digest: str) -> None:
        self.data_hashes[label] = digest

    def save_vector(self, label: str, vector: Any) -> str:
        from msl.vectors import digest

        array = np.asarray(vector, dtype="<f4").ravel()
        self.vectors[label] = (digest(array), array)
        return self.vectors[label][0]

    def vector_label(self) -> str:
        """The label of a vector made by the current call (see :mod:`msl.vectors`): the
        declaration's name when the call is its whole value, else ``OWNER@LINE:COL``."""
        name, root = self.owner
        if self.call is not None and self.call is root:
            return name
        span = self.call.span if self.call is not None else None
        return f"{name}@{span.line}:{span.column}" if span is not None else name or "vector"

    def pinned(self, label: str) -> np.ndarray | None:
        """The pinned vector for ``label``, if the run was given one."""
        return self.pins.get(label)

    def memo(
        self, key: str, names: tuple[str, ...], compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        cache = self.planner.cache
        stored = cache.get_arrays(key, names) if cache is not None else None
        if stored is not None:
            return stored
        arrays = compute()
        if cache is not None:
            cache.put_arrays(key, "derived", arrays)
        return arrays

    def for_spec(self, spec_dir: Path) -> RunContext:
        """The same run, reading data next to another spec."""
        return RunContext(
            self.planner, self.seed, spec_dir, self.data_hashes, self.vectors, self.pins, finite=self.finite
        )


def _check_finite(value: Any, what: str) -> None:
    """NaN or inf out of a model is an error, never a pass."""
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError(f"{what} {value}")
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise EvalError(f"{what} NaN or inf")
    logprob = getattr(value, "logprob", None)
    if isinstance(logprob, np.ndarray) and not np.all(np.isfinite(logprob)):
        raise EvalError(f"{what} NaN or inf")


# ── Environments ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Env:
    """Local names (quantified variables, lets, measure parameters) over the spec's."""

    names: dict[str, Any]
    parent: Env | None = None

    def find(self, name: str) -> tuple[bool, Any]:
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return True, env.names[name]
            env = env.parent
        return False, None

    def child(self, **names: Any) -> Env:
        return Env(names, self)

    def bindings(self) -> list[tuple[str, Any]]:
        """Every name bound here and in the enclosing environments, outermost first."""
        out: list[tuple[str, Any]] = []
        current: Env | None = self
        while current is not None:
            out.extend(current.names.items())
            current = current.parent
        return list(reversed(out))


EMPTY = Env({})


@dataclass(frozen=True)
class MeasureValue:
    decl: ast.MeasureDecl


@dataclass(frozen=True)
class Aggregation:
    """The instances an implicit aggregate (``mean(effect(p))`` in a ``for`` claim) runs over."""

    envs: tuple[Env, ...]
    memo: dict[tuple[int, int], Any] = field(default_factory=dict, compare=False)


Overlay = tuple[InterventionValue, ...]


# ── The evaluator ────────────────────────────────────────────────────────────────────────


class Evaluator:
    """Evaluates the expressions of one checked spec against bound models."""

    def __init__(self, spec: CheckedSpec, ctx: RunContext, models: dict[str, ModelHandle]) -> None:
        self.spec = spec
        self.ctx = ctx
        self.models = models
        self._globals: dict[str, Any] = {}
        self._failed: dict[str, EvalError] = {}
        #: what transformations applied while checking the current instance did (for counterexamples)
        self.edits: list[str] = []
        #: the evaluation an engine asked for (nested calls count towards its steps)
        self._depth, self._steps, self._top = 0, 0, ast.Node()
        self._bindings: dict[tuple[int, int], tuple[Any, ...]] = {}

    # names

    def global_value(self, name: str) -> Any:
        """A top-level declaration's value, computed once (not under any intervention)."""
        if name in self._globals:
            return self._globals[name]
        if name in self._failed:
            raise self._failed[name]
        node = self.spec.symbols[name].node
        if isinstance(node, ast.ModelDecl):
            if name not in self.models:
                raise EvalError(f"model role `{name}` is not bound", node.name_span)
            return self.models[name]
        if isinstance(node, ast.MeasureDecl):
            return MeasureValue(node)
        saved = self.ctx
        self.ctx = saved.for_spec(Path(node.span.file).parent)  # data next to the declaring file
        self.ctx.owner = (name, node.value)  # labels the vectors it makes
        try:
            value = self.eval(node.value, EMPTY)
        except EvalError as exc:
            self._failed[name] = exc
            raise
        finally:
            self.ctx = saved
        if value is not PENDING:
            self._globals[name] = value
        return value

    def lookup_name(self, node: ast.Name, env: Env, overlay: Overlay) -> Any:
        found, value = env.find(node.id)
        if not found:
            if node.id in self.spec.symbols:
                value = self.global_value(node.id)
            else:
                fn = lookup(node.id)
                if fn is None:
                    raise EvalError(f"unknown name `{node.id}`", node.span)
                return self.call_builtin(fn, None, (), (), env, overlay, node)
        if isinstance(value, ModelHandle):
            return apply_overlay(value, overlay)
        return value

    # expressions

    def eval(self, node: ast.Node, env: Env, overlay: Overlay = (), agg: Aggregation | None = None) -> Any:
        if self._depth == 0:  # an engine asks: one expectation, `let` or set of one instance
            self._top, self._steps = node, 0
        self._steps += 1
        if self._steps > MAX_EVALUATIONS:
            raise EvalError(
                f"evaluating this took more than {MAX_EVALUATIONS:,} steps",
                self._top.span,
                hint="nested comprehensions over large sets multiply: sample the sets",
            )
        self._depth += 1
        try:
            return self._eval(node, env, overlay, agg)
        except EvalError as exc:
            if exc.span is None:
                exc.span = node.span
            raise
        finally:
            self._depth -= 1

    def _eval(self, node: ast.Node, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        match node:
            case ast.Number():
                return node.fraction if node.percent else node.value
            case ast.String():
                return node.value
            case ast.Bool():
                return node.value
            case ast.Name():
                return self.lookup_name(node, env, overlay)
            case ast.ListLit():
                items = [self.eval(i, env, overlay, agg) for i in node.items]
                return PENDING if any(i is PENDING for i in items) else ListSet(tuple(items), "a list")
            case ast.RecordLit():
                values = {f.name: self.eval(f.value, env, overlay, agg) for f in node.fields}
                return PENDING if any(v is PENDING for v in values.values()) else Record(tuple(values.items()))
            case ast.Comprehension():
                items = self.comprehension(node, env, overlay, agg)
                if items is PENDING:
                    return PENDING
                return ListSet(tuple(items), "a comprehension") if node.bracketed else items
            case ast.Attribute():
                return self.attribute(node, env, overlay, agg)
            case ast.Index():
                return self.index(node, env, overlay, agg)
            case ast.Call():
                return self.call(node, env, overlay, agg)
            case ast.Unary():
                value = self.eval(node.operand, env, overlay, agg)
                if value is PENDING:
                    return PENDING
                if node.op == "not":
                    return not _truth(value)
                return _arith("-", 0, value) if not isinstance(value, Series) else value.map(lambda v: -v)
            case ast.Binary():
                return self.binary(node, env, overlay, agg)
            case ast.Compare():
                return self.compare(node, env, overlay, agg)
            case ast.With():
                intervention = self.eval(node.intervention, env, overlay, agg)
                if intervention is PENDING:
                    return PENDING
                if not isinstance(intervention, InterventionValue):
                    raise EvalError("`with` needs an intervention", node.intervention.span)
                return self.eval(node.expr, env, overlay + (intervention,), agg)
        raise EvalError(f"cannot evaluate {type(node).__name__}", node.span)

    def comprehension(self, node: ast.Comprehension, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        source = self.eval(node.iterable, env, overlay, agg)
        if source is PENDING:
            return PENDING
        out, pending = [], False
        for item in iterate(source, node.iterable.span):
            inner = env.child(**{node.var: item})
            if node.condition is not None:
                keep = self.eval(node.condition, inner, overlay, agg)
                if keep is PENDING:
                    pending = True
                    continue
                if not _truth(keep):
                    continue
            value = self.eval(node.element, inner, overlay, agg)
            pending = pending or value is PENDING
            out.append(value)
        return PENDING if pending else out

    def attribute(self, node: ast.Attribute, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        obj = self.eval(node.obj, env, overlay, agg)
        if obj is PENDING:
            return PENDING
        if isinstance(obj, ModelHandle):
            return SiteFamily(obj, node.name)
        if isinstance(obj, Record):
            if not obj.has(node.name):
                raise EvalError(f"the input has no field `{node.name}`")
            return obj.get(node.name)
        if isinstance(obj, str) and node.name == "text":
            return obj
        raise EvalError(f"no field `{node.name}` on {type(obj).__name__}")

    def index(self, node: ast.Index, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        obj = self.eval(node.obj, env, overlay, agg)
        key = self.eval(node.index, env, overlay, agg)
        if obj is PENDING or key is PENDING:
            return PENDING
        if not isinstance(key, (int, float)) or isinstance(key, bool) or key != int(key):
            raise EvalError(f"an index must be a whole number, not {key!r}")
        i = int(key)
        if isinstance(obj, SiteFamily):
            return SiteRef(obj.model, obj.point, i)
        if isinstance(obj, Series):
            if i not in obj.layers:
                raise EvalError(f"the series has no layer {i}")
            return obj.values[obj.layers.index(i)]
        items = list(obj) if isinstance(obj, DataSet) else obj
        try:
            value = items[i]
        except (IndexError, TypeError):
            raise EvalError(f"index {i} is out of range") from None
        return float(value) if isinstance(value, np.floating) else value

    def binary(self, node: ast.Binary, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        left = self.eval(node.left, env, overlay, agg)
        if node.op in ("and", "or"):
            if left is not PENDING and _truth(left) == (node.op == "or"):
                return node.op == "or"  # decided by the left side alone
            right = self.eval(node.right, env, overlay, agg)
            if right is PENDING:
                return PENDING
            if left is PENDING:
                return PENDING if _truth(right) == (node.op == "and") else node.op == "or"
            return _truth(right)
        right = self.eval(node.right, env, overlay, agg)
        if left is PENDING or right is PENDING:
            return PENDING
        if node.op == "then":
            if not isinstance(left, Transform) or not isinstance(right, Transform):
                raise EvalError("`then` composes transformations")
            return left.then(right)
        return _arith(node.op, left, right)

    def compare(self, node: ast.Compare, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        values = [self.eval(o, env, overlay, agg) for o in node.operands]
        if any(v is PENDING for v in values):
            return PENDING
        result: Any = True
        for op, a, b in zip(node.ops, values, values[1:], strict=False):
            result = _and(result, _compare(op, a, b))
        return result

    # calls

    def call(self, node: ast.Call, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = self.eval(func.obj, env, overlay, agg)
            if owner is PENDING:
                return PENDING
            if not isinstance(owner, ModelHandle):
                raise EvalError(f"`{func.name}` is not a measurement of {type(owner).__name__}")
            fn = measurements(owner.kind).get(func.name)
            if fn is None:
                raise EvalError(f"a {owner.kind} has no measurement `{func.name}`")
            return self.call_builtin(fn, owner, node.args, node.kwargs, env, overlay, node, agg)
        if not isinstance(func, ast.Name):  # typos(1)(x)
            value = self.eval(func, env, overlay, agg)
            return PENDING if value is PENDING else self.call_value(value, node, env, overlay, agg)
        found, value = env.find(func.id)
        if not found and func.id in self.spec.symbols:
            found, value = True, self.global_value(func.id)
        if found:
            if value is PENDING:
                return PENDING
            return self.call_value(value, node, env, overlay, agg)
        fn = lookup(func.id)
        if fn is None:
            raise EvalError(f"unknown function `{func.id}`")
        return self.call_builtin(fn, None, node.args, node.kwargs, env, overlay, node, agg)

    def call_value(self, value: Any, node: ast.Call, env: Env, overlay: Overlay, agg: Aggregation | None) -> Any:
        args = [self.eval(a, env, overlay, agg) for a in node.args]
        if any(a is PENDING for a in args):
            return PENDING
        if isinstance(value, MeasureValue):
            params = dict(zip(value.decl.params, args, strict=True))
            return self.eval(value.decl.body, EMPTY.child(**params), overlay)
        if isinstance(value, Transform):
            result = value.apply(args[0], self.ctx.rng("transform", value.label, as_text(args[0])))
            if result is None:
                raise NotApplicable(value.label)
            self.edits.append(f"{'; '.join(result.edits[-len(value.steps):]) or value.label} → {result.text!r}")
            return result
        if isinstance(value, ModelHandle):
            handle = apply_overlay(value, overlay)
            fn = measurements(handle.kind)["output"]
            return fn.impl(self.ctx, handle, args[0])
        raise EvalError(f"{type(value).__name__} cannot be called")

    def call_builtin(
        self,
        fn: Builtin,
        receiver: ModelHandle | None,
        args: tuple[ast.Expr, ...],
        kwargs: tuple[ast.Keyword, ...],
        env: Env,
        overlay: Overlay,
        node: ast.Node,
        agg: Aggregation | None = None,
    ) -> Any:
        pairs, problems = self.bound(fn, args, kwargs, node)
        if problems:
            raise EvalError(problems[0].message)
        values: dict[str, Any] = {}
        variadic: list[Any] = []
        extra: dict[str, Any] = {}
        pending = False
        for param, arg in pairs:
            value = self.argument(fn, param, arg, env, overlay, agg, node)
            pending = pending or value is PENDING or (isinstance(value, list) and any(v is PENDING for v in value))
            if param.variadic:
                variadic.append(value)
            elif param.keywords:
                extra[param.name] = value
            else:
                values[param.name] = value
        if pending:
            return PENDING
        for param in fn.params:
            if param.variadic:
                values[param.name] = tuple(variadic)
            elif param.keywords:
                values[param.name] = extra
            elif param.name not in values and param.default is not REQUIRED:
                values[param.name] = self.default(param, env, overlay)
        self.ctx.call = node
        try:
            result = fn.impl(self.ctx, receiver, **values) if receiver is not None else fn.impl(self.ctx, **values)
        except EvalError:
            raise
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise EvalError(f"{fn.name}: {exc}") from None
        if isinstance(result, float) and math.isnan(result):
            raise EvalError(f"{fn.name} gave NaN")
        return result

    def bound(
        self, fn: Builtin, args: tuple[ast.Expr, ...], kwargs: tuple[ast.Keyword, ...], node: ast.Node
    ) -> tuple[list[tuple[Param, Any]], list[Any]]:
        """:func:`bind_arguments` of a call, worked out once per call node and built-in (a
        claim evaluates the same call for every instance). The entry holds the node and the
        built-in, so their ids stay theirs while it is used."""
        if not args and not kwargs:
            return bind_arguments(fn, args, kwargs)
        key = (id(node), id(fn))
        entry = self._bindings.get(key)
        if entry is None or entry[0] is not node or entry[1] is not fn:
            entry = (node, fn, *bind_arguments(fn, args, kwargs))
            self._bindings[key] = entry
        return entry[2], entry[3]

    def default(self, param: Param, env: Env, overlay: Overlay) -> Any:
        if isinstance(param.default, Name):
            fn = lookup(param.default.id)
            assert fn is not None
            return self.call_builtin(fn, None, (), (), env, overlay, ast.Name(param.default.id))
        return param.default

    def argument(
        self, fn: Builtin, param: Param, arg: ast.Expr, env: Env, overlay: Overlay,
        agg: Aggregation | None, call: ast.Node,
    ) -> Any:
        if not aggregates(param, call.args if isinstance(call, ast.Call) else ()):
            return self.eval(arg, env, overlay, agg)
        if id(call) in self.spec.implicit_aggregates:
            if agg is None:
                raise EvalError(f"`{fn.name}` aggregates over the claim's instances here")
            return [self.per_instance(arg, e, overlay, agg, env) for e in agg.envs]
        value = self.eval(arg, env, overlay, agg)
        if value is PENDING or isinstance(value, list):
            return value
        if isinstance(value, (bool, int, float, np.bool_, np.number)):  # a measure's parameter, say
            raise EvalError(
                f"`{fn.name}` of a single value: an aggregate takes a collection, a generator, or — "
                "written in a `for` claim's expectation — one value per instance",
                arg.span,
            )
        return list(iterate(value, arg.span))

    def per_instance(self, arg: ast.Expr, env: Env, overlay: Overlay, agg: Aggregation, outer: Env = EMPTY) -> Any:
        """``arg`` on one instance. Names bound around the aggregate but not in the
        instance's environment — a generator's variable, as ``s`` in
        ``increasing(mean(f(p, s)) for s in scales)`` — are seen too."""
        local = _local_names(outer, env)
        key = (id(arg), id(env), overlay, tuple((k, _memo_key(v)) for k, v in sorted(local.items())))
        if key not in agg.memo or agg.memo[key] is PENDING:
            agg.memo[key] = self.eval(arg, env.child(**local) if local else env, overlay)
        return agg.memo[key]


def _local_names(env: Env, instance: Env) -> dict[str, Any]:
    """The names ``env`` binds above the environments it shares with ``instance``."""
    shared: set[int] = set()
    current: Env | None = instance
    while current is not None:
        shared.add(id(current))
        current = current.parent
    out: dict[str, Any] = {}
    current = env
    while current is not None and id(current) not in shared:
        for name, value in current.names.items():
            out.setdefault(name, value)
        current = current.parent
    return out


def _memo_key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def apply_overlay(handle: ModelHandle, overlay: Overlay) -> ModelHandle:
    for intervention in overlay:
        if intervention.role == handle.role:
            handle = handle.under(intervention)
    return handle


def iterate(value: Any, span: Any = None) -> Iterator[Any]:
    """The elements of a set, series or vector; sets too large to enumerate are refused."""
    if isinstance(value, DataSet):
        if len(value) > MAX_ENUMERATION:
            raise EvalError(
                f"{value.describe()} is too large to enumerate (over {MAX_ENUMERATION:,} items)",
                span,
                hint="draw a sample: sample(S, 500)",
            )
        return iter(value)
    if isinstance(value, Series):
        return iter(value.values)
    if isinstance(value, np.ndarray):
        return (float(v) for v in value.ravel())
    if isinstance(value, (list, tuple)):
        return iter(value)
    raise EvalError(f"cannot iterate over {type(value).__name__}", span)


# ── Operators ────────────────────────────────────────────────────────────────────────────


def _truth(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise EvalError(f"expected a condition, got {value!r}")


def _and(a: Any, b: Any) -> Any:
    if isinstance(a, Series) or isinstance(b, Series):
        sa = a if isinstance(a, Series) else None
        sb = b if isinstance(b, Series) else None
        base = sa or sb
        assert base is not None
        left = sa.values if sa else (a,) * len(base.values)
        right = sb.values if sb else (b,) * len(base.values)
        return Series(base.layers, tuple(bool(x) and bool(y) for x, y in zip(left, right, strict=True)), base.label)
    return bool(a) and bool(b)


def _plain(value: Any) -> Any:
    """Compare texts by their text, lists of numbers as vectors."""
    if isinstance(value, Record):
        return value.text
    if isinstance(value, ListSet):
        items = value.items
        if items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return np.asarray(items, dtype=np.float64)
        return tuple(_plain(v) for v in items)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _compare(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, Series):
        return Series(a.layers, tuple(_compare(op, v, b) for v in a.values), a.label)
    if isinstance(b, Series):
        return Series(b.layers, tuple(_compare(op, a, v) for v in b.values), b.label)
    a, b = _plain(a), _plain(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if op in ("==", "!="):
            same = x.shape == y.shape and bool(np.all(x == y))
            return same if op == "==" else not same
        raise EvalError(f"`{op}` compares numbers, not vectors")
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        raise EvalError(f"`{op}` compares numbers, got {a!r} and {b!r}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


def _arith(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, Series) or isinstance(b, Series):
        if isinstance(a, Series):
            return a.map(lambda v: _arith(op, v, b))
        return b.map(lambda v: _arith(op, a, v))
    if op == "+" and isinstance(a, DataSet) and isinstance(b, DataSet):
        return ConcatSet((a, b))
    if op == "+" and isinstance(a, (str, Record)) and isinstance(b, (str, Record)):
        return as_text(a) + as_text(b)
    a, b = _plain(a), _plain(b)
    vector = isinstance(a, np.ndarray) or isinstance(b, np.ndarray)
    for v in (a, b):
        if not (vector and isinstance(v, np.ndarray)) and (
            isinstance(v, bool) or not isinstance(v, (int, float))
        ):
            raise EvalError(f"cannot apply `{op}` to {v!r}")
    if vector:
        x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if x.shape != y.shape and x.ndim and y.ndim:
            raise EvalError(f"`{op}` on vectors of sizes {x.size} and {y.size}")
        if op == "/" and np.any(y == 0):
            raise EvalError("division by zero")
        return _OPS[op](x, y)
    if op == "/" and b == 0:
        raise EvalError("division by zero")
    result = _OPS[op](a, b)
    if isinstance(result, float) and not math.isfinite(result):
        raise EvalError(f"`{op}` gave {result}")
    return result
