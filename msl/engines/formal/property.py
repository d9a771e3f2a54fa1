"""The verification problem: an input region and an *unsafe* linear condition on the outputs.

This is the data structure shared by the VNN-LIB reader and the MSL language. A claim
``forall x in REGION: expect E(net(x))`` becomes ``Property(regions, unsafe=E.negate())``:

* the input region is a disjunction of :class:`InputRegion` (each a box ``lower <= x <= upper``
  plus optional linear constraints ``A x <= b``);
* the unsafe condition is a :class:`Condition` in disjunctive normal form over the outputs
  ``y = net(x)``: a disjunction of conjunctions of :class:`LinearConstraint` ``c . y <= d``
  (or ``< d`` when ``strict``).

Semantics: the answer is ``sat`` iff some ``x`` in some region gives ``y = net(x)`` meeting the
unsafe condition (a counterexample to the claim), ``unsat`` iff none does (the claim is proved).

Conditions are built with the helpers at the end of this module (:func:`argmax_is`,
:func:`compare`, :func:`output_bound`, :func:`linear`, ...) and combined with ``&``, ``|`` and
:meth:`Condition.negate`. Ties: :func:`argmax_is` ``(i)`` means what ``numpy.argmax`` and ONNX's
``ArgMax`` return — the *first* index of the largest output — so it requires ``y_i > y_j`` for every
earlier ``j`` and ``y_i >= y_j`` for every later one; on a tie exactly one index is the argmax, as
in the evaluator. Negation is exact: the negation of ``y_i >= y_j`` is ``y_i < y_j`` (a strict
constraint), so ``argmax_is(i).negate()`` is met exactly where numpy's argmax is not ``i``.

Numbers are float64; the solver reads each one as the exact rational of that float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from msl.errors import UsageError

#: A negation or conjunction whose DNF would exceed this many disjuncts is refused.
MAX_DISJUNCTS = 4096

_OPS = ("<=", "<", ">=", ">", "==", "!=")


@dataclass(frozen=True)
class LinearConstraint:
    """``coeffs . v <= rhs`` (``< rhs`` when ``strict``), over the inputs or the outputs."""

    coeffs: tuple[float, ...]
    rhs: float
    strict: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeffs", tuple(float(c) for c in self.coeffs))
        object.__setattr__(self, "rhs", float(self.rhs))
        if not all(math.isfinite(c) for c in self.coeffs) or not math.isfinite(self.rhs):
            raise UsageError(f"a linear constraint has a non-finite number: {self}")

    @property
    def dim(self) -> int:
        return len(self.coeffs)

    def negate(self) -> LinearConstraint:
        """``not (c.v <= d)`` is ``-c.v < -d``; ``not (c.v < d)`` is ``-c.v <= -d``."""
        return LinearConstraint(tuple(-c for c in self.coeffs), -self.rhs, not self.strict)

    def slack(self, v: np.ndarray) -> np.ndarray:
        """``rhs - coeffs . v`` for points ``v`` ((N, n) or (n,)); positive means satisfied."""
        return self.rhs - np.asarray(v, dtype=np.float64) @ np.asarray(self.coeffs)

    def scale(self, v: np.ndarray) -> np.ndarray:
        """``|rhs| + sum |c_i v_i|``: the magnitude against which a margin is judged."""
        return abs(self.rhs) + np.abs(np.asarray(v, dtype=np.float64)) @ np.abs(np.asarray(self.coeffs))

    def is_trivial(self) -> bool | None:
        """True/False when the constraint does not depend on the variables, else None."""
        if any(c != 0.0 for c in self.coeffs):
            return None
        return 0.0 < self.rhs if self.strict else 0.0 <= self.rhs

    def __str__(self) -> str:
        terms = " + ".join(f"{c:g}*v{i}" for i, c in enumerate(self.coeffs) if c != 0.0) or "0"
        return f"{terms} {'<' if self.strict else '<='} {self.rhs:g}"


Conjunction = tuple[LinearConstraint, ...]


@dataclass(frozen=True)
class Condition:
    """A linear condition in disjunctive normal form: ``OR_i AND_j constraint_ij``.

    ``Condition(())`` is false (no disjunct); ``Condition(((),))`` is true (one empty conjunction).
    """

    disjuncts: tuple[Conjunction, ...]

    def __post_init__(self) -> None:
        cleaned: list[Conjunction] = []
        for conj in self.disjuncts:
            kept: list[LinearConstraint] = []
            dead = False
            for c in conj:
                trivial = c.is_trivial()
                if trivial is False:
                    dead = True
                    break
                if trivial is None and c not in kept:
                    kept.append(c)
            if not dead and tuple(kept) not in cleaned:
                cleaned.append(tuple(kept))
        if len(cleaned) > MAX_DISJUNCTS:
            raise UsageError(f"a condition has more than {MAX_DISJUNCTS} disjuncts in normal form")
        object.__setattr__(self, "disjuncts", tuple(cleaned))

    @classmethod
    def true(cls) -> Condition:
        return cls(((),))

    @classmethod
    def false(cls) -> Condition:
        return cls(())

    @classmethod
    def of(cls, *constraints: LinearConstraint) -> Condition:
        """The conjunction of ``constraints``."""
        return cls((tuple(constraints),))

    @property
    def dims(self) -> set[int]:
        return {c.dim for conj in self.disjuncts for c in conj}

    def __and__(self, other: Condition) -> Condition:
        if len(self.disjuncts) * len(other.disjuncts) > MAX_DISJUNCTS:
            raise UsageError(f"a conjunction has more than {MAX_DISJUNCTS} disjuncts in normal form")
        return Condition(tuple(a + b for a in self.disjuncts for b in other.disjuncts))

    def __or__(self, other: Condition) -> Condition:
        return Condition(self.disjuncts + other.disjuncts)

    def negate(self) -> Condition:
        """The exact negation, in DNF (De Morgan, then distribution)."""
        result = Condition.true()
        for conj in self.disjuncts:
            result = result & Condition(tuple((c.negate(),) for c in conj))
        return result

    def holds(self, v: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether points ``v`` ((N, n)) meet the condition with every slack above ``margin``
        times the constraint's magnitude (see :meth:`LinearConstraint.scale`)."""
        pts = np.atleast_2d(np.asarray(v, dtype=np.float64))
        out = np.zeros(pts.shape[0], dtype=bool)
        for conj in self.disjuncts:
            ok = np.ones(pts.shape[0], dtype=bool)
            for c in conj:
                s = c.slack(pts)
                need = margin * (1.0 + c.scale(pts))
                ok &= (s > need) if (c.strict or margin > 0) else (s >= 0)
            out |= ok
        return out

    def __str__(self) -> str:
        if not self.disjuncts:
            return "false"
        return " or ".join("(" + (" and ".join(str(c) for c in conj) or "true") + ")" for conj in self.disjuncts)


