"""Exact decisions on boxes with few unstable ReLUs: enumerate the linear pieces, solve small LPs.

On a box where the bounds leave only ``U`` ReLUs unstable, the network is affine on each of the
``2**U`` phase patterns' pieces ``P_p = {x in box : the unstable ReLUs have phases p}``, and the
question "does some x in the box meet an unsafe disjunct?" splits into one small LP per piece
and disjunct, in the input variables only (the ACAS Xu networks have 5):

    minimise t  subject to  (a_i . x - b_i) / s_i <= t   for every row i,   x in the box,

whose rows are the unsafe constraints ``c . f_p(x) <= d``, the phase constraints of the unstable
ReLUs (``z_j(x) >= 0`` or ``<= 0``) and the region's linear constraints (``s_i`` normalises each
row). ``t* > 0`` means the piece holds no counterexample; ``t* < 0`` gives the deepest candidate.

The LP is solved in floating point (HiGHS), so its answer is not trusted as such. A "no
counterexample" answer is *certified*: the LP's dual values ``mu >= 0`` combine the rows into one
linear function ``sum mu_i (a_i . x - b_i) / s_i`` whose minimum over the box is computed here
and must clear a margin of :data:`CERT_REL_MARGIN` times the magnitude of its terms (including
those of the float64 composition of the affine maps). Any ``mu >= 0`` gives a valid argument, so
an inaccurate LP can only fail to certify, never certify wrongly. A candidate is accepted only
through the witness rule (replay through the original model). Whatever is left (degenerate
pieces, failed certificates) goes to z3.

Float32: a leaf that carries each layer's own rounding bound (``Leaf.layer_error``) is decided
for the network as it executes. Its pieces are then the phase patterns of the *executed*
network, on which it is affine in the input and in the rounding errors ``e_k``; every row
(unsafe and phase) is relaxed by the most its errors can move it, their coefficients carried
back exactly through the piece's phases (see ``PieceSolver._float32_margins``).
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msl.engines.formal.bounds import Leaf
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import AffineLayer
from msl.engines.formal.rounding import row_error

#: A certificate must clear this times the magnitude of its terms (float64 rounding is ~1e-16).
CERT_REL_MARGIN = 1e-8
CERT_ABS_MARGIN = 1e-9


@dataclass
class PieceOutcome:
    """``status``: ``unsat`` (no piece holds a counterexample, certified), ``candidates`` (LP
    optima to confirm, deepest first) or ``uncertain`` (some piece is left to z3)."""

    status: str
    candidates: list[np.ndarray]
    lps: int
    pieces: int
    #: per certified LP: the phases of the unstable ReLUs (layer order), the disjunct and the
    #: dual multipliers of its rows (outputs, phases, region constraints), for certificates
    evidence: list[tuple[tuple[bool, ...], int, np.ndarray]] = field(default_factory=list)


class PieceSolver:
    """Enumerates the linear pieces of boxes of one network for one unsafe condition."""

    def __init__(self, layers: tuple[AffineLayer, ...], rows: SpecRows) -> None:
        self.layers = layers
        self.rows = rows
        self.w_abs = [np.abs(layer.weight) for layer in layers]
        self.b_abs = [np.abs(layer.bias) for layer in layers]
        self._highs: Any = None

    @property
    def highs(self) -> Any:
        if self._highs is None:
            self._highs = quiet_highs()
        return self._highs

    def decide(self, leaf: Leaf) -> PieceOutcome:
        lo, hi, region, disjuncts, pre_lo, pre_hi = (
            leaf.lo,
            leaf.hi,
            leaf.region,
            leaf.disjuncts,
            leaf.pre_lo,
            leaf.pre_hi,
        )
        unstable = [np.nonzero((a < 0.0) & (b > 0.0))[0] for a, b in zip(pre_lo, pre_hi, strict=True)]
        n_unstable = sum(len(u) for u in unstable)
        candidates: list[tuple[float, np.ndarray]] = []
        evidence: list[tuple[tuple[bool, ...], int, np.ndarray]] = []
        uncertain = False
        lps = 0
        pieces = 0
        for bits in itertools.product((False, True), repeat=n_unstable):
            pieces += 1
            phase_rows, phase_mag, y_map, y_mag = self._piece(pre_lo, unstable, bits)
            out_shift, phase_shift = self._float32_margins(leaf, unstable, bits)
            phase_rows = (phase_rows[0], phase_rows[1] + phase_shift)
            for j in disjuncts:
                rows = np.nonzero(self.rows.member[j])[0]
                a_out = self.rows.matrix[rows] @ y_map[0]  # (r, d)
                offset = self.rows.offset[rows] + out_shift[rows]
                b_out = offset - self.rows.matrix[rows] @ y_map[1]
                m_out = np.abs(self.rows.matrix[rows]) @ y_mag[0], np.abs(self.rows.matrix[rows]) @ y_mag[1] + np.abs(
                    offset
                )
                a = np.vstack([a_out, phase_rows[0]] + [np.array([c.coeffs]) for c in region.constraints])
                b = np.concatenate([b_out, phase_rows[1]] + [np.array([c.rhs]) for c in region.constraints])
                mag_a = np.vstack([m_out[0], phase_mag[0]] + [np.abs(np.array([c.coeffs])) for c in region.constraints])
                mag_b = np.concatenate([m_out[1], phase_mag[1]] + [np.array([abs(c.rhs)]) for c in region.constraints])
                lps += 1
                verdict, point = _lp_piece(self.highs, a, b, mag_a, mag_b, lo, hi)
                if verdict == "certified":
                    assert point is not None
                    evidence.append((bits, int(j), point))
                    continue
                if verdict == "candidate":
                    assert point is not None
                    candidates.append((float(np.max(a @ point - b)), point))
                else:
                    uncertain = True
        if candidates:
            candidates.sort(key=lambda t: t[0])
            return PieceOutcome("candidates", [p for _, p in candidates], lps, pieces)
        return PieceOutcome("uncertain" if uncertain else "unsat", [], lps, pieces, evidence)

    def _float32_margins(
        self, leaf: Leaf, unstable: list[np.ndarray], bits: tuple[bool, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """How far float32 execution can move each unsafe row (K,) and each phase row (U,) of
        one piece, the right-hand sides that the piece's LP relaxes by.

        With ``leaf.layer_error`` the piece is a phase pattern of the *executed* network
        (``pre_lo``/``pre_hi`` bound the executed values): on it the executed network is
        ``z_k = W_k D_{k-1} z_{k-1} + b_k + e_k`` with every ReLU's slope ``D`` fixed and
        ``|e_k| <= layer_error[k]``, so each row moves by at most ``sum_k |row's coefficient of
        e_k| . layer_error[k]``, the coefficients carried back exactly (with their signs, so
        errors that cancel through the weights are not counted twice). Without the phases
        fixed, :func:`~msl.engines.formal.rounding.row_error` must carry every unstable ReLU's
        slope as the interval [0, 1] through all the layers below it, which on ACAS Xu's deep
        narrow networks costs a factor of ten. A point whose executed phases are ``bits`` meets
        the relaxed rows, so the pieces still cover the box. Without ``layer_error``,
        ``leaf.row_shift`` (or nothing: the network over the reals) is used as given.
        """
        k_rows = len(self.rows.offset)
        n_phase = len(bits)
        local = leaf.layer_error
        if local is None:
            shift = np.zeros(k_rows) if leaf.row_shift is None else leaf.row_shift
            return shift, np.zeros(n_phase)
        # The piece's phases as bounds that row_error reads as stable: on (lo >= 0), off (hi <= 0).
        lo = [a.copy() for a in leaf.pre_lo]
        hi = [b.copy() for b in leaf.pre_hi]
        pos = 0
        phase_shift = np.zeros(n_phase)
        for k, cols in enumerate(unstable):
            for j in cols:
                if bits[pos]:
                    lo[k][j] = 0.0
                else:
                    hi[k][j] = 0.0
                unit = np.zeros((1, len(lo[k])))
                unit[0, j] = 1.0
                phase_shift[pos] = row_error(self.layers[: k + 1], unit, lo[:k], hi[:k], local[: k + 1])[0]
                pos += 1
        return row_error(self.layers, self.rows.matrix, lo, hi, local), phase_shift

    def _piece(
        self, pre_lo: list[np.ndarray], unstable: list[np.ndarray], bits: tuple[bool, ...]
    ) -> tuple[
        tuple[np.ndarray, np.ndarray],
        tuple[np.ndarray, np.ndarray],
        tuple[np.ndarray, np.ndarray],
        tuple[np.ndarray, np.ndarray],
    ]:
        """Phase constraints ``(A, b)`` meaning ``A x <= b``, their magnitudes, and the output's
        affine map ``y = M x + c`` with its magnitudes, for one phase pattern."""
        d = self.layers[0].shape[1]
        m = np.eye(d)
        c = np.zeros(d)
        m_abs = np.eye(d)
        c_abs = np.zeros(d)
        rows_a: list[np.ndarray] = []
        rows_b: list[np.ndarray] = []
        mags_a: list[np.ndarray] = []
        mags_b: list[np.ndarray] = []
        pos = 0
        for k, layer in enumerate(self.layers[:-1]):
            zm = layer.weight @ m
            zc = layer.weight @ c + layer.bias
            zm_abs = self.w_abs[k] @ m_abs
            zc_abs = self.w_abs[k] @ c_abs + self.b_abs[k]
            active = pre_lo[k] >= 0.0
            for j in unstable[k]:
                on = bits[pos]
                pos += 1
                active[j] = on
                sign = -1.0 if on else 1.0  # on: -z <= 0; off: z <= 0
                rows_a.append(sign * zm[j])
                rows_b.append(np.array([-sign * zc[j]]))
                mags_a.append(zm_abs[j])
                mags_b.append(np.array([zc_abs[j]]))
            mask = active.astype(np.float64)
            m, c = zm * mask[:, None], zc * mask
            m_abs, c_abs = zm_abs * mask[:, None], zc_abs * mask
        last = self.layers[-1]
        y_map = (last.weight @ m, last.weight @ c + last.bias)
        y_mag = (self.w_abs[-1] @ m_abs, self.w_abs[-1] @ c_abs + self.b_abs[-1])
        empty = np.zeros((0, d))
        phase = (np.vstack(rows_a) if rows_a else empty, np.concatenate(rows_b) if rows_b else np.zeros(0))
        phase_mag = (np.vstack(mags_a) if mags_a else empty, np.concatenate(mags_b) if mags_b else np.zeros(0))
        return phase, phase_mag, y_map, y_mag


def quiet_highs() -> Any:
    """A HiGHS instance with logging off. Its first construction in a process prints a banner
    on the C-level stdout, which would corrupt ``msl vnnlib``'s answer line; that one is sent
    to /dev/null."""
    import highspy

    global _banner_shown
    if not _banner_shown:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_shown = True
    else:
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


_banner_shown = False


def _lp_piece(
    h: Any, a: np.ndarray, b: np.ndarray, mag_a: np.ndarray, mag_b: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[str, np.ndarray | None]:
    """``certified`` (no x in the box meets every row ``a x <= b``; with the multipliers of the
    rows that show it), ``candidate`` (with the LP's deepest point) or ``uncertain``. ``h`` is a
    HiGHS instance to reuse."""
    import highspy

    scale = np.abs(a).sum(axis=1) + np.abs(b) + 1e-300
    an = a / scale[:, None]
    bn = b / scale
    n_rows, d = an.shape
    lp = highspy.HighsLp()
    lp.num_col_ = d + 1
    lp.num_row_ = n_rows
    lp.col_cost_ = np.concatenate([np.zeros(d), [1.0]])
    lp.col_lower_ = np.concatenate([lo, [-highspy.kHighsInf]])
    lp.col_upper_ = np.concatenate([hi, [highspy.kHighsInf]])
    lp.row_lower_ = np.full(n_rows, -highspy.kHighsInf)
    lp.row_upper_ = bn
    dense = np.hstack([an, -np.ones((n_rows, 1))])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.arange(0, n_rows * (d + 1) + 1, d + 1, dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(d + 1, dtype=np.int32), n_rows)
    lp.a_matrix_.value_ = dense.ravel()
    h.clearModel()
    if h.passModel(lp) != highspy.HighsStatus.kOk:
        return "uncertain", None
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return "uncertain", None
    sol = h.getSolution()
    t_star = float(sol.col_value[d])
    if t_star < 0.0:
        return "candidate", np.clip(np.array(sol.col_value[:d]), lo, hi)
    # Certify: any mu >= 0 bounds max_i (a_i x - b_i)/s_i from below on the box.
    mu = np.abs(np.array(sol.row_dual))
    if mu.sum() <= 0:
        return "uncertain", None
    mu = mu / scale
    coef = mu @ a
    const = -mu @ b
    center = 0.5 * (lo + hi)
    radius = 0.5 * (hi - lo)
    absx = np.maximum(np.abs(lo), np.abs(hi))
    low = coef @ center - np.abs(coef) @ radius + const
    magnitude = (mu @ (mag_a + np.abs(a))) @ absx + mu @ (mag_b + np.abs(b))
    if low > CERT_ABS_MARGIN + CERT_REL_MARGIN * magnitude:
        return "certified", mu
    return "uncertain", None
