"""Branch and bound by splitting ReLUs, for networks with many inputs (MNIST, CIFAR-10).

Splitting a box of 784 or 3,072 inputs in halves gains almost nothing per split; the verifiers
that answer these split unstable ReLUs instead. Here each subproblem is the triangle (Planet)
LP relaxation of the network *as it executes in float32* over the region, with some ReLUs fixed
to a phase:

* variables ``x`` (the box, and the region's linear constraints), per hidden layer ``z`` and
  ``h = relu(z)`` within the root's back-substituted bounds (which hold the executed values,
  see :class:`~msl.engines.formal.bounds.SpecBounder`), and ``t``;
* ``z - W h_prev - b`` within each neuron's own float32 rounding error
  (:func:`~msl.engines.formal.rounding.layer_errors`), so every execution is a feasible point;
* an unstable ReLU: ``h >= 0``, ``h >= z``, ``h <= u (z - l) / (u - l)``; fixed active:
  ``z >= 0, h = z``; fixed inactive: ``z <= 0, h = 0`` (phase fixes are bound changes, so
  HiGHS re-solves from the previous basis);
* each row of the unsafe disjunct ``g_k <= t`` (the output layer's own error allowed for), and
  ``min t``. ``t > 0`` on a subproblem refutes the disjunct there.

The LP's answer is not trusted: a subproblem is closed by a bound recomputed in float64 from
the LP's row multipliers ``y`` alone (any ``y`` gives a valid bound: ``c.v >= min over the
variables' box of (c - A^T y).v + sum_i y_i (L_i or U_i)``), widened for float64 rounding, and
it must clear the proof margin; an infeasible one is closed only by a Farkas ray checked the
same way. A subproblem the LP leaves open is split on the unstable ReLU
whose relaxation the LP's optimum exploits most (``h - relu(z)``, a BaBSR-like score), and the
LP's ``x`` is offered as a counterexample candidate (replayed through the original model).
Intermediate bounds are the root's (splits tighten through the LP, not by re-bounding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from msl.engines.formal.bab import Confirm, SearchOutcome, SearchStats
from msl.engines.formal.bounds import SpecBounder, disjunct_bounds, proof_margin
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.pieces import quiet_highs
from msl.engines.formal.property import InputRegion
from msl.engines.formal.rounding import layer_errors

#: Networks with more inputs than this are searched by ReLU splitting (see verify).
MIN_INPUTS = 64
#: Relative widening of the recomputed dual bound for float64 rounding (~1e-16 per operation).
DUAL_REL_SLACK = 1e-9
#: Deepest split path explored.
MAX_SPLITS = 60

Fix = tuple[int, int, bool]  # (layer, neuron, active)


@dataclass
class _Node:
    region: int
    disjunct: int
    fixes: tuple[Fix, ...]


class _RegionLP:
    """The triangle LP of one region and one disjunct's rows, in HiGHS, with phase fixes."""

    def __init__(self, net: PLNetwork, region: InputRegion, rows: SpecRows, rows_of: np.ndarray,
                 pre_lo: list[np.ndarray], pre_hi: list[np.ndarray], local: list[np.ndarray]) -> None:
        import highspy
        from scipy import sparse

        layers = net.folded
        lo, hi = np.asarray(region.lower, dtype=np.float64), np.asarray(region.upper, dtype=np.float64)
        d = len(lo)
        self.d = d
        hidden = layers[:-1]
        inf = highspy.kHighsInf
        # Columns: x, then z_k, h_k per hidden layer, then t.
        col_lo = [lo]
        col_hi = [hi]
        self.z_at: list[int] = []
        self.h_at: list[int] = []
        pos = d
        for k in range(len(hidden)):
            n = hidden[k].shape[0]
            self.z_at.append(pos)
            self.h_at.append(pos + n)
            pos += 2 * n
            col_lo += [pre_lo[k], np.maximum(pre_lo[k], 0.0)]
            col_hi += [pre_hi[k], np.maximum(pre_hi[k], 0.0)]
        self.t_at = pos
        n_cols = pos + 1
        # t's box only has to hold every value of the rows on the region (see _bound).
        last = layers[-1]
        cw = rows.matrix[rows_of] @ last.weight
        cb = rows.matrix[rows_of] @ last.bias - rows.offset[rows_of]
        h_top = np.maximum(pre_hi[-1], 0.0) if hidden else np.maximum(np.abs(lo), np.abs(hi))
        out_err = np.abs(rows.matrix[rows_of]) @ local[-1]
        t_box = float(np.max(np.abs(cw) @ h_top + np.abs(cb) + out_err)) * 2.0 + 1.0
        col_lo.append(np.array([-t_box]))
        col_hi.append(np.array([t_box]))
        self.col_lo = np.concatenate(col_lo)
        self.col_hi = np.concatenate(col_hi)

        blocks: list[sparse.csr_matrix] = []
        row_lo: list[np.ndarray] = []
        row_hi: list[np.ndarray] = []

        def add(mat: object, lo_: np.ndarray, hi_: np.ndarray) -> int:
            start = sum(b.shape[0] for b in blocks)
            blocks.append(sparse.csr_matrix(mat))
            row_lo.append(lo_)
            row_hi.append(hi_)
            return start

        prev_at = 0
        self.unstable: list[np.ndarray] = []
        self.upper_row: list[dict[int, int]] = []  # per layer: neuron -> row of h - z >= 0
        for k, layer in enumerate(hidden):
            n = layer.shape[0]
            eye = sparse.identity(n, format="coo")
            add(_rows(n, n_cols, [(prev_at, -layer.weight), (self.z_at[k], eye)]), layer.bias - local[k], layer.bias + local[k])
            lo_k, hi_k = pre_lo[k], pre_hi[k]
            active = np.nonzero(lo_k >= 0)[0]
            unstable = np.nonzero((lo_k < 0) & (hi_k > 0))[0]
            self.unstable.append(unstable)
            if len(active):  # h = z
                add(_pairs(active, self.h_at[k], 1.0, self.z_at[k], -np.ones(len(active)), n_cols), np.zeros(len(active)), np.zeros(len(active)))
            self.upper_row.append({})
            if len(unstable):
                u, low = hi_k[unstable], lo_k[unstable]
                s = u / (u - low)
                start = add(_pairs(unstable, self.h_at[k], 1.0, self.z_at[k], -np.ones(len(unstable)), n_cols),
                            np.zeros(len(unstable)), np.full(len(unstable), inf))
                self.upper_row[k] = {int(j): start + i for i, j in enumerate(unstable)}
                add(_pairs(unstable, self.h_at[k], 1.0, self.z_at[k], -s, n_cols), np.full(len(unstable), -inf), -s * low)
            prev_at = self.h_at[k]
        minus_t = sparse.coo_matrix(-np.ones((len(rows_of), 1)))
        add(_rows(len(rows_of), n_cols, [(prev_at, cw), (self.t_at, minus_t)]), np.full(len(rows_of), -inf), -cb + out_err)
        if region.constraints:
            coeffs = np.array([c.coeffs for c in region.constraints], dtype=np.float64)
            add(_rows(len(coeffs), n_cols, [(0, coeffs)]), np.full(len(coeffs), -inf), np.array([c.rhs for c in region.constraints]))
        self.a = sparse.vstack(blocks).tocsr()
        self.row_lo = np.concatenate(row_lo)
        self.row_hi = np.concatenate(row_hi)
        self.cost = np.zeros(n_cols)
        self.cost[self.t_at] = 1.0

        lp = highspy.HighsLp()
        lp.num_col_ = n_cols
        lp.num_row_ = self.a.shape[0]
        lp.col_cost_ = self.cost
        lp.col_lower_ = self.col_lo
        lp.col_upper_ = self.col_hi
        lp.row_lower_ = self.row_lo
        lp.row_upper_ = self.row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = self.a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = self.a.indices.astype(np.int32)
        lp.a_matrix_.value_ = self.a.data
        self.h = quiet_highs()
        self.h.passModel(lp)
        self.applied: tuple[Fix, ...] = ()
        self.abs_a_t = abs(self.a).T.tocsr()

    def _set(self, fixes: tuple[Fix, ...]) -> None:
        """Bounds for ``fixes``, resetting the ones of the previous subproblem."""
        for k, j, _ in self.applied:
            for col in (self.z_at[k] + j, self.h_at[k] + j):
                self.h.changeColBounds(col, self.col_lo[col], self.col_hi[col])
            r = self.upper_row[k][j]
            self.h.changeRowBounds(r, self.row_lo[r], self.row_hi[r])
        for k, j, active in fixes:
            z, hcol, r = self.z_at[k] + j, self.h_at[k] + j, self.upper_row[k][j]
            if active:
                self.h.changeColBounds(z, 0.0, self.col_hi[z])
                self.h.changeRowBounds(r, 0.0, 0.0)  # h = z
            else:
                self.h.changeColBounds(z, self.col_lo[z], 0.0)
                self.h.changeColBounds(hcol, 0.0, 0.0)
        self.applied = fixes

    def solve(self, fixes: tuple[Fix, ...], seconds: float) -> tuple[float, float, np.ndarray | None]:
        """A rigorous lower bound of ``min t`` under ``fixes``, its float64 margin, and the LP's
        solution (None when the LP did not solve)."""
        import highspy

        self._set(fixes)
        lo, hi = self.col_lo.copy(), self.col_hi.copy()
        rlo, rhi = self.row_lo.copy(), self.row_hi.copy()
        for k, j, active in fixes:
            z, hcol, r = self.z_at[k] + j, self.h_at[k] + j, self.upper_row[k][j]
            if active:
                lo[z] = 0.0
                rlo[r] = rhi[r] = 0.0
            else:
                hi[z] = 0.0
                hi[hcol] = lo[hcol] = 0.0
        if np.any(lo > hi):
            return np.inf, 0.0, None  # an empty subproblem
        self.h.setOptionValue("time_limit", max(0.01, float(seconds)))
        self.h.run()
        status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            # Empty only with a checked Farkas certificate: the dual ray, recomputed like a
            # dual bound with zero cost, must be positive (then no point meets the rows).
            _, has_ray, ray = self.h.getDualRay()
            if has_ray:
                zero = np.zeros_like(self.cost)
                for sign in (1.0, -1.0):
                    bound, mag = _dual_bound(sign * np.asarray(ray, dtype=np.float64), self.a, self.abs_a_t, zero, lo, hi, rlo, rhi)
                    if bound - DUAL_REL_SLACK * mag > proof_margin(np.array([abs(bound)]))[0]:
                        return np.inf, 0.0, None
            return -np.inf, 0.0, None
        if status != highspy.HighsModelStatus.kOptimal:
            return -np.inf, 0.0, None
        sol = self.h.getSolution()
        y = np.asarray(sol.row_dual, dtype=np.float64)
        x = np.asarray(sol.col_value, dtype=np.float64)
        best, best_mag = -np.inf, 0.0
        for sign in (1.0, -1.0):  # valid for any multipliers: try both sign conventions
            bound, mag = _dual_bound(sign * y, self.a, self.abs_a_t, self.cost, lo, hi, rlo, rhi)
            if bound - DUAL_REL_SLACK * mag > best - DUAL_REL_SLACK * best_mag:
                best, best_mag = bound, mag
        return best, DUAL_REL_SLACK * best_mag, x

    def branch(self, x: np.ndarray | None, fixes: tuple[Fix, ...]) -> tuple[int, int] | None:
        """The unstable, unfixed ReLU whose relaxation the LP solution uses most; without a
        solution (the LP did not solve), or where it uses none, the one with the widest
        relaxation (``min(-l, u)``)."""
        fixed = {(k, j) for k, j, _ in fixes}
        best, choice = 0.0, None
        fallback, fb_choice = -1.0, None
        for k, unstable in enumerate(self.unstable):
            if not len(unstable):
                continue
            width = np.minimum(-self.col_lo[self.z_at[k] + unstable], self.col_hi[self.z_at[k] + unstable])
            if x is not None:
                gap = x[self.h_at[k] + unstable] - np.maximum(x[self.z_at[k] + unstable], 0.0)
                for i in np.argsort(-gap):
                    if (k, int(unstable[i])) in fixed:
                        continue
                    if gap[i] > best:
                        best, choice = float(gap[i]), (k, int(unstable[i]))
                    break
            for i in np.argsort(-width):
                if (k, int(unstable[i])) not in fixed:
                    if width[i] > fallback:
                        fallback, fb_choice = float(width[i]), (k, int(unstable[i]))
                    break
        return choice if choice is not None else fb_choice


