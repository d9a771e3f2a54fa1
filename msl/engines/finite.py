"""Claims over finite sets: :class:`FiniteRun`, and the exhaustive engine built on it.

:class:`FiniteRun` checks instances of a claim's quantified sets — instance environments,
expectation checks with their counterexample values and margins, aggregate and closed
expectations. :class:`ExhaustiveRun` checks every instance; the statistical engine (a
growing prefix of a seeded sample) and the search (inputs drawn from a claim's generator,
:class:`~msl.engines.symbolic.SearchRun`) reuse the same checks; :class:`Probe` checks
single inputs for searches and replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from msl import ast
from msl.engines import ClaimRun, Outcome
from msl.engines.reports import claim_reports
from msl.engines.search import Found, search
from msl.evaluate import EMPTY, MAX_ENUMERATION, Aggregation, Env, Evaluator, MeasureValue, NotApplicable
from msl.fmt import expr as show
from msl.ir import CheckedClaim, CheckedExpect
from msl.plan import PENDING
from msl.stats import Interval, clopper_pearson, mean_interval, rate_verdict, samples_to_decide
from msl.values import (
    ConcatSet,
    DataSet,
    EvalError,
    InterventionValue,
    ModelHandle,
    Record,
    SampleSet,
    TemplateSet,
    Transform,
)

#: Counterexamples listed per violated claim (the worst first).
MAX_COUNTEREXAMPLES = 3
#: Rounds of queries one example may need (a generation fed to another measurement…).
MAX_ROUNDS = 8

_Part = TypeVar("_Part", ast.Compare, ast.Call)


@dataclass
class Instance:
    """One element of the claim's quantified set(s) and what checking it found."""

    index: int
    item: tuple[Any, ...]
    env: Env | None = None
    status: str | None = None  # ok, violated, na
    values: dict[str, Any] = field(default_factory=dict)
    margin: float = 0.0
    edit: str | None = None


