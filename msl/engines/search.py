"""Property-based search with Hypothesis: find failing inputs, and shrink them.

Inputs come from generators — template fills (one choice per slot, shrinking toward the
shortest fill), perturbations applied to them, and points of an input box. A search can
refute a claim (its counterexample has been run through the real model) or spend its
budget and leave it inconclusive; it never proves anything.

The search is deterministic for a given ``--seed``, on any machine: its budgets are
counted in work, never in seconds. Hypothesis generates at most ``max_examples`` inputs
(:data:`MAX_EXAMPLES`), and once one fails, shrinking may run at most
:data:`MAX_SHRINK_EXAMPLES` further inputs through the model; after that, an input
shrinking has not run yet counts as passing (inputs it has run keep their answer), so
Hypothesis ends where the budget left it. Hypothesis's own time limit on shrinking (five
minutes) is lifted for the search, its deadline and health checks are off, and nothing is
stored between runs. A wall-clock limit (:data:`WALL_CLOCK_LIMIT_S`) remains only as a
safety net: a search it stops ends its claim ``inconclusive``, saying so, with no evidence
that depends on how far it got. Hypothesis runs the property one input at a time, so each
example's queries are run at once (the planner still caches them).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from msl.builtins.domains import Domain
from msl.values import ConcatSet, DataSet, SampleSet

#: Inputs Hypothesis generates per search.
MAX_EXAMPLES = 200
#: Inputs shrinking may run through the model once a failing one is found.
MAX_SHRINK_EXAMPLES = 500
#: Seconds after which a search stops whatever it has found: a safety net far beyond what
#: the work budgets take, never a budget (its claim becomes ``inconclusive``).
WALL_CLOCK_LIMIT_S = 1800.0


class _Found(Exception):
    """Raised inside the property to tell Hypothesis the input fails."""


class _Stop(BaseException):
    """Raised inside the property to end the search at once. Hypothesis takes every
    ``Exception`` for a failure of the property (and shrinks it); a ``BaseException``
    goes through it, as a ``KeyboardInterrupt`` would."""


class WallClockLimit(Exception):
    """A search stopped by the wall-clock safety net after ``examples`` inputs."""

    def __init__(self, limit_s: float, examples: int) -> None:
        super().__init__(f"stopped by the wall-clock limit of {limit_s:g} s after {examples} inputs")
        self.limit_s = limit_s
        self.examples = examples


@dataclass
class Found:
    first: Any  # the first failing input Hypothesis met
    minimal: Any  # the one it shrank to
    examples: int  # inputs run through the model, generating and shrinking


Space = tuple[st.SearchStrategy[Hashable], Callable[[Any], Any]]


def _space(space: DataSet | Domain) -> Space:
    """A strategy of hashable keys (one integer per choice, simplest first, or a point's
    coordinates) and the function from a key to the input it stands for. Keys let the
    search remember every input it has run."""
    if isinstance(space, Domain):
        keys: st.SearchStrategy[Any] = st.tuples(
            *(
                st.floats(lo, hi, allow_nan=False, allow_infinity=False)
                for lo, hi in zip(space.lower, space.upper, strict=True)
            )
        )
        if space.norm == "l2":
            center = np.asarray(space.center)
            keys = keys.filter(lambda p: float(np.linalg.norm(np.asarray(p) - center)) <= space.radius)
        return keys, lambda p: np.asarray(p, dtype=np.float64)
    if isinstance(space, SampleSet):
        return _space(space.base)  # search the whole space the sample came from
    if isinstance(space, ConcatSet):
        parts = [_space(part) for part in space.parts]
        tagged = st.one_of([st.tuples(st.just(i), part_keys) for i, (part_keys, _) in enumerate(parts)])
        return tagged, lambda key: parts[key[0]][1](key[1])
    orders = [space.choice_order(d) for d in range(len(space.choice_sizes()))]
    dims = [st.integers(0, n - 1).map(order.__getitem__) for n, order in zip(space.choice_sizes(), orders, strict=True)]
    return st.tuples(*dims), space.from_choices


@contextlib.contextmanager
def _shrinking_without_time_limit() -> Iterator[None]:
    """Lift Hypothesis's wall-clock limit on shrinking (``MAX_SHRINKING_SECONDS``, five
    minutes, which Hypothesis documents as monkeypatchable): where shrinking ends must not
    depend on the machine's speed; :data:`MAX_SHRINK_EXAMPLES` bounds it instead."""
    from hypothesis.internal.conjecture import engine

    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if saved is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = math.inf  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


def search(
    space: DataSet | Domain,
    fails: Callable[[Any], bool],
    run_seed: int,
    max_examples: int = MAX_EXAMPLES,
    *,
    shrink_examples: int = MAX_SHRINK_EXAMPLES,
    wall_clock_s: float | None = None,
) -> Found | int:
    """The first and the shrunk failing input, or the number of inputs run when none failed.

    Raises :class:`WallClockLimit` when ``wall_clock_s`` is given and the search runs longer.
    """
    keys, decode = _space(space)
    answers: dict[str, bool] = {}  # by repr: 0.0 and -0.0 are two inputs
    failing: list[Any] = []
    run = shrinking = 0
    started = time.monotonic()

    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @seed(run_seed)
    @given(keys)
    def prop(key: Hashable) -> None:
        nonlocal run, shrinking
        tag = repr(key)
        if tag not in answers:
            if failing and shrinking >= shrink_examples:
                return  # shrinking's budget is spent: what it has not run yet passes
            if wall_clock_s is not None and time.monotonic() - started > wall_clock_s:
                raise _Stop
            run += 1
            shrinking += bool(failing)
            answers[tag] = fails(decode(key))
        if answers[tag]:
            failing.append(decode(key))
            raise _Found

    with _shrinking_without_time_limit():
        try:
            prop()
        except _Found:
            pass
        except _Stop:
            raise WallClockLimit(wall_clock_s or 0.0, run) from None
    return Found(failing[0], failing[-1], run) if failing else run
