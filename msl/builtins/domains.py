"""Domains of ``forall`` claims over network inputs: boxes and norm balls.

Linear constraints on the inputs go in the claim's ``where`` clause. Over these domains
the formal engine proves or refutes; elsewhere a claim is searched, never proved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


from msl.builtins import builtin
from msl.values import Context, EvalError, as_vector


@dataclass(frozen=True)
class Domain:
    """A box ``lower ≤ x ≤ upper``, or a ball of ``radius`` around ``center`` (norm "linf"/"l2")."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    norm: str = "box"
    center: tuple[float, ...] = ()
    radius: float = 0.0

    @property
    def dims(self) -> int:
        return len(self.lower)


def _point(values: Any, what: str) -> tuple[float, ...]:
    return tuple(float(v) for v in as_vector(values, what))


@builtin("box(lower: vector, upper: vector) -> domain")
def box(ctx: Context, lower: Any, upper: Any) -> Domain:
    """All points with ``lower[i] <= x[i] <= upper[i]``."""
    lo, hi = _point(lower, "box lower"), _point(upper, "box upper")
    if len(lo) != len(hi):
        raise EvalError(f"box bounds have different sizes ({len(lo)} and {len(hi)})")
    if any(a > b for a, b in zip(lo, hi)):
        raise EvalError("box: a lower bound is above its upper bound")
    return Domain(lo, hi)


@builtin("linf_ball(center: vector, radius: number) -> domain")
def linf_ball(ctx: Context, center: Any, radius: float) -> Domain:
    """All points within ``radius`` of ``center`` in every coordinate (L∞)."""
    c = _point(center, "linf_ball center")
    if radius < 0:
        raise EvalError("a ball's radius must be ≥ 0")
    return Domain(tuple(v - radius for v in c), tuple(v + radius for v in c), "linf", c, float(radius))


@builtin("l2_ball(center: vector, radius: number) -> domain")
def l2_ball(ctx: Context, center: Any, radius: float) -> Domain:
    """All points within Euclidean distance ``radius`` of ``center``. The formal engine
    proves a claim on the ball's enclosing box (which covers the ball); short of that
    proof, the ball itself is searched, so a counterexample always lies in the ball."""
    c = _point(center, "l2_ball center")
    if radius < 0:
        raise EvalError("a ball's radius must be ≥ 0")
    return Domain(tuple(v - radius for v in c), tuple(v + radius for v in c), "l2", c, float(radius))
