"""Domains of ``forall`` claims over network inputs: boxes and norm balls.

Linear constraints on the inputs go in the claim's ``where`` clause. Over these domains
the formal engine proves or refutes; elsewhere a claim is searched, never proved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msl import ast
from msl.builtins import builtin
from msl.builtins.data import Report, literal
from msl.types import Type
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


def _numbers(node: ast.Expr | None) -> list[float] | None:
    """The numbers of a literal list argument, else None (checked when the claim runs)."""
    value = literal(node)
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _check_box(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    """A box that contains no point is a spec error, found before anything runs."""
    lo, hi = _numbers(args.get("lower")), _numbers(args.get("upper"))
    for bound, node in ((lo, args.get("lower")), (hi, args.get("upper"))):
        if bound == [] and node is not None:
            report("a box needs at least one dimension", node.span)
            return
    if lo is None or hi is None:
        return
    if len(lo) != len(hi):
        report(f"box bounds have different sizes ({len(lo)} and {len(hi)})", args["upper"].span)
    elif any(a > b for a, b in zip(lo, hi, strict=True)):
        i = next(i for i, (a, b) in enumerate(zip(lo, hi, strict=True)) if a > b)
        report(f"the box is empty: lower[{i}] = {lo[i]:g} is above upper[{i}] = {hi[i]:g}", args["lower"].span)


def _check_ball(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    radius = literal(args.get("radius"))
    if isinstance(radius, (int, float)) and radius < 0:
        report("a ball's radius must be ≥ 0", args["radius"].span)
    if _numbers(args.get("center")) == []:
        report("a ball needs at least one dimension", args["center"].span)


@builtin("box(lower: vector, upper: vector) -> domain", validate=_check_box)
def box(ctx: Context, lower: Any, upper: Any) -> Domain:
    """All points with ``lower[i] <= x[i] <= upper[i]``."""
    lo, hi = _point(lower, "box lower"), _point(upper, "box upper")
    if len(lo) != len(hi):
        raise EvalError(f"box bounds have different sizes ({len(lo)} and {len(hi)})")
    if any(a > b for a, b in zip(lo, hi, strict=True)):
        raise EvalError("box: a lower bound is above its upper bound")
    return Domain(lo, hi)


@builtin("linf_ball(center: vector, radius: number) -> domain", validate=_check_ball)
def linf_ball(ctx: Context, center: Any, radius: float) -> Domain:
    """All points within ``radius`` of ``center`` in every coordinate (L∞)."""
    c = _point(center, "linf_ball center")
    if radius < 0:
        raise EvalError("a ball's radius must be ≥ 0")
    return Domain(tuple(v - radius for v in c), tuple(v + radius for v in c), "linf", c, float(radius))


@builtin("l2_ball(center: vector, radius: number) -> domain", validate=_check_ball)
def l2_ball(ctx: Context, center: Any, radius: float) -> Domain:
    """All points within Euclidean distance ``radius`` of ``center``. The formal engine
    proves a claim on the ball's enclosing box (which covers the ball); short of that
    proof, the ball itself is searched, so a counterexample always lies in the ball."""
    c = _point(center, "l2_ball center")
    if radius < 0:
        raise EvalError("a ball's radius must be ≥ 0")
    return Domain(tuple(v - radius for v in c), tuple(v + radius for v in c), "l2", c, float(radius))
