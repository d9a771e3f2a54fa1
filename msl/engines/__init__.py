"""Engines: how a claim earns its verdict.

* :mod:`~msl.engines.finite` — every instance of a finite set is checked (exhaustive);
* :mod:`~msl.engines.statistical` — a seeded sample, with an exact interval on the
  violation rate, stopping early once the verdict is clear;
* :mod:`~msl.engines.search` — property-based search with Hypothesis over generators
  (template fills, input boxes): it can refute, never prove;
* :mod:`~msl.engines.symbolic` — piecewise-linear networks over input domains, proved or
  refuted by the formal engine (:mod:`msl.engines.formal`); what it cannot prove over,
  it searches (:class:`~msl.engines.symbolic.SearchRun`);
* :mod:`~msl.engines.refine` — ``preserves``: another spec re-checked on the refined model.

Every engine runs as a :class:`ClaimRun`: the runner steps all runs of a check together,
flushing the planner between steps, so model queries are batched across claims. Which
engine checks a claim is named by the checked claim (:func:`msl.check.engine_of`) and
looked up in :data:`ENGINES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from msl.registry import Registry
from msl.source import Span

if TYPE_CHECKING:  # the formal engine (msl vnnlib) is used without the language front end
    from msl.ir import CheckedClaim


@dataclass
class Outcome:
    """What an engine concluded about one claim (the runner turns it into a finding)."""

    verdict: str
    method: str
    message: str = ""
    statistics: dict[str, Any] = field(default_factory=dict)
    counterexamples: list[dict[str, Any]] = field(default_factory=list)
    proof: dict[str, Any] | None = None
    tables: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    error: tuple[str, Span | None] | None = None
    #: A proof certificate (:class:`msl.certify.Certificate`), saved beside the findings.
    certificate: Any = None


class ClaimRun(ABC):
    """One claim being checked; :meth:`step` advances it as far as known results allow."""

    #: How the run reaches its verdict (the finding's ``method``); each engine names its own.
    method: str

    def __init__(self, claim: CheckedClaim) -> None:
        self.claim = claim
        self.outcome: Outcome | None = None
        #: The claim's own time so far (its steps, its share of model loading and model
        #: work); the runner counts it (:meth:`msl.run.Runner.drive`).
        self.seconds = 0.0

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @abstractmethod
    def step(self) -> None:
        """Evaluate what can be evaluated now; set :attr:`outcome` when finished."""

    def fail(self, message: str, span: Span | None) -> None:
        self.outcome = Outcome("error", self.method, message, error=(message, span))


#: Verdicts from best to worst, for comparing a claim on two models.
VERDICT_ORDER = ("proved", "holds", "inconclusive", "refuted", "violated", "error")


def worse(a: str, b: str) -> bool:
    """Whether verdict ``b`` is worse than ``a`` (proved ≈ holds, refuted ≈ violated)."""
    rank = {"proved": 0, "holds": 0, "inconclusive": 1, "refuted": 2, "violated": 2, "error": 3}
    return rank[b] > rank[a]


#: The engines, by the name a checked claim carries (``CheckedClaim.engine``): each is a
#: :class:`ClaimRun` class, imported when a claim first needs it. Its constructor's
#: parameters say what it needs, out of ``claim``, ``evaluator``, ``max_examples`` (the
#: search budget) and ``runs_for`` (runs for another spec's claims, for ``preserves``).
ENGINES: Registry[Callable[..., ClaimRun]] = Registry("engine")
ENGINES.add("exhaustive", "msl.engines.finite:ExhaustiveRun")
ENGINES.add("statistical", "msl.engines.statistical:StatisticalRun")
ENGINES.add("symbolic", "msl.engines.symbolic:SymbolicRun")
ENGINES.add("preserves", "msl.engines.refine:PreservesRun")