class FiniteRun(ClaimRun):
    """Checks a claim on instances ``0 .. target()`` of its quantified sets."""

    method = "exhaustive"

    def __init__(self, claim: CheckedClaim, evaluator: Evaluator) -> None:
        super().__init__(claim)
        self.ev = evaluator
        self.fors = list(claim.quantifiers)
        self.base: Env | None = None
        self.sets: list[DataSet] | None = None
        self.instances: list[Instance] = []
        self.instance_expects = [e for e in claim.expects if e.shape == "instance"]
        self.other_expects = [e for e in claim.expects if e.shape != "instance"]
        #: how each reported interval was made, by what it is of (``rate``, ``mean(…)``)
        self.interval_methods: dict[str, str] = {}
        self._shown: dict[int, tuple[ast.Node, str]] = {}

    def shown(self, node: ast.Node) -> str:
        """``show(node)``, formatted once per node (every instance reports the same labels);
        the entry holds the node, so the id stays its own."""
        entry = self._shown.get(id(node))
        if entry is None or entry[0] is not node:
            entry = self._shown[id(node)] = (node, show(node))
        return entry[1]

    # the steps

    def step(self) -> None:
        self.ev.ctx.owner = (self.claim.name, None)  # labels the vectors the claim itself makes
        try:
            self.advance()
        except EvalError as exc:
            self.fail(exc.message, exc.span)

    def advance(self) -> None:
        if not self.resolve():
            return
        target = self.target()
        while len(self.instances) < target:
            index = len(self.instances)
            self.instances.append(Instance(index, self.item(index)))
        pending = False
        for inst in self.instances:
            if inst.status is None:
                pending = self.check(inst) or pending
        if pending:
            return
        parts = self.other_parts()
        if parts is None:
            return
        self.conclude(parts)

    def resolve(self) -> bool:
        """The claim-level names and the quantified sets, once known."""
        if self.base is None:
            env = EMPTY
            for stmt in self.claim.claim.body:
                if isinstance(stmt, ast.Let) and stmt.name not in self.claim.instance_lets:
                    env = env.child(**{stmt.name: self.ev.eval(stmt.value, env)})
                elif isinstance(stmt, ast.RoleBinding):
                    env = env.child(**{stmt.role: self.ev.eval(stmt.value, env)})
            if _has_pending(env):
                return False
            self.base = env
        if self.sets is None:
            sets = [self.ev.eval(source(q), self.base) for q in self.fors]
            if any(s is PENDING for s in sets):
                return False
            for q, s in zip(self.fors, sets, strict=True):
                self.accept(q, s)
            self.sets = sets
            if self.size() > MAX_ENUMERATION and not self.sampled():
                raise EvalError(
                    f"{self.size():,} instances are too many to check exhaustively",
                    source(self.fors[0]).span,
                    hint="draw a sample: `for x in sample(S, 400)` — the claim is then checked statistically",
                )
        return True

    def accept(self, quantifier: ast.For | ast.Forall, value: Any) -> None:
        """Refuse what this engine cannot range over."""
        if not isinstance(value, DataSet):
            raise EvalError(f"`for` needs a set, got {type(value).__name__}", source(quantifier).span)

    def size(self) -> int:
        assert self.sets is not None
        return math.prod(len(s) for s in self.sets if isinstance(s, DataSet))

    def sampled(self) -> bool:
        return False

    def target(self) -> int:
        return self.size()

    def item(self, index: int) -> tuple[Any, ...]:
        assert self.sets is not None
        parts = []
        for s in reversed(self.sets):
            index, rest = divmod(index, len(s))
            parts.append(s.item(rest))
        return tuple(reversed(parts))

    # instances

    def env_for(self, item: tuple[Any, ...]) -> Env:
        assert self.base is not None
        env = self.base.child(**{q.var: v for q, v in zip(self.fors, item, strict=True)})
        for stmt in self.claim.claim.body:
            if isinstance(stmt, ast.Let) and stmt.name in self.claim.instance_lets:
                env = env.child(**{stmt.name: self.ev.eval(stmt.value, env)})
        return env

    def check(self, inst: Instance) -> bool:
        """Check one instance's expectations; True while some result is pending."""
        self.ev.edits.clear()
        try:
            env = inst.env or self.env_for(inst.item)
            if _has_pending(env):
                # Still evaluate the expectations, to ask for their queries in this round too.
                for e in self.instance_expects:
                    self.expectation(e, env)
                return True
            inst.env = env
            results = [self.expectation(e, env) for e in self.instance_expects]
        except NotApplicable as na:
            inst.status, inst.edit = "na", f"{na.transform} does not apply"
            return False
        if any(r is PENDING for r in results):
            return True
        inst.status = "ok"
        applied = "; ".join(dict.fromkeys(self.ev.edits)) or None
        for ok, values, margin, edit in results:
            inst.values.update(values)
            if not ok:
                inst.status = "violated"
                inst.margin = max(inst.margin, margin)
                inst.edit = edit or applied or inst.edit
        return False

    def expectation(self, ce: CheckedExpect, env: Env) -> Any:
        """``(ok, values, margin, edit)`` for one expectation on one instance, or PENDING."""
        cond = ce.node.condition
        ev = self.ev
        if isinstance(cond, ast.Invariant | ast.Directional):
            before = ev.eval(cond.expr, env)
            after, edit = self.changed(cond, ce, env)
            amount = ev.eval(cond.within if isinstance(cond, ast.Invariant) else cond.by, env)
            if any(v is PENDING for v in (before, after, amount)):
                return PENDING
            label = self.shown(cond.expr)
            values = {label: _value(before), f"{label} after": _value(after)}
            if isinstance(cond, ast.Invariant):
                change = _distance(before, after)
                values["change"] = change
                return change <= amount, values, change - amount, edit
            delta = _number(after) - _number(before)
            values["change"] = delta
            gain = delta if cond.direction == "increases" else -delta
            return gain >= amount, values, amount - gain, edit
        if isinstance(cond, ast.Agree):
            left, right = ev.eval(cond.left, env), ev.eval(cond.right, env)
            within = ev.eval(cond.within, env) if cond.within is not None else 0
            if any(v is PENDING for v in (left, right, within)):
                return PENDING
            values = {self.shown(cond.left): _value(left), self.shown(cond.right): _value(right)}
            distance = _distance(left, right)
            return distance <= within, values, distance - within, None
        result = ev.eval(cond, env)
        if result is PENDING:
            return PENDING
        if not isinstance(result, (bool, np.bool_)):
            raise EvalError("an expectation must be true or false", cond.span)
        values, margin = self.explain(cond, env)
        return bool(result), values, margin, None

    def changed(self, cond: ast.Invariant | ast.Directional, ce: CheckedExpect, env: Env) -> tuple[Any, str | None]:
        """The expression after the transformation or under the intervention."""
        under = self.ev.eval(cond.under, env)
        if under is PENDING:
            return PENDING, None
        if isinstance(under, InterventionValue):
            return self.ev.eval(cond.expr, env, (under,)), under.label
        if not isinstance(under, Transform):
            raise EvalError("`under` takes a transformation or an intervention", cond.under.span)
        assert ce.varied is not None
        _, original = env.find(ce.varied)
        changed = under.apply(original, self.ev.ctx.rng("transform", under.label, _text(original)))
        if changed is None:
            raise NotApplicable(under.label)
        item = tuple(changed if q.var == ce.varied else env.find(q.var)[1] for q in self.fors)
        edit = "; ".join(changed.edits) if changed.edits else under.label
        return self.ev.eval(cond.expr, self.env_for(item)), f"{edit} → {changed.text!r}"

    def explain(self, cond: ast.Expr, env: Env) -> tuple[dict[str, Any], float]:
        """The compared values of a condition, and how far a violated one misses."""
        values: dict[str, Any] = {}
        margin = self._read(cond, env, values)
        return values, margin if margin > 0 else 1.0

    def _read(self, cond: ast.Expr, env: Env, values: dict[str, Any]) -> float:
        """Record the values ``cond`` compares into ``values``; return its largest shortfall."""
        margin = 0.0
        for call in _parts(cond, ast.Call):  # contains(lm.generate(q, 3), q.capital): show what it read
            measure = self.ev.eval(call.func, env) if isinstance(call.func, ast.Name) and not call.kwargs else None
            if isinstance(measure, MeasureValue):  # a measure that is a condition: what its body read
                params = dict(zip(measure.decl.params, (self.ev.eval(a, env) for a in call.args), strict=True))
                margin = max(margin, self._read(measure.decl.body, EMPTY.child(**params), values))
                continue
            for arg in call.args:
                if not _constant(arg):
                    values[self.shown(arg)] = _value(self.ev.eval(arg, env))
        for node in _parts(cond, ast.Compare):
            operands = [self.ev.eval(o, env) for o in node.operands]
            for o, v in zip(node.operands, operands, strict=True):
                if not _constant(o):
                    values[self.shown(o)] = _value(v)
            for op, a, b in zip(node.ops, operands, operands[1:], strict=False):
                margin = max(margin, _shortfall(op, a, b))
        return margin

    # aggregate and closed expectations

    def applicable(self) -> list[Instance]:
        return [i for i in self.instances if i.status != "na"]

    def other_parts(self) -> list[tuple[str, str, dict[str, Any]]] | None:
        """Verdicts of the aggregate and closed expectations: (verdict, text, values)."""
        assert self.base is not None
        envs = tuple(i.env for i in self.applicable() if i.env is not None)
        parts = []
        for ce in self.other_expects:
            cond = ce.node.condition
            agg = Aggregation(envs) if ce.shape == "aggregate" else None
            if agg is not None and not envs:
                parts.append(("inconclusive", show(cond), {}))
                continue
            result = self.ev.eval(cond, self.base, (), agg)
            if result is PENDING:
                return None
            parts.append(self.judge_other(ce, bool(result), envs))
        return parts

    def judge_other(self, ce: CheckedExpect, result: bool, envs: tuple[Env, ...]) -> tuple[str, str, dict[str, Any]]:
        """An exact verdict: the whole set was seen."""
        assert self.base is not None
        if ce.shape == "closed":
            values, _ = self.explain(ce.node.condition, self.base)
        else:
            agg = Aggregation(envs)
            values = {}
            for c in self.aggregate_calls(ce):
                key = show(c)
                values[key] = _value(self.ev.eval(c, self.base, (), agg))
                interval = self.mean_interval(c, self.base, agg)
                if interval is not None:
                    values[f"{key} ci_low"], values[f"{key} ci_high"] = interval.low, interval.high
                    self.interval_methods[key] = interval.method
        return ("holds" if result else "violated"), show(ce.node.condition), values

    def aggregate_calls(self, ce: CheckedExpect) -> list[ast.Call]:
        """The calls in an expectation that aggregate over the claim's instances, except
        those inside a generator (``mean(f(p, s))`` in ``… for s in scales``), which have
        a value per element of the generator (the dose–response curve shows them)."""
        implicit = self.ev.spec.implicit_aggregates
        return [n for n in _outside_generators(ce.node.condition) if isinstance(n, ast.Call) and id(n) in implicit]

    def mean_interval(self, call: ast.Node, env: Env, agg: Aggregation) -> Interval | None:
        """The bootstrap interval (:func:`msl.stats.mean_interval`) of an implicit
        ``mean(...)`` over the instances, at the claim's confidence, its resamples seeded
        by the run's seed, the claim and the expression (None for another aggregate or a
        non-numeric value)."""
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "mean"
                and id(call) in self.ev.spec.implicit_aggregates and len(call.args) == 1):
            return None
        values = [self.ev.per_instance(call.args[0], e, (), agg, env) for e in agg.envs]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        seed = self.ev.ctx.rng("interval", self.claim.name, show(call)).getrandbits(64)
        return cached_interval(self.ev.ctx.planner.cache, [float(v) for v in values], self.claim.confidence, seed)

    # the verdict

    def conclude(self, parts: list[tuple[str, str, dict[str, Any]]]) -> None:
        stats: dict[str, Any] = {}
        verdicts = [p[0] for p in parts]
        notes = [f"{'holds' if v == 'holds' else v}: {text}" for v, text, _ in parts if v != "holds"]
        values: dict[str, float] = {}
        for _, _, vals in parts:
            values.update({k: v for k, v in vals.items() if isinstance(v, (int, float))})
        if self.instance_expects:
            applicable = self.applicable()
            n = len(applicable)
            bad = [i for i in applicable if i.status == "violated"]
            verdict = self.rate_verdict(len(bad), n)
            verdicts.append(verdict)
            stats.update(n=n, violations=len(bad), rate=len(bad) / n if n else None, tolerance=self.claim.tolerance)
            if self.sampled() and n:
                stats.update(interval=clopper_pearson(len(bad), n, self.confidence()), confidence=self.confidence())
                self.interval_methods["rate"] = "clopper-pearson"
            not_applicable = len(self.instances) - n
            if not_applicable:
                values["not_applicable"] = not_applicable
            if n:
                notes.insert(0, f"{len(bad)} of {n} instance(s) violate{'s' if len(bad) == 1 else ''}")
            elif self.instances:
                notes.insert(0, "no instance could be checked (the transformation applied to none)")
            else:
                notes.insert(0, "no instance could be checked: the set is empty")
            sampled_clean = verdict == "inconclusive" and not bad and n and self.sampled()
            needed = samples_to_decide(self.claim.tolerance, self.claim.confidence) if sampled_clean else None
            if needed is not None and needed > n:
                values["samples_to_decide"] = needed
                notes.insert(1, f"with no violation, a sample of {needed} would show that it holds "
                                f"at {self.claim.confidence:.0%} confidence")
        elif self.instances:
            stats["n"] = len(self.applicable())
        if not self.claim.expects and not self.claim.claim.statements(ast.Preserves):
            verdicts.append("inconclusive")
            notes.append("no expectation stated: the results are reported")
        verdict = _combine(verdicts)
        if verdict == "inconclusive" and self.more_to_sample():
            self.advance()  # ask for the next look's queries in this same step
            return
        if values:
            stats["values"] = values
            if any(k.endswith(" ci_low") for k in values) and "confidence" not in stats:
                stats["confidence"] = self.confidence()  # the level of the mean's interval
        if self.interval_methods:
            stats["interval_method"] = dict(sorted(self.interval_methods.items()))
        self.add_sample_stats(stats)
        outcome = Outcome(verdict, self.method, "; ".join(notes) or "every expectation holds", stats)
        if verdict == "violated":
            outcome.counterexamples = self.counterexamples()
        outcome.series, outcome.tables = self.reports()
        self.outcome = outcome

    def rate_verdict(self, violations: int, n: int) -> str:
        return rate_verdict(violations, n, self.claim.tolerance, self.confidence(), exhaustive=True)

    def confidence(self) -> float:
        return self.claim.confidence

    def more_to_sample(self) -> bool:
        return False

    def add_sample_stats(self, stats: dict[str, Any]) -> None:
        """Hook for the statistical engine (seed, looks)."""

    def counterexamples(self) -> list[dict[str, Any]]:
        """The worst violations, led by a shrunk one when the set is a template."""
        bad = sorted((i for i in self.instances if i.status == "violated"), key=lambda i: (-i.margin, i.index))
        examples = [self.describe(i) for i in bad[:MAX_COUNTEREXAMPLES]]
        space = self.generator()
        if space is not None and any(i.status == "violated" for i in self.instances):
            shrunk = shrunk_counterexample(self, space)
            if shrunk is not None:
                examples.insert(0, shrunk)
        return examples

    def generator(self) -> DataSet | None:
        """The templates a single quantifier draws from, if any (a space to shrink in)."""
        if self.sets is None or len(self.sets) != 1 or not self.instance_expects:
            return None
        return self.sets[0] if _generated(self.sets[0]) else None

    def describe(self, inst: Instance) -> dict[str, Any]:
        item = (
            inst.item[0]
            if len(inst.item) == 1
            else {q.var: _input(v) for q, v in zip(self.fors, inst.item, strict=True)}
        )
        values = {k: v for k, v in inst.values.items() if isinstance(v, (int, float, str, bool))}
        return {
            "input": _input(item),
            "values": {**self.let_values(inst), **values},
            "edit": inst.edit,
            "replayed": True,
        }

    def let_values(self, inst: Instance) -> dict[str, bool | float | str]:
        """The claim's per-instance ``let`` values at an instance that are plain values
        (numbers, flags, texts), in the order the claim states them."""
        out: dict[str, bool | float | str] = {}
        if inst.env is None:
            return out
        for stmt in self.claim.claim.body:
            if isinstance(stmt, ast.Let) and stmt.name in self.claim.instance_lets:
                found, value = inst.env.find(stmt.name)
                if not found:
                    continue
                if isinstance(value, (bool, np.bool_)):
                    out[stmt.name] = bool(value)
                elif isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
                    out[stmt.name] = float(value)
                elif isinstance(value, str):
                    out[stmt.name] = value
        return out

    # reports for explore and steer claims

    def reports(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The finding's curves and tables (:mod:`msl.engines.reports`)."""
        return claim_reports(self)

    def envs(self) -> tuple[Env, ...]:
        """The environments of the instances checked (the ones an aggregate runs over)."""
        return tuple(i.env for i in self.applicable() if i.env is not None)


class ExhaustiveRun(FiniteRun):
    """Every instance of the claim's finite sets (or, with no quantifier, its closed expectations)."""


class Probe:
    """Checks a claim's instance expectations on single inputs, synchronously."""

    def __init__(self, run: FiniteRun) -> None:
        self.run = run
        self.error: EvalError | None = None

    def settle(self, item: tuple[Any, ...]) -> Instance | None:
        """The checked instance, flushing the planner until its results are in."""
        inst = Instance(-1, item)
        planner = self.run.ev.ctx.planner
        for _ in range(MAX_ROUNDS):
            if not self.run.check(inst):
                return inst
            if planner.flush() == 0:
                break
        raise EvalError("an input's measurements never became available")

    def violates(self, item: tuple[Any, ...], where: ast.Expr | None = None) -> bool:
        if self.error is not None:
            return False
        try:
            if where is not None and not self.holds(where, item):
                return False
            inst = self.settle(item)
        except EvalError as exc:
            self.error = exc
            return False
        return inst is not None and inst.status == "violated"

    def holds(self, cond: ast.Expr, item: tuple[Any, ...]) -> bool:
        env = self.run.env_for(item)
        for _ in range(MAX_ROUNDS):
            value = self.run.ev.eval(cond, env)
            if value is not PENDING:
                return bool(value)
            self.run.ev.ctx.planner.flush()
            env = self.run.env_for(item)
        raise EvalError("a `where` condition never became available")


def shrunk_counterexample(run: FiniteRun, space: DataSet) -> dict[str, Any] | None:
    """Search the generator a violated claim drew from for a minimal failing input.

    No wall-clock limit here: the claim's verdict is already decided by its own evidence,
    and a counterexample present on a fast machine and missing on a slow one would change
    the finding's id; the work budgets bound the search instead.
    """
    probe = Probe(run)
    found = search(space, lambda item: probe.violates((item,)), run.ev.ctx.seed)
    if not isinstance(found, Found) or probe.error is not None:
        return None
    inst = probe.settle((found.minimal,))
    assert inst is not None
    example = run.describe(inst)
    example["original"] = _input(found.first)
    return example


# ── helpers ──────────────────────────────────────────────────────────────────────────────


def _generated(space: DataSet) -> bool:
    """Whether a set is made of template fills (samples and concatenations of them)."""
    if isinstance(space, SampleSet):
        return _generated(space.base)
    if isinstance(space, ConcatSet):
        return all(_generated(p) for p in space.parts)
    return isinstance(space, TemplateSet)


def source(quantifier: ast.For | ast.Forall) -> ast.Expr:
    """What a quantifier ranges over."""
    return quantifier.iterable if isinstance(quantifier, ast.For) else quantifier.domain


def cached_interval(cache: Any, values: list[float], confidence: float, seed: int) -> Interval | None:
    """:func:`msl.stats.mean_interval`, from the result cache when computed before: keyed by
    the values (their exact bytes), the confidence, the seed, the statistics code and the
    scipy version (2000 bootstrap resamples, and importing scipy.stats, on every run else)."""
    import scipy

    from msl.cache import array_digest, cached_json, derived_key, source_digest

    key = derived_key("mean-interval", {
        "values": array_digest(np.asarray(values, dtype=np.float64)), "confidence": confidence, "seed": seed,
        "code": source_digest("msl.stats"), "scipy": scipy.__version__,
    })
    return cached_json(
        cache, key, "derived:interval", lambda: mean_interval(values, confidence, seed),
        lambda i: None if i is None else [i.low, i.high, i.method],
        lambda data: None if data is None else Interval(float(data[0]), float(data[1]), str(data[2])),
    )


def _has_pending(env: Env) -> bool:
    return any(v is PENDING for _, v in env.bindings())


def _combine(verdicts: list[str]) -> str:
    for v in ("error", "violated", "inconclusive"):
        if v in verdicts:
            return v
    return "holds"


def _parts(cond: ast.Node, kind: type[_Part]) -> list[_Part]:
    """The ``kind`` nodes a condition is made of through and / or / not: its comparisons,
    or its calls outside comparisons (``contains(…)``, a measure used as a condition)."""
    match cond:
        case kind():
            return [cond]
        case ast.Binary(op="and" | "or"):
            return _parts(cond.left, kind) + _parts(cond.right, kind)
        case ast.Unary(op="not"):
            return _parts(cond.operand, kind)
    return []


def _outside_generators(node: ast.Node) -> list[ast.Node]:
    """The nodes of an expression, leaving out the elements and conditions of generators."""
    out: list[ast.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        if isinstance(current, ast.Comprehension):
            stack.append(current.iterable)
        else:
            stack.extend(current.children())
    return out


def _constant(node: ast.Node) -> bool:
    """A literal the spec already shows (``0.5``, ``-1``, ``" Paris"``): not worth listing."""
    if isinstance(node, ast.Unary) and node.op == "-":
        return _constant(node.operand)
    return isinstance(node, (ast.Number, ast.String, ast.Bool))


def _shortfall(op: str, a: Any, b: Any) -> float:
    """How far ``a op b`` is from holding (0 when it holds or is not numeric)."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return 0.0
    return max(0.0, {"<": a - b, "<=": a - b, ">": b - a, ">=": b - a, "==": abs(a - b), "!=": 0.0}[op])


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise EvalError(f"a directional expectation needs a number, got {value!r}")
    return float(value)


def _distance(a: Any, b: Any) -> float:
    """|a − b| for numbers, the largest coordinate difference for vectors, 0/1 otherwise."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return abs(float(a) - float(b))
    return 0.0 if _plain_text(a) == _plain_text(b) else math.inf


def _plain_text(value: Any) -> Any:
    return value.text if isinstance(value, Record) else value


def _text(value: Any) -> str:
    return value.text if isinstance(value, Record) else str(value)


def _value(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value)
    if isinstance(value, Record):
        return value.text
    if isinstance(value, str):
        return value
    if isinstance(value, (np.ndarray, DataSet)):  # a vector: net(x), or a list of numbers
        items = list(value)
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
    if isinstance(value, ModelHandle):  # a model passed to a measure: its role, as the spec names it
        return value.role if value.intervention is None else f"{value.role} (under an intervention)"
    return repr(value)[:200]


def _input(value: Any) -> Any:
    """An input as findings show it: the text, or the record's fields when it has slots."""
    if isinstance(value, Record):
        fields = value.to_json()
        return fields["text"] if list(fields) == ["text"] else fields
    if isinstance(value, DataSet):  # a point written as a list: [0, -1, -1, -1]
        value = list(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            return repr(value)[:200]
    if isinstance(value, dict):
        return value
    return value if isinstance(value, (str, int, float)) else repr(value)[:200]