def _rows(n_rows: int, n_cols: int, parts: list[tuple[int, object]]) -> object:
    """A sparse (n_rows, n_cols) block row: each part a matrix (dense or sparse) placed at a
    column offset; zeros are dropped (a convolution's dense matrix is mostly zeros)."""
    from scipy import sparse

    rr, cc, vv = [], [], []
    for offset, block in parts:
        m = sparse.coo_matrix(block)
        keep = m.data != 0
        rr.append(m.row[keep])
        cc.append(m.col[keep] + offset)
        vv.append(m.data[keep])
    return sparse.csr_matrix((np.concatenate(vv), (np.concatenate(rr), np.concatenate(cc))), shape=(n_rows, n_cols))


def _pairs(neurons: np.ndarray, h_at: int, h_coef: float, z_at: int, z_coef: np.ndarray, n_cols: int) -> object:
    """Rows ``h_coef * h_j + z_coef * z_j`` for the given neurons of a layer."""
    from scipy import sparse

    n = len(neurons)
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([h_at + neurons, z_at + neurons])
    vals = np.concatenate([np.full(n, h_coef), np.asarray(z_coef, dtype=np.float64)])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n_cols))


def _dual_bound(y: np.ndarray, a: object, abs_a_t: object, cost: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                rlo: np.ndarray, rhi: np.ndarray) -> tuple[float, float]:
    """``min over lo <= v <= hi of (cost - A^T y).v + sum_i y_i (rlo_i if y_i > 0 else rhi_i)``
    (a lower bound of the LP for any ``y``), and the magnitude of its terms."""
    y = np.where((y > 0) & ~np.isfinite(rlo), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(rhi), 0.0, y)
    r = cost - a.T @ y  # type: ignore[attr-defined]
    col = np.where(r > 0, r * lo, r * hi)
    row = np.where(y > 0, y * np.where(np.isfinite(rlo), rlo, 0.0), y * np.where(np.isfinite(rhi), rhi, 0.0))
    vmax = np.maximum(np.abs(lo), np.abs(hi))
    mag = float(np.abs(col).sum() + np.abs(row).sum() + (abs_a_t @ np.abs(y)) @ vmax + np.abs(cost) @ vmax)  # type: ignore[operator]
    return float(col.sum() + row.sum()), mag