@dataclass(frozen=True)
class InputRegion:
    """A box ``lower <= x <= upper`` intersected with linear constraints ``A x <= b``."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    constraints: tuple[LinearConstraint, ...] = field(default=())

    def __post_init__(self) -> None:
        lo = tuple(float(v) for v in self.lower)
        hi = tuple(float(v) for v in self.upper)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        if len(lo) != len(hi) or not lo:
            raise UsageError("an input box needs as many lower as upper bounds, at least one")
        for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
            if not (math.isfinite(a) and math.isfinite(b)):
                raise UsageError(f"input {i} has a non-finite bound ({a}, {b})")
            if a > b:
                raise UsageError(f"input {i} has an empty range: {a} > {b}")
        for c in self.constraints:
            if c.dim != len(lo):
                raise UsageError(f"an input constraint has {c.dim} coefficients for {len(lo)} inputs")

    @classmethod
    def box(cls, lower: Sequence[float], upper: Sequence[float]) -> InputRegion:
        return cls(tuple(lower), tuple(upper))

    @classmethod
    def linf_ball(
        cls, center: Sequence[float], eps: float, clip: tuple[float, float] | None = None
    ) -> InputRegion:
        """The L-infinity ball of radius ``eps`` around ``center``, optionally clipped to a range."""
        lo = [c - eps for c in center]
        hi = [c + eps for c in center]
        if clip is not None:
            lo = [max(v, clip[0]) for v in lo]
            hi = [min(v, clip[1]) for v in hi]
        return cls(tuple(lo), tuple(hi))

    @property
    def dim(self) -> int:
        return len(self.lower)

    def contains(self, x: np.ndarray, tol: float = 1e-4) -> bool:
        """Whether ``x`` lies in the region, each constraint met within ``tol``."""
        v = np.asarray(x, dtype=np.float64)
        if np.any(v < np.asarray(self.lower) - tol) or np.any(v > np.asarray(self.upper) + tol):
            return False
        return all(float(c.slack(v)) >= -tol for c in self.constraints)


@dataclass(frozen=True)
class Property:
    """``sat`` iff some x in some region gives net(x) meeting ``unsafe``."""

    regions: tuple[InputRegion, ...]
    unsafe: Condition
    name: str = ""

    def __post_init__(self) -> None:
        if not self.regions:
            raise UsageError("a property needs at least one input region")
        dims = {r.dim for r in self.regions}
        if len(dims) != 1:
            raise UsageError(f"input regions of a property disagree on the input size: {sorted(dims)}")
        if len(self.unsafe.dims) > 1:
            raise UsageError(f"output constraints disagree on the output size: {sorted(self.unsafe.dims)}")

    @classmethod
    def forall(cls, regions: InputRegion | Iterable[InputRegion], expect: Condition, name: str = "") -> Property:
        """The property "every x in the regions meets ``expect``": unsafe is its negation."""
        regs = (regions,) if isinstance(regions, InputRegion) else tuple(regions)
        return cls(regs, expect.negate(), name)

    @property
    def input_dim(self) -> int:
        return self.regions[0].dim

    def check_against(self, inputs: int, outputs: int) -> None:
        """Refuse a property whose sizes do not match the network's."""
        if self.input_dim != inputs:
            raise UsageError(f"the property has {self.input_dim} inputs, the network {inputs}")
        for d in self.unsafe.dims:
            if d != outputs:
                raise UsageError(f"the property constrains {d} outputs, the network has {outputs}")


