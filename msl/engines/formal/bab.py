"""Branch and bound by input splitting, vectorised over many boxes at once.

The search keeps a stack of open boxes, each with the set of unsafe disjuncts not yet refuted on
it. A batch of boxes is bounded at once (:class:`~msl.engines.formal.bounds.SpecBounder`); on
each box

* a disjunct is *refuted* when the best combination of its rows' linear lower bounds clears the
  proof margin (:func:`~msl.engines.formal.bounds.disjunct_bounds`);
* a box with no open disjunct, or outside its region's linear constraints, is closed;
* the box centre and the minimiser of each open disjunct's linear bound are evaluated as
  counterexample candidates (so the search is also a falsifier);
* a box with at most :data:`PIECE_UNSTABLE` unstable ReLUs is decided exactly by its linear
  pieces (:mod:`msl.engines.formal.pieces`); a box those leave open, or that is too deep or too
  small to split further, goes to z3 (:mod:`msl.engines.formal.smt`);
* the others are bisected along the input that the bound's relaxation losses come from (the
  ``split_score`` of the bounds), which the measurements on ACAS Xu favoured by orders of
  magnitude over widest-input and gradient-smear choices.

Boxes are taken from the top of a stack (depth first, so memory stays bounded) in batches of
:data:`BATCH`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from msl.engines.formal.bounds import BoxBounds, Leaf, SpecBounder, disjunct_bounds
from msl.engines.formal.certificate import TreeRecorder, outside_constraint
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.pieces import PieceSolver
from msl.engines.formal.property import InputRegion
from msl.engines.formal.rounding import layer_errors, row_error
from msl.engines.formal.smt import LeafSolver
from msl.engines.formal.witness import Witness

#: Boxes bounded together.
BATCH = 1024
#: A box deeper than this (bisections), or narrower than :data:`MIN_WIDTH` relative to its
#: region, goes to the exact solver instead of being split.
MAX_DEPTH = 120
MIN_WIDTH = 1e-9
#: Boxes with at most this many unstable ReLUs are decided by their linear pieces (2**n LPs).
PIECE_UNSTABLE = 4
#: Per-leaf z3 timeout (seconds), at most the remaining time.
LEAF_TIMEOUT = 10.0
#: Extra depth by which the exact solver's witness is pushed inside the unsafe set.
DEEPEN = 1e-4


@dataclass(frozen=True)
class WorkBudget:
    """Limits counted in work, not seconds, so that an answer never depends on the machine's
    speed or load (``msl check``: the same spec gives the same verdict and id everywhere).

    ``boxes``: branch-and-bound boxes bounded in all; ``leaf_rlimit``: z3's deterministic
    resource limit per exact leaf; ``first_slice``: boxes before the second falsification round
    (then doubling, as the time slices of the competition mode).
    """

    boxes: int = 300_000
    leaf_rlimit: int = 30_000_000
    first_slice: int = 2_000


@dataclass
class SearchStats:
    boxes: int = 0
    batches: int = 0
    max_depth: int = 0
    candidates: int = 0
    leaves_lp: int = 0
    lps: int = 0
    lp_seconds: float = 0.0
    leaves_smt: int = 0
    smt_sat: int = 0
    smt_unsat: int = 0
    smt_unknown: int = 0
    smt_seconds: float = 0.0
    smt_max_variables: int = 0
    smt_max_constraints: int = 0
    smt_total_constraints: int = 0
    bound_seconds: float = 0.0
    boundary_witnesses: int = 0
    float32_margin_max: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class SearchOutcome:
    status: str  # "sat", "unsat", "unknown", "timeout" or "paused"
    witness: Witness | None
    stats: SearchStats


Confirm = Callable[[np.ndarray], "Witness | None"]


class InputSplitSearch:
    """One branch-and-bound run over the regions of a property."""

    def __init__(
        self,
        net: PLNetwork,
        regions: tuple[InputRegion, ...],
        rows: SpecRows,
        confirm: Confirm,
        leaf_solver: LeafSolver,
        deadline: float,
        proof_slack: float,
        bounder: SpecBounder,
        leaf_rlimit: int | None = None,
        record: bool = False,
    ) -> None:
        self.net = net
        self.regions = regions
        self.rows = rows
        self.confirm = confirm
        self.leaf = leaf_solver
        self.deadline = deadline
        self.proof_slack = proof_slack  # extra rhs slack for exact queries on inexact networks
        self.bounder = bounder
        self.leaf_rlimit = leaf_rlimit  # z3's resource limit per leaf (work, not seconds) when set
        self.stats = SearchStats()
        self.undecided = 0  # leaves the exact solver could not settle
        self.pieces = PieceSolver(net.folded, rows)
        self.witness: Witness | None = None
        #: the split tree and each box's evidence, for a proof certificate (when ``record``)
        self.recorder = TreeRecorder(len(regions), rows.member) if record else None
        self.step_seconds = 0.0  # wall time of every batch so far, for the batch size

        n_regions = len(regions)
        lo = np.array([r.lower for r in regions], dtype=np.float64)
        hi = np.array([r.upper for r in regions], dtype=np.float64)
        self.full_width = np.maximum(hi - lo, 0.0)
        self.stack: list[tuple[np.ndarray, ...]] = [
            (
                lo,
                hi,
                np.arange(n_regions),
                np.ones((n_regions, rows.member.shape[0]), dtype=bool),
                np.zeros(n_regions, dtype=np.int64),
                np.arange(n_regions),  # node ids of the split tree
            )
        ]

    def run(self, until: float, until_boxes: int | None = None) -> SearchOutcome:
        """Search until done, or until ``until`` or ``until_boxes`` boxes in all (status
        ``paused``; call again to go on), or the deadline (status ``timeout``)."""
        while self.stack:
            now = time.monotonic()
            if now > self.deadline:
                return SearchOutcome("timeout", None, self.stats)
            if now > until or (until_boxes is not None and self.stats.boxes >= until_boxes):
                return SearchOutcome("paused", None, self.stats)
            lo, hi, rid, open_, depth, node = _pop(self.stack, self._batch_size(now))
            witness, children = self._step(lo, hi, rid, open_, depth, node)
            self.step_seconds += time.monotonic() - now
            if witness is not None:
                return SearchOutcome("sat", witness, self.stats)
            if children is not None and len(children[0]):
                self.stack.append(children)
        if time.monotonic() > self.deadline:
            return SearchOutcome("timeout", None, self.stats)
        return SearchOutcome("unknown" if self.undecided else "unsat", None, self.stats)

    def _batch_size(self, now: float) -> int:
        """:data:`BATCH` boxes, or fewer when the seconds per box measured so far say that a
        full batch would end past half the time left: the deadline is checked between batches,
        so a batch must not outlast it (on 784-input networks one box costs 10-100 ms)."""
        if self.stats.boxes == 0:
            return BATCH
        per_box = self.step_seconds / self.stats.boxes
        if per_box <= 0.0:
            return BATCH
        return int(min(BATCH, max(1.0, 0.5 * (self.deadline - now) / per_box)))

    # ------------------------------------------------------------------------------
    def _step(
        self, lo: np.ndarray, hi: np.ndarray, rid: np.ndarray, open_: np.ndarray, depth: np.ndarray, node: np.ndarray
    ) -> tuple[Witness | None, tuple[np.ndarray, ...] | None]:
        st = self.stats
        st.batches += 1
        st.boxes += len(lo)
        st.max_depth = max(st.max_depth, int(depth.max()))
        t0 = time.monotonic()
        bb = self.bounder.bound(lo, hi)
        # Proofs are for the network as it runs in float32. The bounds carry it (or say in
        # row_error what they do not); the exact leaves prove each row with a margin instead.
        bb.row_const = bb.row_const - bb.row_error
        bb.row_lower = bb.row_lower - bb.row_error
        st.bound_seconds += time.monotonic() - t0
        db = disjunct_bounds(bb, self.rows.member, lo, hi)
        refuted = open_ & (db.lower > db.margin)
        open_ = open_ & ~refuted
        alive = open_.any(axis=1) & ~self._outside(lo, hi, rid)
        if self.recorder is not None:
            self._record_closed(lo, hi, rid, open_, node, refuted, alive, bb, db.choice)
        if not alive.any():
            return None, None
        idx = np.nonzero(alive)[0]
        lo, hi, rid, open_, depth, node = lo[idx], hi[idx], rid[idx], open_[idx], depth[idx], node[idx]
        coef = db.coef[idx]
        split_score = bb.split_score[idx]
        pre_lo = [a[idx] for a in bb.pre_lower]
        pre_hi = [a[idx] for a in bb.pre_upper]
        witness = self._candidates(lo, hi, rid, open_, coef)
        if witness is not None:
            return witness, None
        unstable = np.zeros(len(lo), dtype=np.int64)
        for a, b in zip(pre_lo, pre_hi, strict=True):
            unstable += np.sum((a < 0) & (b > 0), axis=1)
        width = hi - lo
        rel_width = np.where(
            self.full_width[rid] > 0, width / np.where(self.full_width[rid] > 0, self.full_width[rid], 1.0), 0.0
        )
        few = unstable <= PIECE_UNSTABLE
        exact = few | (depth >= MAX_DEPTH) | (rel_width.max(axis=1) < MIN_WIDTH)
        for i in np.nonzero(exact)[0]:
            if time.monotonic() > self.deadline:
                return None, None
            box_pre_lo = [a[i] for a in pre_lo]
            box_pre_hi = [b[i] for b in pre_hi]
            # Each layer's own rounding on this leaf, for its exact deciders (only leaves need it).
            box_local = [
                e[0]
                for e in layer_errors(
                    self.net.layers,
                    lo[i : i + 1],
                    hi[i : i + 1],
                    [a[None] for a in box_pre_lo],
                    [b[None] for b in box_pre_hi],
                )[0]
            ]
            shift = row_error(self.net.layers, self.rows.matrix, box_pre_lo, box_pre_hi, box_local)
            st.float32_margin_max = max(st.float32_margin_max, float(shift.max(initial=0.0)))
            leaf = Leaf(
                lo[i], hi[i], self.regions[int(rid[i])], [int(j) for j in np.nonzero(open_[i])[0]],
                box_pre_lo, box_pre_hi, shift, box_local,
            )
            if few[i] and self._pieces_leaf(leaf, int(node[i])):
                continue
            if self.witness is not None:
                return self.witness, None
            witness = self._exact_leaf(leaf)
            if witness is not None:
                return witness, None
            if self.recorder is not None:
                self.recorder.leaf(node[i], "smt")  # unsat, or undecided (the answer is then not unsat)
        split = np.nonzero(~exact)[0]
        if len(split) == 0:
            return None, None
        lo, hi, rid, open_, depth, width, node = (
            lo[split],
            hi[split],
            rid[split],
            open_[split],
            depth[split],
            width[split],
            node[split],
        )
        coef = coef[split]
        # Split the input that the bound's relaxation losses come from (see SpecBounder), with
        # the relatively widest input as the tie-breaker (and the choice when nothing is lost).
        score = split_score[split]
        top = score.max(axis=1, keepdims=True)
        score = score / np.where(top > 0, top, 1.0) + 1e-3 * rel_width[split]
        dim = np.argmax(score, axis=1)
        n = len(lo)
        mid = 0.5 * (lo[np.arange(n), dim] + hi[np.arange(n), dim])
        lo_b = lo.copy()
        hi_a = hi.copy()
        hi_a[np.arange(n), dim] = mid
        lo_b[np.arange(n), dim] = mid
        if self.recorder is not None:
            left, right = self.recorder.split(node, dim, mid)
        else:
            left = right = np.zeros(n, dtype=np.int64)
        children = (
            np.concatenate([lo, lo_b]),
            np.concatenate([hi_a, hi]),
            np.concatenate([rid, rid]),
            np.concatenate([open_, open_]),
            np.concatenate([depth + 1, depth + 1]),
            np.concatenate([left, right]),
        )
        return None, children

    def _record_closed(
        self, lo: np.ndarray, hi: np.ndarray, rid: np.ndarray, open_: np.ndarray, node: np.ndarray,
        refuted: np.ndarray, alive: np.ndarray, bb: BoxBounds, choice: np.ndarray | None,
    ) -> None:
        """Certificate hook: the disjuncts the bounds refuted on each box, and the boxes closed
        here (every disjunct refuted, or outside the region's linear constraints)."""
        assert self.recorder is not None
        self.recorder.refute(node, refuted, bb, choice)
        for i in np.nonzero(~alive)[0]:
            if not open_[i].any():
                self.recorder.leaf(node[i], "bounds")
            else:
                region = self.regions[int(rid[i])]
                self.recorder.leaf(node[i], "outside", outside_constraint(region, lo[i], hi[i]))

    def _outside(self, lo: np.ndarray, hi: np.ndarray, rid: np.ndarray) -> np.ndarray:
        """Boxes that provably miss their region's linear constraints."""
        out = np.zeros(len(lo), dtype=bool)
        for r, region in enumerate(self.regions):
            if not region.constraints:
                continue
            sel = rid == r
            for c in region.constraints:
                a = np.asarray(c.coeffs)
                low = np.where(a > 0, lo[sel], hi[sel]) @ a
                mag = np.maximum(np.abs(lo[sel]), np.abs(hi[sel])) @ np.abs(a) + abs(c.rhs)
                out[sel] |= low - c.rhs > 1e-9 * (1.0 + mag)
        return out

    def _candidates(
        self, lo: np.ndarray, hi: np.ndarray, rid: np.ndarray, open_: np.ndarray, coef: np.ndarray
    ) -> Witness | None:
        """Evaluate box centres and the minimisers of the open disjuncts' linear bounds."""
        n, n_dis = open_.shape
        pts = [0.5 * (lo + hi)]
        for j in range(n_dis):
            sel = open_[:, j]
            if not sel.any():
                continue
            a = coef[:, j]  # (N, d)
            pts.append(np.where(a > 0, lo, hi)[sel])
        cand = np.concatenate(pts)
        y = self.net.forward(cand)
        g = y @ self.rows.matrix.T - self.rows.offset  # (M, K)
        tol = 1e-6 * (1.0 + np.abs(y) @ np.abs(self.rows.matrix).T + np.abs(self.rows.offset))
        ok_rows = np.where(self.rows.strict, g < -tol, g <= -tol)
        hit = ((~ok_rows).astype(np.int32) @ self.rows.member.T.astype(np.int32) == 0).any(axis=1)
        for i in np.nonzero(hit)[0][:8]:
            self.stats.candidates += 1
            w = self.confirm(cand[i])
            if w is not None:
                return w
        return None

    def _pieces_leaf(self, leaf: Leaf, node: int = 0) -> bool:
        """Settle a box with few unstable ReLUs by its linear pieces. True when it is closed
        (no counterexample, certified); False leaves it to z3, or sets ``self.witness``."""
        st = self.stats
        t0 = time.monotonic()
        out = self.pieces.decide(leaf)
        st.leaves_lp += 1
        st.lps += out.lps
        st.lp_seconds += time.monotonic() - t0
        if out.status == "unsat":
            if self.recorder is not None:
                self.recorder.lp_leaf(node, leaf, out.evidence)
            return True
        for x in out.candidates[:4]:
            st.candidates += 1
            w = self.confirm(x)
            if w is not None:
                self.witness = w
                return False
        return False

    def _exact_leaf(self, leaf: Leaf) -> Witness | None:
        """Settle one box with z3: unsat closes it; sat yields a witness (deepened if needed)."""
        st = self.stats
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return None
        st.leaves_smt += 1
        k = len(self.rows.offset)  # z3 models the executed network itself (leaf.layer_error)
        ans = self.leaf.solve(leaf, np.full(k, self.proof_slack), self._leaf_seconds(remaining), self.leaf_rlimit)
        st.smt_seconds += ans.seconds
        st.smt_max_variables = max(st.smt_max_variables, ans.variables)
        st.smt_max_constraints = max(st.smt_max_constraints, ans.constraints)
        st.smt_total_constraints += ans.constraints
        if ans.status == "unsat":
            st.smt_unsat += 1
            return None
        if ans.status == "unknown":
            st.smt_unknown += 1
            self.undecided += 1
            return None
        st.smt_sat += 1
        assert ans.x is not None
        w = self.confirm(ans.x)
        if w is not None:
            return w
        # The model sits on the boundary of the unsafe set: ask for a point deeper inside.
        y_scale = max(float(np.abs(self.net.forward(ans.x)).max()), 1.0)
        deepen = -DEEPEN * (1.0 + np.abs(self.rows.offset) + np.abs(self.rows.matrix).sum(axis=1) * y_scale)
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            again = self.leaf.solve(leaf, deepen, self._leaf_seconds(remaining), self.leaf_rlimit)
            st.smt_seconds += again.seconds
            if again.status == "sat" and again.x is not None:
                w = self.confirm(again.x)
                if w is not None:
                    return w
        st.boundary_witnesses += 1
        self.undecided += 1
        return None


    def _leaf_seconds(self, remaining: float) -> float:
        """A leaf's wall-clock limit: its own under a time budget; only the run's safety net
        under a work budget (where z3's resource limit decides)."""
        return remaining if self.leaf_rlimit is not None else min(LEAF_TIMEOUT, remaining)


def _pop(stack: list[tuple[np.ndarray, ...]], n: int) -> tuple[np.ndarray, ...]:
    """Take up to ``n`` boxes from the top of a stack of box batches."""
    parts = []
    taken = 0
    while stack and taken < n:
        top = stack[-1]
        size = len(top[0])
        need = n - taken
        if size <= need:
            parts.append(stack.pop())
            taken += size
        else:
            parts.append(tuple(a[size - need :] for a in top))
            stack[-1] = tuple(a[: size - need] for a in top)
            taken += need
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