class NeuronSplitSearch:
    """Branch and bound on ReLU phases over the regions of a property (same interface as
    :class:`~msl.engines.formal.bab.InputSplitSearch`: ``run`` in slices, ``stats``)."""

    def __init__(self, net: PLNetwork, regions: tuple[InputRegion, ...], rows: SpecRows, confirm: Confirm,
                 deadline: float, bounder: SpecBounder) -> None:
        self.net = net
        self.regions = regions
        self.rows = rows
        self.confirm = confirm
        self.deadline = deadline
        self.bounder = bounder
        self.stats = SearchStats()
        self.undecided = 0
        self.stack: list[_Node] = []
        self.lps: dict[tuple[int, int], _RegionLP] = {}
        self.roots: dict[int, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
        self.started = False

    def _start(self) -> None:
        """Bound each region once; disjuncts the bounds leave open become root subproblems."""
        self.started = True
        for r, region in enumerate(self.regions):
            lo = np.array([region.lower], dtype=np.float64)
            hi = np.array([region.upper], dtype=np.float64)
            t0 = time.monotonic()
            bb = self.bounder.bound(lo, hi)
            self.stats.bound_seconds += time.monotonic() - t0
            self.stats.boxes += 1
            bb.row_const = bb.row_const - bb.row_error
            bb.row_lower = bb.row_lower - bb.row_error
            db = disjunct_bounds(bb, self.rows.member, lo, hi)
            local = [e[0] for e in layer_errors(self.net.folded, lo, hi, bb.pre_lower, bb.pre_upper)[0]]
            self.roots[r] = ([p[0] for p in bb.pre_lower], [p[0] for p in bb.pre_upper], local)
            for j in range(self.rows.member.shape[0]):
                if not db.lower[0, j] > db.margin[0, j]:
                    self.stack.append(_Node(r, j, ()))

    def _lp(self, r: int, j: int) -> _RegionLP:
        if (r, j) not in self.lps:
            pre_lo, pre_hi, local = self.roots[r]
            rows_of = np.nonzero(self.rows.member[j])[0]
            self.lps[(r, j)] = _RegionLP(self.net, self.regions[r], self.rows, rows_of, pre_lo, pre_hi, local)
        return self.lps[(r, j)]

    def run(self, until: float, until_boxes: int | None = None) -> SearchOutcome:
        if not self.started:
            self._start()
        st = self.stats
        while self.stack:
            now = time.monotonic()
            if now > self.deadline:
                return SearchOutcome("timeout", None, st)
            if now > until or (until_boxes is not None and st.boxes >= until_boxes):
                return SearchOutcome("paused", None, st)
            node = self.stack.pop()
            lp = self._lp(node.region, node.disjunct)
            t0 = time.monotonic()
            bound, slack, x = lp.solve(node.fixes, self.deadline - t0)
            st.lp_seconds += time.monotonic() - t0
            st.lps += 1
            st.boxes += 1
            st.max_depth = max(st.max_depth, len(node.fixes))
            if bound == np.inf or bound - slack > proof_margin(np.array([abs(bound)]))[0]:
                continue  # refuted on this subproblem (or the subproblem is empty)
            if x is not None:
                st.candidates += 1
                w = self.confirm(np.clip(x[: lp.d], self.regions[node.region].lower, self.regions[node.region].upper))
                if w is not None:
                    return SearchOutcome("sat", w, st)
            if time.monotonic() > self.deadline:
                return SearchOutcome("timeout", None, st)
            choice = lp.branch(x, node.fixes)
            if choice is None or len(node.fixes) >= MAX_SPLITS:
                self.undecided += 1
                continue
            k, j = choice
            self.stack.append(_Node(node.region, node.disjunct, (*node.fixes, (k, j, False))))
            self.stack.append(_Node(node.region, node.disjunct, (*node.fixes, (k, j, True))))
        if time.monotonic() > self.deadline:
            return SearchOutcome("timeout", None, st)
        return SearchOutcome("unknown" if self.undecided else "unsat", None, st)
