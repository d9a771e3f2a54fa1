"""``verify(net, prop, timeout)``: the formal engine's entry point.

The order is the one the fast verifiers share: falsify first (random sampling, then PGD), then
branch and bound by input splitting with symbolic/back-substituted bounds, and z3 over exact
rationals on the boxes the bounds leave open. Networks with many inputs (an image) on plain boxes
are searched by ReLU splitting with optimised linear bounds instead
(:mod:`msl.engines.formal.neurons`), since bisecting one input of hundreds barely moves a bound. A
``sat`` answer always carries a witness that
passed :func:`msl.engines.formal.witness.confirm` (replayed through the original model); an
``unsat`` answer holds for the network as it executes in float32, in any summation order: on
every box of the branch and bound each unsafe constraint is proved with the margin of
:mod:`msl.engines.formal.rounding` (see :mod:`msl.engines.formal.bounds` for the float64 margins of
the bounds themselves).
A domain that is empty is never "proved": it is answered ``unknown``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from msl.engines.formal.bab import InputSplitSearch, SearchOutcome, SearchStats, WorkBudget
from msl.engines.formal.bounds import SpecBounder
from msl.engines.formal.crosscheck import bounding_box, crosscheck
from msl.engines.formal.falsify import SpecRows, falsify
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.neurons import NeuronSplitSearch, prefers_neuron_split
from msl.engines.formal.pieces import quiet_highs
from msl.engines.formal.property import InputRegion, Property
from msl.engines.formal.runtime import fast_numpy
from msl.engines.formal.smt import LeafSolver
from msl.engines.formal.witness import WITNESS_REL_MARGIN, Witness, confirm

Status = Literal["sat", "unsat", "unknown", "timeout"]
BounderFactory = Callable[[np.ndarray, np.ndarray], SpecBounder]

#: Relative slack added to the unsafe constraints of exact queries on a network whose
#: parameters were folded in floating point (``PLNetwork.exact`` is False).
INEXACT_SLACK = 1e-7

SOLVER = "msl input-split branch and bound (numpy bounds), HiGHS LPs with checked certificates, z3 on exact leaves"

#: Input values sampled at most per falsification round (8 M: 64 MB of float64, whatever the
#: input size; 100,000 samples of a 784-pixel image would take 630 MB and more in the forward pass).
FALSIFY_VALUES = 8_000_000

#: Seconds of branch and bound before the second falsification round (then doubling).
FIRST_SLICE = 1.0

METHOD = (
    "falsification (random + PGD), then input-split branch and bound (symbolic-interval and"
    " back-substituted linear bounds); exact leaves: linear pieces by LP with checked"
    " certificates, z3 over exact rationals"
)

NEURON_SOLVER = "msl neuron-split branch and bound (torch, optimised linear bounds)"
NEURON_METHOD = (
    "falsification (random + PGD), then branch and bound by ReLU splitting with back-substituted"
    " linear bounds, lower slopes and split multipliers optimised by gradient (alpha, beta)"
)


@dataclass(frozen=True)
class FormalResult:
    """The answer of the formal engine.

    ``status``: ``sat`` (a counterexample exists: ``witness_x`` is it, ``witness_y`` the
    original model's outputs on it), ``unsat`` (proved: no input in the region meets the unsafe
    condition), ``unknown`` (the procedure ended undecided) or ``timeout``. ``stats`` holds the
    method, solver, branch counts, z3 leaves and encoding sizes, and times.
    """

    status: Status
    witness_x: tuple[float, ...] | None = None
    witness_y: tuple[float, ...] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: With ``verify(..., record=True)`` and an ``unsat``: the search's split tree and evidence
    #: (a :class:`~msl.engines.formal.certificate.TreeRecorder`, None when no search ran) and
    #: the regions it covered, for :func:`msl.engines.formal.certificate.build`.
    proof_tree: tuple[Any, tuple[InputRegion, ...]] | None = None

    @property
    def proved(self) -> bool:
        return self.status == "unsat"

    @property
    def refuted(self) -> bool:
        return self.status == "sat"


def solver_version() -> str:
    import z3

    return f"z3 {z3.get_version_string()}"


def verify(
    net: PLNetwork,
    prop: Property,
    timeout: float = 60.0,
    seed: int = 0,
    bounder: BounderFactory | None = None,
    witness_margin: float = WITNESS_REL_MARGIN,
    work: WorkBudget | None = None,
    record: bool = False,
    device: str = "cpu",
) -> FormalResult:
    """Decide whether some input of ``prop.regions`` drives ``net`` into ``prop.unsafe``.

    Runs under :func:`msl.engines.formal.runtime.fast_numpy` (single-threaded BLAS).
    ``bounder`` builds the bound computation for the spec rows ``(matrix, offset)`` when the
    default (:class:`~msl.engines.formal.bounds.SpecBounder` on ``net``) can be bettered, as
    for the product networks of :mod:`msl.engines.formal.equivalence`. ``witness_margin`` is
    how far inside the unsafe set the original model's outputs must be for a witness (see
    :func:`~msl.engines.formal.witness.confirm`): VNN-COMP's rule by default; 0 to judge the
    outputs exactly as the evaluator does (an exact tie is then a counterexample to ``>``).

    Without ``work`` the search is sliced by time, as in a competition (``timeout`` is the
    budget). With ``work`` every budget that decides the answer is counted in work (boxes,
    samples, z3 resource units), so the answer is the same on any machine; ``timeout`` is then
    only a safety net, whose ``timeout`` status says that the wall clock stopped the run.

    ``record`` keeps what a proof certificate needs (:attr:`FormalResult.proof_tree`).
    Networks with many inputs are searched by neuron splitting
    (:mod:`msl.engines.formal.neurons`, torch on ``device``), the others by input splitting.
    """
    with fast_numpy():
        return _verify(net, prop, timeout, seed, bounder, witness_margin, work, record, device)


def _verify(
    net: PLNetwork,
    prop: Property,
    timeout: float,
    seed: int,
    bounder: BounderFactory | None,
    witness_margin: float,
    work: WorkBudget | None,
    record: bool,
    device: str,
) -> FormalResult:
    start = time.monotonic()
    deadline = start + max(0.0, float(timeout))
    prop.check_against(net.input_dim, net.output_dim)
    crosscheck(net, *bounding_box(prop.regions), seed)
    stats: dict[str, Any] = {
        "method": METHOD,
        "solver": SOLVER,
        "decided_by": None,
        "network": net.describe(),
        "timeout_s": timeout,
        "branches": 0,
        "leaves_lp": 0,
        "leaves_smt": 0,
        "encoding": {"inputs": net.input_dim, "relus": net.num_relus},
    }
    regions = tuple(r for r in prop.regions if feasible_point(r) is not None)
    if not regions:
        stats.update(time_s=time.monotonic() - start, decided_by="the input domain is empty")
        return FormalResult("unknown", stats=stats)
    prop = Property(regions, prop.unsafe, prop.name)
    if not prop.unsafe.disjuncts:
        stats.update(time_s=time.monotonic() - start, decided_by="the unsafe condition is false")
        return FormalResult("unsat", stats=stats, proof_tree=(None, regions) if record else None)
    rows = SpecRows.of(prop.unsafe, net.output_dim)

    def accept(x: np.ndarray) -> Witness | None:
        return confirm(net, prop.regions, prop.unsafe, x, witness_margin)

    if any(not conj for conj in prop.unsafe.disjuncts):
        # The unsafe condition is true: any input of the region is a counterexample.
        for region in prop.regions:
            point = feasible_point(region)
            w = accept(point) if point is not None else None
            if w is not None:
                return _sat(w, stats, start, "the unsafe condition is always true")
        stats["time_s"] = time.monotonic() - start
        return FormalResult("unknown", stats=stats)

    rng = np.random.default_rng(seed)
    fstats: dict[str, Any] = {"rounds": 0, "points_evaluated": 0, "seconds": 0.0, "best_objective": float("inf")}
    stats["falsify"] = fstats

    def falsify_round(level: int, budget: float) -> Witness | None:
        t0 = time.monotonic()
        points, info = falsify(
            net,
            prop.regions,
            rows,
            deadline if work else min(deadline, t0 + budget),
            rng,
            samples=min(2000 * 4**level, 100_000, max(2000, FALSIFY_VALUES // net.input_dim)),
            starts=min(32 * 2**level, 1024),
            steps=min(60 + 40 * level, 200),
        )
        fstats["rounds"] += 1
        fstats["points_evaluated"] += int(info["points_evaluated"])
        fstats["best_objective"] = min(fstats["best_objective"], info["best_objective"])
        fstats["seconds"] += time.monotonic() - t0
        for p in points:
            w = accept(p)
            if w is not None:
                return w
        return None

    w = falsify_round(0, max(0.05 * timeout, 0.5))
    if w is not None:
        return _sat(w, stats, start, "falsification")
    slack = 0.0 if net.exact else INEXACT_SLACK * (1.0 + float(np.abs(rows.offset).max()))
    spec_bounder = bounder(rows.matrix, rows.offset) if bounder else SpecBounder(net.folded, rows.matrix, rows.offset)
    search: InputSplitSearch | NeuronSplitSearch = InputSplitSearch(
        net, prop.regions, rows, accept, LeafSolver(net, rows), deadline, slack, spec_bounder,
        leaf_rlimit=work.leaf_rlimit if work else None, record=record and bounder is None,
    )
    outcome: SearchOutcome | None = None
    if bounder is None and prefers_neuron_split(net, prop):
        # The root's numpy bounds first (cheap, and torch is not imported): easy instances end
        # there; the others go on by neuron splitting.
        first = search.run(until=float("inf"), until_boxes=1)
        if first.status == "paused":
            search = NeuronSplitSearch(net, prop.regions, rows, accept, deadline, device)
            stats.update(method=NEURON_METHOD, solver=NEURON_SOLVER)
        else:
            outcome = first
    # Branch and bound in growing slices (of time, or of boxes under a work budget), with a
    # larger falsification round after each: most instances end in the first slice; on hard
    # ones a quarter of the effort goes to search for counterexamples, whose pockets can be too
    # small for the bounds to reach soon.
    slice_s, slice_boxes, level = FIRST_SLICE, (work.first_slice if work else 0), 0
    while outcome is None:
        if work is None:
            step = search.run(until=time.monotonic() + slice_s)
        else:
            limit = min(search.stats.boxes + slice_boxes, work.boxes)
            step = search.run(until=float("inf"), until_boxes=limit)
            if step.status == "paused" and search.stats.boxes >= work.boxes:
                _record_search(stats, step.stats)
                stats.update(time_s=time.monotonic() - start, decided_by=f"the budget of {work.boxes} boxes was spent")
                return FormalResult("unknown", stats=stats)
        if step.status != "paused":
            outcome = step
            break
        level += 1
        w = falsify_round(level, slice_s / 3)
        if w is not None:
            _record_search(stats, step.stats)
            return _sat(w, stats, start, "falsification")
        slice_s *= 2
        slice_boxes *= 2
    _record_search(stats, outcome.stats)
    if outcome.status == "sat" and outcome.witness is not None:
        return _sat(outcome.witness, stats, start, "branch and bound")
    stats["time_s"] = time.monotonic() - start
    stats["decided_by"] = "branch and bound" if outcome.status == "unsat" else None
    recorder = search.recorder if isinstance(search, InputSplitSearch) else None  # ReLU splitting records no tree yet
    tree = (recorder, prop.regions) if record and recorder is not None and outcome.status == "unsat" else None
    return FormalResult(outcome.status, stats=stats, proof_tree=tree)  # type: ignore[arg-type]


def _record_search(stats: dict[str, Any], st: SearchStats) -> None:
    stats["search"] = st.as_dict()
    stats["branches"] = st.boxes
    stats["leaves_lp"] = st.leaves_lp
    stats["leaves_smt"] = st.leaves_smt
    stats["encoding"].update(
        smt_max_variables=st.smt_max_variables,
        smt_max_constraints=st.smt_max_constraints,
        smt_total_constraints=st.smt_total_constraints,
    )
    if st.leaves_smt:
        stats["solver"] = f"{SOLVER}; {solver_version()}"


def feasible_point(region: InputRegion) -> np.ndarray | None:
    """A point of the region: its box centre, or an LP solution when it has linear constraints."""
    center = 0.5 * (np.asarray(region.lower) + np.asarray(region.upper))
    if region.contains(center, tol=0.0):
        return center
    import highspy

    h = quiet_highs()
    xs = [h.addVariable(lb=lo, ub=hi) for lo, hi in zip(region.lower, region.upper, strict=True)]
    for c in region.constraints:
        h.addConstr(sum(a * x for a, x in zip(c.coeffs, xs, strict=True) if a != 0.0) <= c.rhs)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.array(h.getSolution().col_value[: len(xs)])


def _sat(w: Witness, stats: dict[str, Any], start: float, how: str) -> FormalResult:
    stats["time_s"] = time.monotonic() - start
    stats["decided_by"] = how
    stats["witness_y_parsed"] = list(w.y_parsed)
    return FormalResult("sat", w.x, w.y, stats)
