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

from msl.check import CheckedClaim, CheckedExpect
from msl.engines.exhaustive import FiniteRun, _value
from msl.evaluate import Aggregation, Env, Evaluator
from msl.fmt import expr as show
from msl.stats import looks, per_look_confidence, rate_verdict
from msl.values import SampleSet

#: Bootstrap resamples for an aggregate expectation.
REPLICATES = 400


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
        """An aggregate over a sample: bootstrap the condition and the aggregates' values."""
        if ce.shape != "aggregate":
            return super().judge_other(ce, result, envs)
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
        return verdict, show(cond), values
