"""The statistical engine: a claim over a seeded sample, decided with stated confidence.

Per-instance expectations give a violation rate with an exact Clopper–Pearson interval;
expectations on aggregates over the instances (``expect mean(effect(p)) >= 1``) are
bootstrapped. The sample is read in looks of growing size (32, 64, …) and the claim
stops as soon as its verdict is decided; each look is tested at the Bonferroni-corrected
confidence, so stopping early never overstates the evidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msl import ast
from msl.engines.finite import FiniteRun, _value
from msl.evaluate import Aggregation, Env, Evaluator
from msl.fmt import expr as show
from msl.ir import CheckedClaim, CheckedExpect
from msl.stats import looks, per_look_confidence, rate_verdict
from msl.values import SampleSet

#: Bootstrap resamples for an aggregate expectation.
REPLICATES = 400

#: Aggregates whose value on a sample estimates their value on the set sampled from.
ESTIMATES = frozenset({"mean", "median", "quantile", "std", "rate"})
#: Aggregates that can only grow (+1) or only shrink (−1) when instances are added: the
#: whole set's ``max`` is at least the sample's, its ``all`` at most the sample's.
EXTREMES = {"max": 1, "count": 1, "any": 1, "min": -1, "all": -1}


def witness_side(cond: ast.Expr, implicit: set[int]) -> bool | None:
    """The truth value of ``cond`` on a sample that carries over to the whole set, or
    None when neither does.

    ``max(gap(x)) >= 1`` true on a sample is true on the set (the sample's largest gap is
    one of the set's gaps); false on a sample, it says nothing. ``max(gap(x)) <= 1``
    false on a sample is false on the set; true, nothing. Only one extreme compared with
    a value that aggregates nothing (or ``any``/``all`` as the whole condition) is read.
    """
    def extreme(node: ast.Node) -> int | None:
        if isinstance(node, ast.Call) and id(node) in implicit and isinstance(node.func, ast.Name):
            return EXTREMES.get(node.func.id)
        return None

    def aggregates(node: ast.Node) -> bool:
        return any(id(n) in implicit for n in ast.walk(node))

    grows = extreme(cond)
    if grows is not None:  # any(c(x)), all(c(x))
        return grows > 0
    if not isinstance(cond, ast.Compare) or len(cond.ops) != 1 or cond.ops[0] in ("==", "!="):
        return None
    left, right = cond.operands
    rising = cond.ops[0] in (">", ">=")  # true for larger values of the left side
    if extreme(left) is not None and not aggregates(right):
        grows, up = extreme(left), rising
    elif extreme(right) is not None and not aggregates(left):
        grows, up = extreme(right), not rising
    else:
        return None
    assert grows is not None
    return (grows > 0) == up


class StatisticalRun(FiniteRun):
    method = "statistical"

    def __init__(self, claim: CheckedClaim, evaluator: Evaluator) -> None:
        super().__init__(claim, evaluator)
        self.look = 0

    def sampled(self) -> bool:
        return True

    def schedule(self) -> list[int]:
        return looks(self.size())

    def target(self) -> int:
        return self.schedule()[self.look]

    def confidence(self) -> float:
        return per_look_confidence(self.claim.confidence, len(self.schedule()))

    def rate_verdict(self, violations: int, n: int) -> str:
        return rate_verdict(violations, n, self.claim.tolerance, self.confidence(), exhaustive=False)

    def more_to_sample(self) -> bool:
        if self.look + 1 < len(self.schedule()):
            self.look += 1
            return True
        return False

    def add_sample_stats(self, stats: dict[str, Any]) -> None:
        assert self.sets is not None
        sample = self.sets[0]
        if isinstance(sample, SampleSet):
            stats["seed"] = sample.seed
        values = stats.setdefault("values", {})
        values["sample_size"] = self.size()
        values["looks"] = self.look + 1
        values["stated_confidence"] = self.claim.confidence

    def judge_other(self, ce: CheckedExpect, result: bool, envs: tuple[Env, ...]) -> tuple[str, str, dict[str, Any]]:
        """An aggregate over a sample: an estimate (``mean``, ``rate``, …) is bootstrapped;
        an extreme (``max``, ``any``, …) decides the claim only from the side a sample
        bounds it (:func:`witness_side`)."""
        if ce.shape != "aggregate":
            return super().judge_other(ce, result, envs)
        cond = ce.node.condition
        implicit = self.ev.spec.implicit_aggregates
        used = {n.func.id for n in ast.walk(cond) if isinstance(n, ast.Call) and id(n) in implicit
                and isinstance(n.func, ast.Name)}
        if used <= ESTIMATES:
            return self.bootstrap(ce, envs)
        verdict, text, values = super().judge_other(ce, result, envs)  # exact on the sample
        side = witness_side(cond, implicit)
        if side is not None and result is side:
            return verdict, text, values  # the sample's witness decides it for the whole set
        if side is None:
            why = (f"{', '.join(f'`{n}`' for n in sorted(used - ESTIMATES))} over a sample "
                   "is not an estimate of the whole set's")
        else:
            why = (f"{'true' if result else 'false'} on the {len(envs)} sampled instance(s); "
                   "a sample bounds the whole set's extreme from one side only")
        return "inconclusive", f"{text} ({why}: check the whole set)", values

    def bootstrap(self, ce: CheckedExpect, envs: tuple[Env, ...]) -> tuple[str, str, dict[str, Any]]:
        """Bootstrap the condition and the aggregates' values over the sampled instances."""
        assert self.base is not None
        cond = ce.node.condition
        calls = self.aggregate_calls(ce)
        rng = self.ev.ctx.rng("bootstrap", self.claim.name, show(cond), len(envs))
        memo: dict[tuple[int, int], Any] = {}
        hits, draws = 0, {show(c): [] for c in calls}
        for _ in range(REPLICATES):
            resample = Aggregation(tuple(envs[rng.randrange(len(envs))] for _ in envs), memo)
            hits += bool(self.ev.eval(cond, self.base, (), resample))
            for c in calls:
                draws[show(c)].append(float(self.ev.eval(c, self.base, (), resample)))
        support = hits / REPLICATES
        confidence = self.confidence()
        verdict = "holds" if support >= confidence else "violated" if support <= 1 - confidence else "inconclusive"
        full = Aggregation(envs, memo)
        values: dict[str, Any] = {f"{show(cond)} bootstrap_support": support}
        alpha = 1 - confidence
        for c in calls:
            key = show(c)
            values[key] = _value(self.ev.eval(c, self.base, (), full))
            values[f"{key} ci_low"] = float(np.quantile(draws[key], alpha / 2))
            values[f"{key} ci_high"] = float(np.quantile(draws[key], 1 - alpha / 2))
            self.interval_methods[key] = "bootstrap-percentile"
        return verdict, show(cond), values