# ---------------------------------------------------------------------------------------------
# Building conditions on the outputs y_0 .. y_{m-1}.


def linear(coeffs: Sequence[float], op: str, rhs: float) -> Condition:
    """``coeffs . y OP rhs`` with OP one of ``<= < >= > == !=``."""
    if op not in _OPS:
        raise UsageError(f"unknown comparison {op!r}; expected one of {', '.join(_OPS)}")
    c = tuple(float(v) for v in coeffs)
    neg = tuple(-v for v in c)
    le, lt = LinearConstraint(c, rhs), LinearConstraint(c, rhs, strict=True)
    ge, gt = LinearConstraint(neg, -rhs), LinearConstraint(neg, -rhs, strict=True)
    table = {
        "<=": Condition.of(le),
        "<": Condition.of(lt),
        ">=": Condition.of(ge),
        ">": Condition.of(gt),
        "==": Condition.of(le, ge),
        "!=": Condition.of(lt) | Condition.of(gt),
    }
    return table[op]


def _unit(m: int, i: int, sign: float = 1.0) -> list[float]:
    if not 0 <= i < m:
        raise UsageError(f"output index {i} is out of range for {m} outputs")
    v = [0.0] * m
    v[i] = sign
    return v


def output_bound(m: int, i: int, op: str, value: float) -> Condition:
    """``y_i OP value``."""
    return linear(_unit(m, i), op, value)


def compare(m: int, i: int, op: str, j: int) -> Condition:
    """``y_i OP y_j``."""
    v = _unit(m, i)
    v[j] -= 1.0
    if i == j:
        raise UsageError("comparing an output with itself")
    return linear(v, op, 0.0)


def argmax_is(m: int, i: int) -> Condition:
    """``argmax(y) == i`` with the first index winning ties: ``y_i > y_j`` before ``i``, ``>=`` after."""
    return _first_extreme(m, i, ">", ">=")


def argmin_is(m: int, i: int) -> Condition:
    """``argmin(y) == i`` with the first index winning ties: ``y_i < y_j`` before ``i``, ``<=`` after."""
    return _first_extreme(m, i, "<", "<=")


def _first_extreme(m: int, i: int, before: str, after: str) -> Condition:
    result = Condition.true()
    for j in range(m):
        if j != i:
            result = result & compare(m, i, before if j < i else after, j)
    return result


def argmax_is_not(m: int, i: int) -> Condition:
    """The negation of :func:`argmax_is`: some earlier ``y_j >= y_i`` or later ``y_j > y_i``."""
    return argmax_is(m, i).negate()


def argmin_is_not(m: int, i: int) -> Condition:
    """The negation of :func:`argmin_is`: some earlier ``y_j <= y_i`` or later ``y_j < y_i``."""
    return argmin_is(m, i).negate()
