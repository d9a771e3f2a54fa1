"""Property-based search with Hypothesis: find failing inputs, and shrink them.

Inputs come from generators — template fills (one choice per slot, shrinking toward the
shortest fill), perturbations applied to them, and points of an input box. A search can
refute a claim (its counterexample has been run through the real model) or spend its
budget and leave it inconclusive; it never proves anything.

The search is deterministic for a given ``--seed``. Hypothesis runs the property one
input at a time, so each example's queries are run at once (the planner still caches
them, and shrinking mostly re-reads cached results).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from msl import ast
from msl.builtins.domains import Domain
from msl.engines import Outcome
from msl.engines.exhaustive import FiniteRun, Instance, _input
from msl.evaluate import Evaluator
from msl.check import CheckedClaim
from msl.plan import PENDING
from msl.values import DataSet, EvalError

#: Examples Hypothesis generates per search, and the wall-clock budget of one search.
MAX_EXAMPLES = 200
TIME_BUDGET_S = 60.0
#: Rounds of queries one example may need (a generation fed to another measurement…).
MAX_ROUNDS = 8


class _Found(Exception):
    """Raised inside the property to tell Hypothesis the input fails."""


@dataclass
class Found:
    first: Any  # the first failing input Hypothesis met
    minimal: Any  # the one it shrank to
    examples: int


def strategy_for(space: DataSet | Domain) -> st.SearchStrategy[Any]:
    """Inputs of a set (one integer per choice, simplest first) or points of a domain."""
    if isinstance(space, Domain):
        coords = [st.floats(lo, hi, allow_nan=False, allow_infinity=False) for lo, hi in zip(space.lower, space.upper)]
        points = st.tuples(*coords).map(lambda p: np.asarray(p, dtype=np.float64))
        if space.norm == "l2":
            center = np.asarray(space.center)
            points = points.filter(lambda p: float(np.linalg.norm(p - center)) <= space.radius)
        return points
    orders = [space.choice_order(d) for d in range(len(space.choice_sizes()))]
    dims = [st.integers(0, n - 1).map(order.__getitem__) for n, order in zip(space.choice_sizes(), orders)]
    return st.tuples(*dims).map(space.from_choices)


def search(
    space: DataSet | Domain,
    fails: Callable[[Any], bool],
    run_seed: int,
    max_examples: int = MAX_EXAMPLES,
    budget_s: float = TIME_BUDGET_S,
) -> Found | None:
    """The first and the shrunk failing input, or None when none was found in budget."""
    failing: list[Any] = []
    tried = 0
    deadline = time.monotonic() + budget_s

    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @seed(run_seed)
    @given(strategy_for(space))
    def prop(value: Any) -> None:
        nonlocal tried
        tried += 1
        if time.monotonic() > deadline and not failing:
            return  # budget spent: let Hypothesis run out quickly
        if fails(value):
            failing.append(value)
            raise _Found

    try:
        prop()
    except _Found:
        pass
    if not failing:
        return None
    return Found(failing[0], failing[-1], tried)


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
    """Search the generator a violated claim drew from for a minimal failing input."""
    probe = Probe(run)
    found = search(space, lambda item: probe.violates((item,)), run.ev.ctx.seed)
    if found is None or probe.error is not None:
        return None
    inst = probe.settle((found.minimal,))
    assert inst is not None
    example = run.describe(inst)
    example["original"] = _input(found.first)
    return example


class SearchRun(FiniteRun):
    """``forall x in S`` where S cannot be proved over: search for a counterexample."""

    method = "property-based"

    def __init__(self, claim: CheckedClaim, evaluator: Evaluator, max_examples: int = MAX_EXAMPLES) -> None:
        super().__init__(claim, evaluator)
        self.max_examples = max_examples

    def accept(self, quantifier: ast.For | ast.Forall, value: Any) -> None:
        if not isinstance(value, (DataSet, Domain)):
            raise EvalError(f"cannot search over {type(value).__name__}")

    def sampled(self) -> bool:
        return True  # a search never enumerates the space

    def advance(self) -> None:
        if not self.resolve():
            return
        assert self.sets is not None
        quantifier = self.claim.quantifiers[0]
        where = quantifier.where if isinstance(quantifier, ast.Forall) else None
        probe = Probe(self)
        found = search(self.sets[0], lambda item: probe.violates((item,), where), self.ev.ctx.seed, self.max_examples)
        if probe.error is not None:
            raise probe.error
        stats = {"n": found.examples if found else self.max_examples, "seed": self.ev.ctx.seed}
        if found is None:
            self.outcome = Outcome(
                "inconclusive", self.method,
                f"no counterexample in {self.max_examples} searched inputs; a search cannot prove the claim",
                stats,
            )
            return
        inst = probe.settle((found.minimal,))
        assert inst is not None
        example = self.describe(inst)
        example["original"] = _input(found.first)
        self.outcome = Outcome("refuted", self.method, "a counterexample was found and shrunk", stats, [example])
