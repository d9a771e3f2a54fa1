"""Arithmetic, aggregates, per-layer series and text helpers.

Aggregates (``mean``, ``rate``, ``quantile``, …) take their values from a generator
(``mean(effect(p) for p in prompts)``), from a collection, or — inside a claim with a
``for`` clause — from every instance of the claim (``expect mean(effect(p)) >= 1``).
Either way the body receives a plain list of evaluated values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from msl.builtins import builtin
from msl.values import (
    MAX_ENUMERATION,
    Context,
    DataSet,
    Distribution,
    EvalError,
    ListSet,
    Series,
    as_text,
    as_vector,
    set_size,
)


def numbers(values: Any, what: str) -> list[float]:
    """The values of a collection as floats; a non-number is an evaluation error."""
    if isinstance(values, Series):
        values = values.values
    elif isinstance(values, DataSet):
        values = list(values)
    elif isinstance(values, np.ndarray):
        values = values.ravel().tolist()
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise EvalError(f"{what} expects numbers, got {v!r}")
        out.append(float(v))
    return out


def _nonempty(values: Sequence[Any], what: str) -> None:
    if not values:
        raise EvalError(f"{what} of an empty set is undefined")


def _collection(args: tuple[Any, ...]) -> Any:
    """``max(a, b, c)`` or ``max(values)``: the values either way.

    With one argument, the evaluator has already made it the values to aggregate (a
    generator's, a collection's elements, or the claim's instances), as for ``mean``.
    """
    if len(args) == 1 and isinstance(args[0], (list, tuple, np.ndarray, Series, DataSet)):
        return args[0]
    return list(args)


# ── Arithmetic ───────────────────────────────────────────────────────────────────────────


@builtin("abs(x: any) -> $x", bounds=(0, None))
def abs_(ctx: Context, x: Any) -> Any:
    """Absolute value; element-wise on a vector."""
    return np.abs(x) if isinstance(x, np.ndarray) else abs(x)


@builtin("min(*values: agg[number]) -> number")
def min_(ctx: Context, values: tuple[Any, ...]) -> float:
    """The smallest of several numbers, or with one argument an aggregate like ``mean``:
    the smallest element of a collection or generator, or — inside a ``for`` claim — the
    smallest of a per-instance number over the claim's instances."""
    items = numbers(_collection(values), "min")
    _nonempty(items, "min")
    return min(items)


@builtin("max(*values: agg[number]) -> number")
def max_(ctx: Context, values: tuple[Any, ...]) -> float:
    """The largest of several numbers, or with one argument an aggregate like ``mean``:
    the largest element of a collection or generator, or — inside a ``for`` claim — the
    largest of a per-instance number over the claim's instances.

    ``max(abs(refined(x) - base(x)))`` is the L∞ distance of two networks' outputs (a
    vector's elements); ``max(abs(s(x) - s(swap(x))))`` of one number per instance is the
    largest gap over the instances.
    """
    items = numbers(_collection(values), "max")
    _nonempty(items, "max")
    return max(items)


@builtin("exp(x: number) -> number", bounds=(0, None))
def exp(ctx: Context, x: float) -> float:
    """e to the power x (probabilities from log-probabilities)."""
    try:
        return math.exp(x)
    except OverflowError:
        raise EvalError(f"exp({x}) overflows") from None


@builtin("log(x: number) -> number")
def log(ctx: Context, x: float) -> float:
    """Natural logarithm."""
    if x <= 0:
        raise EvalError(f"log of a non-positive number ({x})")
    return math.log(x)


@builtin("sqrt(x: number) -> number", bounds=(0, None))
def sqrt(ctx: Context, x: float) -> float:
    """Square root."""
    if x < 0:
        raise EvalError(f"square root of a negative number ({x})")
    return math.sqrt(x)


@builtin("len(x: any) -> number", bounds=(0, None))
def len_(ctx: Context, x: Any) -> int:
    """Number of elements of a set or vector, or of characters of a text."""
    if isinstance(x, (DataSet, np.ndarray, list, tuple, Series)):
        return len(x.values) if isinstance(x, Series) else len(x)
    return len(as_text(x))


def _range_problem(start: Any, stop: Any, step: Any) -> str | None:
    """What is wrong with a range's bounds, or None: whole numbers, a step that is not
    zero, and at most :data:`MAX_ENUMERATION` numbers (a range is built in memory)."""
    if any(isinstance(v, bool) or float(v) != int(v) for v in (start, stop, step)) or step == 0:
        return "range takes integers and a non-zero step"
    count = set_size(int(start), int(stop), int(step))
    if count > MAX_ENUMERATION:
        return f"this range has {count:,} numbers; a set has at most {MAX_ENUMERATION:,}"
    return None


def _check_range(args: dict[str, Any], types: dict[str, Any], report: Any) -> None:
    from msl.builtins.data import literal

    if "start" not in args or "stop" not in args:
        return
    values = [literal(args["start"]), literal(args["stop"]), literal(args["step"]) if "step" in args else 1]
    if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        problem = _range_problem(*values)
        if problem is not None:
            first, last = args["start"], args.get("step", args["stop"])
            report(problem, first.span.to(last.span), "draw a sample of a larger set: sample(S, 500)")


@builtin("range(start: number, stop: number, step: number = 1) -> set[number]", validate=_check_range)
def range_(ctx: Context, start: float, stop: float, step: float = 1) -> ListSet:
    """The integers from start up to, not including, stop: ``range(0, 30, 3)``."""
    problem = _range_problem(start, stop, step)
    if problem is not None:
        raise EvalError(problem)
    return ListSet(tuple(range(int(start), int(stop), int(step))), f"range({start}, {stop}, {step})")


# ── Vectors and distributions ────────────────────────────────────────────────────────────


@builtin("argmax(values: any) -> number")
def argmax(ctx: Context, values: Any) -> int:
    """Index of the largest element (the first on ties); for a series, its layer."""
    if isinstance(values, Series):
        return values.layers[int(np.argmax(numbers(values, "argmax")))]
    return int(np.argmax(as_vector(values, "argmax")))


@builtin("argmin(values: any) -> number")
def argmin(ctx: Context, values: Any) -> int:
    """Index of the smallest element (the first on ties); for a series, its layer."""
    if isinstance(values, Series):
        return values.layers[int(np.argmin(numbers(values, "argmin")))]
    return int(np.argmin(as_vector(values, "argmin")))


@builtin("cosine(a: vector, b: vector) -> number", bounds=(-1, 1))
def cosine(ctx: Context, a: Any, b: Any) -> float:
    """Cosine similarity of two vectors (embeddings)."""
    x, y = as_vector(a, "cosine"), as_vector(b, "cosine")
    if x.shape != y.shape:
        raise EvalError(f"cosine of vectors of different sizes ({x.size} and {y.size})")
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    if denom == 0.0:
        raise EvalError("cosine of a zero vector is undefined")
    return float(x @ y) / denom


@builtin("norm(v: vector) -> number", bounds=(0, None))
def norm(ctx: Context, v: Any) -> float:
    """Euclidean (L2) norm of a vector."""
    return float(np.linalg.norm(as_vector(v, "norm")))


@builtin("kl(p: dist, q: dist) -> number", bounds=(0, None))
def kl(ctx: Context, p: Distribution, q: Distribution) -> float:
    """KL(p ‖ q) in nats between two distributions (next-token, or classes)."""
    lp, lq = np.asarray(p.logprobs, np.float64), np.asarray(q.logprobs, np.float64)
    if lp.shape != lq.shape:
        raise EvalError("kl of distributions over different outcomes")
    return float(np.sum(np.exp(lp) * (lp - lq)))


# ── Aggregates ───────────────────────────────────────────────────────────────────────────


@builtin("mean(values: agg[number]) -> number")
def mean(ctx: Context, values: list[Any]) -> float:
    """Arithmetic mean."""
    items = numbers(values, "mean")
    _nonempty(items, "mean")
    return math.fsum(items) / len(items)


@builtin("sum(values: agg[number]) -> number")
def sum_(ctx: Context, values: list[Any]) -> float:
    """Sum."""
    return math.fsum(numbers(values, "sum"))


@builtin("std(values: agg[number]) -> number")
def std(ctx: Context, values: list[Any]) -> float:
    """Sample standard deviation (n − 1 in the denominator)."""
    items = numbers(values, "std")
    if len(items) < 2:
        raise EvalError("std needs at least two values")
    return float(np.std(items, ddof=1))


@builtin("quantile(values: agg[number], q: number) -> number")
def quantile(ctx: Context, values: list[Any], q: float) -> float:
    """The q-quantile (linear interpolation), e.g. ``quantile(kl(...), 90%)``."""
    items = numbers(values, "quantile")
    _nonempty(items, "quantile")
    if not 0 <= q <= 1:
        raise EvalError(f"quantile level must be in [0, 1], got {q}")
    return float(np.quantile(items, q))


@builtin("median(values: agg[number]) -> number")
def median(ctx: Context, values: list[Any]) -> float:
    """The median."""
    items = numbers(values, "median")
    _nonempty(items, "median")
    return float(np.median(items))


def _conditions(values: list[Any], what: str) -> list[bool]:
    for v in values:
        if not isinstance(v, (bool, np.bool_)):
            raise EvalError(f"{what} expects conditions, got {v!r}")
    return [bool(v) for v in values]


@builtin("rate(conditions: agg[bool]) -> number", bounds=(0, 1))
def rate(ctx: Context, conditions: list[Any]) -> float:
    """Fraction of the conditions that are true (agreement, efficacy, accuracy)."""
    items = _conditions(conditions, "rate")
    _nonempty(items, "rate")
    return sum(items) / len(items)


@builtin("count(conditions: agg[bool]) -> number", bounds=(0, None))
def count(ctx: Context, conditions: list[Any]) -> int:
    """Number of the conditions that are true."""
    return sum(_conditions(conditions, "count"))


@builtin("all(conditions: agg[bool]) -> bool")
def all_(ctx: Context, conditions: list[Any]) -> bool:
    """Whether every condition is true."""
    return all(_conditions(conditions, "all"))


@builtin("any(conditions: agg[bool]) -> bool")
def any_(ctx: Context, conditions: list[Any]) -> bool:
    """Whether at least one condition is true."""
    return any(_conditions(conditions, "any"))


def _monotone(values: list[Any], what: str, ok: Any) -> bool:
    items = numbers(values, what)
    if len(items) < 2:
        raise EvalError(f"{what} needs at least two values")
    return all(ok(a, b) for a, b in zip(items, items[1:], strict=False))


@builtin("increasing(values: agg[number]) -> bool")
def increasing(ctx: Context, values: list[Any]) -> bool:
    """Strictly increasing in order: a dose–response that rises with every step."""
    return _monotone(values, "increasing", lambda a, b: b > a)


@builtin("decreasing(values: agg[number]) -> bool")
def decreasing(ctx: Context, values: list[Any]) -> bool:
    """Strictly decreasing in order."""
    return _monotone(values, "decreasing", lambda a, b: b < a)


@builtin("nondecreasing(values: agg[number]) -> bool")
def nondecreasing(ctx: Context, values: list[Any]) -> bool:
    """Never decreasing in order (ties allowed)."""
    return _monotone(values, "nondecreasing", lambda a, b: b >= a)


@builtin("nonincreasing(values: agg[number]) -> bool")
def nonincreasing(ctx: Context, values: list[Any]) -> bool:
    """Never increasing in order (ties allowed)."""
    return _monotone(values, "nonincreasing", lambda a, b: b <= a)


# ── Series ───────────────────────────────────────────────────────────────────────────────


@builtin("first(conditions: series[bool]) -> number")
def first(ctx: Context, conditions: Series) -> float:
    """The first layer where a per-layer condition holds (infinity if none does).

    ``first(acc >= 0.8) <= 12``: the probe reaches 0.8 by layer 12.
    """
    for layer, ok in zip(conditions.layers, conditions.values, strict=True):
        if ok:
            return float(layer)
    return math.inf


@builtin("layer(values: series[any], index: number) -> any")
def layer(ctx: Context, values: Series, index: float) -> Any:
    """The value of a per-layer series at one layer."""
    if index not in values.layers:
        raise EvalError(f"the series has no layer {index} (layers {values.layers[0]}–{values.layers[-1]})")
    return values.values[values.layers.index(int(index))]


# ── Text ─────────────────────────────────────────────────────────────────────────────────


@builtin("text(x: text) -> str")
def text(ctx: Context, x: Any) -> str:
    """The text of an input (a record's `text` field)."""
    return as_text(x)


@builtin("contains(x: text, part: str) -> bool")
def contains(ctx: Context, x: Any, part: str) -> bool:
    """Whether the text contains ``part`` (case-sensitive)."""
    return part in as_text(x)


@builtin("lower(x: text) -> str")
def lower(ctx: Context, x: Any) -> str:
    """The text in lower case."""
    return as_text(x).lower()


@builtin("strip(x: text) -> str")
def strip(ctx: Context, x: Any) -> str:
    """The text without leading and trailing white space (`" Paris"` → `"Paris"`)."""
    return as_text(x).strip()


@builtin("ngram_entropy(x: text, n: number = 2) -> number", bounds=(0, None))
def ngram_entropy(ctx: Context, x: Any, n: float = 2) -> float:
    """Entropy (bits) of the word n-gram distribution of a text: low for repetitive text.

    The fluency measure of model-editing work: a degenerate model repeats itself.
    """
    words = as_text(x).split()
    k = int(n)
    grams = Counter(tuple(words[i : i + k]) for i in range(max(0, len(words) - k + 1)))
    total = sum(grams.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in grams.values())
