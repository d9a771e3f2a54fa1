"""Refine: "spec S still holds on the refined model" — and which of its claims got worse.

A ``preserves "core.msl" role lm`` claim runs every claim of ``core.msl`` twice, with
``lm`` bound to the claim's ``base`` and to its ``refined`` model (either may be a model
under an intervention), alongside every other claim of the check so that their queries
share batches. It holds when no claim's verdict is worse on refined than on base, and the
finding names exactly the claims that got worse (and those that got better: a refinement's
goal is often one of them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from msl import ast
from msl.engines import ClaimRun, Outcome, worse
from msl.evaluate import EMPTY, Evaluator
from msl.ir import CheckedSpec
from msl.plan import PENDING
from msl.values import EvalError, ModelHandle

if TYPE_CHECKING:
    from msl.ir import CheckedClaim

#: Runs for claims of a spec, with some of its roles bound to given models (the runner's
#: ``runs_for``): a preserved spec's claims run alongside every other claim of the check.
RunsFor = Callable[[CheckedSpec, "list[CheckedClaim]", dict[str, ModelHandle]], list[ClaimRun]]


class PreservesRun(ClaimRun):
    method = "exhaustive"

    def __init__(self, claim: CheckedClaim, evaluator: Evaluator, runs_for: RunsFor) -> None:
        super().__init__(claim)
        self.ev = evaluator
        self.runs_for = runs_for
        self.children: list[tuple[ast.Preserves, CheckedSpec, list[ClaimRun], list[ClaimRun]]] | None = None

    def step(self) -> None:
        try:
            if self.children is None and not self.start():
                return
            assert self.children is not None
            for _, _, base_runs, refined_runs in self.children:
                for run in base_runs + refined_runs:
                    if not run.done:
                        run.step()
            if all(r.done for _, _, b, r in self.children for r in b + r):
                self.conclude()
        except EvalError as exc:
            self.fail(exc.message, exc.span)

    def start(self) -> bool:
        roles = {}
        for stmt in self.claim.claim.statements(ast.RoleBinding):
            assert isinstance(stmt, ast.RoleBinding)
            value = self.ev.eval(stmt.value, EMPTY)
            if value is PENDING:
                return False
            if not isinstance(value, ModelHandle):
                raise EvalError(f"`{stmt.role}` is not a model", stmt.value.span)
            roles[stmt.role] = value
        children = []
        for stmt in self.claim.claim.statements(ast.Preserves):
            assert isinstance(stmt, ast.Preserves)
            spec = self.ev.spec.preserved[stmt.path]
            role = stmt.role or next(n for n, m in spec.roles.items() if m.kind == roles["base"].kind)
            pair = [
                self.runs_for(spec, spec.claims, {role: _rebound(roles[which], role)})
                for which in ("base", "refined")
            ]
            children.append((stmt, spec, pair[0], pair[1]))
        self.children = children
        return True

    def conclude(self) -> None:
        assert self.children is not None
        rows, worse_claims, better_claims, examples = [], [], [], []
        for stmt, _, base_runs, refined_runs in self.children:
            for before, after in zip(base_runs, refined_runs, strict=True):
                assert before.outcome is not None and after.outcome is not None
                b, a = before.outcome.verdict, after.outcome.verdict
                name = f"{stmt.path}:{before.claim.name}"
                change = "worse" if worse(b, a) else "better" if worse(a, b) else ""
                rows.append([name, b, a, change])
                if change == "worse":
                    worse_claims.append(name)
                    # The evidence: what broke, as the claim's own run on refined found it.
                    examples += [{**c, "values": {"claim": name, **c.get("values", {})}}
                                 for c in after.outcome.counterexamples[:1]]
                elif change == "better":
                    better_claims.append(name)
        n = len(rows)
        verdict = "violated" if worse_claims else "holds"
        message = (
            f"worse on refined: {', '.join(worse_claims)}" if worse_claims
            else f"none of {n} claim(s) got worse on refined"
        )
        if better_claims:  # a refinement's goal is often a claim that gets better: say so too
            message += f"; better on refined: {', '.join(better_claims)}"
        self.outcome = Outcome(
            verdict, self.method, message,
            statistics={"n": n, "violations": len(worse_claims), "rate": len(worse_claims) / n if n else 0.0,
                        "tolerance": 0.0},
            counterexamples=examples,
            tables=[{"title": "verdicts on base and refined", "columns": ["claim", "base", "refined", ""],
                     "rows": rows}],
        )


def _rebound(handle: ModelHandle, role: str) -> ModelHandle:
    """The same model (and intervention) under the preserved spec's role name."""
    return ModelHandle(role, handle.kind, handle.model, handle.fingerprint, handle.intervention)
