"""Sound bounds on a ReLU network over many input boxes at once.

For a batch of N boxes this computes, vectorised with numpy:

1. bounds on every hidden pre-activation, layer by layer: forward *symbolic intervals*
   (ReluVal/Neurify: each neuron carries a lower and an upper linear function of the input)
   intersected with interval arithmetic, then tightened by back-substitution (DeepPoly/CROWN)
   for the neurons still unstable, so the next layer starts from the tightest bounds;
2. bounds on every *spec row* ``g_k(y) = c_k . y - d_k`` by back-substitution with the
   triangle relaxation of each unstable ReLU, for several choices of the lower slopes (the best
   is kept per box and row), giving on each box a linear function ``g_k(f(x)) >= a_k . x + b_k``
   whose minimum over the box is the lower bound;
3. a branching score per input: each unstable ReLU's worst relaxation gap, weighted by its
   coefficients in the back-substitution, is attributed to the inputs in proportion to their
   share of that neuron's symbolic range.

The back-substitution arrays are (boxes, rows, neurons) and memory-bound; boxes are processed
in chunks of :data:`CHUNK` so they stay in cache (fewer where a box's arrays are large).

Floating point: every array here is float64 and the network's float32 parameters are exact in
it, so the only error is float64 rounding, at most about ``n * 2**-53`` relative to the sum of
the absolute values of the terms of each dot product. Rather than rounding outward at every
operation, each concrete bound is widened by :data:`REL_SLACK` times the magnitude of its
terms (plus an absolute :data:`ABS_SLACK`), several orders of magnitude above that error, and a
spec row only counts as proved when its lower bound exceeds :func:`proof_margin` (1e-8 of the
magnitude of its terms). A box whose bound lands in the gap is left to the exact procedures
(:mod:`msl.engines.formal.pieces`, :mod:`msl.engines.formal.smt`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from msl.engines.formal.network import AffineLayer
from msl.engines.formal.property import InputRegion
from msl.engines.formal.rounding import layer_errors

#: Boxes bounded together in one numpy pass (see :meth:`SpecBounder.bound`).
CHUNK = 64
#: Memory one numpy pass over a chunk of boxes may take (see :meth:`SpecBounder.chunk`).
CHUNK_BYTES = 512 * 1024 * 1024
#: Lower-slope choices for unstable ReLUs tried when bounding the spec rows (see ``_backward``).
SPEC_SLOPES = ("area", "zero", "one", "chord")
#: Relative widening of every concrete bound (float64 rounding is ~1e-16 per operation).
REL_SLACK = 1e-10
#: Absolute widening of every concrete bound.
ABS_SLACK = 1e-12
#: A spec row counts as proved on a box only when its lower bound exceeds this times its magnitude.
PROOF_REL_MARGIN = 1e-8
#: ... plus this absolute margin.
PROOF_ABS_MARGIN = 1e-9


def proof_margin(magnitude: np.ndarray) -> np.ndarray:
    """The margin a lower bound must clear to count as a proof, given its term magnitude."""
    return PROOF_ABS_MARGIN + PROOF_REL_MARGIN * magnitude


@dataclass(frozen=True)
class Leaf:
    """One box that bounds alone could not settle, as the exact deciders (LP pieces, z3)
    are asked about it: the box, its region's linear constraints, the unsafe disjuncts still
    open on it, and the hidden pre-activation bounds (one (n_k,) array per layer) on it."""

    lo: np.ndarray
    hi: np.ndarray
    region: InputRegion
    disjuncts: list[int]
    pre_lo: list[np.ndarray]
    pre_hi: list[np.ndarray]
    #: (K,) added to each unsafe row's right-hand side: how far float32 execution can move the
    #: row on this box (see msl.engines.formal.rounding); the real network is proved with it.
    row_shift: np.ndarray | None = None
    #: per layer (n_k,): each layer's own float32 rounding error on this box, for deciders that
    #: model the executed network exactly (``z = W h + b + e``, ``|e| <= layer_error[k]``) and
    #: so need no ``row_shift``; ``pre_lo``/``pre_hi`` then bound the executed values.
    layer_error: list[np.ndarray] | None = None


@dataclass
class BoxBounds:
    """Bounds for a batch of N boxes and K spec rows.

    ``pre_lower[k]``/``pre_upper[k]`` are (N, n_k) bounds on the pre-activations of hidden layer
    k; ``row_lower`` (N, K) are lower bounds on the spec rows, proved on a box where
    ``row_lower > row_margin``; ``row_coef`` (N, K, d) and ``row_const`` (N, K) give the linear
    lower bound ``g_k >= row_coef . x + row_const`` valid on each box.
    """

    pre_lower: list[np.ndarray]
    pre_upper: list[np.ndarray]
    row_lower: np.ndarray
    row_margin: np.ndarray
    row_coef: np.ndarray
    row_const: np.ndarray
    split_score: np.ndarray
    #: (N, K): what float32 execution can still move each row that the bound does not already
    #: allow for (0 for SpecBounder's own bounds, which carry it; see msl.engines.formal.rounding)
    row_error: np.ndarray
    #: (N, K): the index in :data:`SPEC_SLOPES` of the lower-slope rule each row's bound used
    #: (for proof certificates; None from bounders that do not say)
    row_slope: np.ndarray | None = None



class SpecBounder:
    """Bounds spec rows ``C y - d`` of a network over batches of boxes.

    ``layers`` are float64 affine layers with ReLU between them; ``spec`` is (K, m) and
    ``offset`` (K,): row k is ``spec[k] . y - offset[k]``.
    """

    def __init__(self, layers: tuple[AffineLayer, ...], spec: np.ndarray, offset: np.ndarray) -> None:
        self.layers = layers
        self.hidden = layers[:-1]
        last = layers[-1]
        self.spec = np.asarray(spec, dtype=np.float64)
        # The spec folded into the last layer: g = (C W_L) h_{L-1} + (C b_L - d).
        self.last_w = self.spec @ last.weight
        self.last_b = self.spec @ last.bias - np.asarray(offset, dtype=np.float64)
        self.last_b_abs = np.abs(self.spec) @ np.abs(last.bias) + np.abs(np.asarray(offset, dtype=np.float64))
        self.w_pos = [np.maximum(lay.weight, 0.0) for lay in self.hidden]
        self.w_neg = [np.minimum(lay.weight, 0.0) for lay in self.hidden]
        self.w_abs = [np.abs(lay.weight) for lay in self.hidden]
        self.b_abs = [np.abs(lay.bias) for lay in self.hidden]

    @property
    def rows(self) -> int:
        return int(self.last_w.shape[0])

    # ------------------------------------------------------------------ hidden layers
    def hidden_bounds(
        self, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Pre-activation bounds of every hidden layer, (N, n_k) each, and each neuron's input
        shares (N, n_k, d): the fraction of its symbolic range due to each input's width.

        Layer by layer: symbolic intervals intersected with interval arithmetic, then
        back-substitution for the neurons still unstable on some box of the batch,
        so that the next layer's relaxation starts from the tightest bounds.
        """
        n_boxes, d = lo.shape
        center = 0.5 * (lo + hi)
        radius = 0.5 * (hi - lo)
        absx = np.maximum(np.abs(lo), np.abs(hi))
        lowers: list[np.ndarray] = []
        uppers: list[np.ndarray] = []
        shares: list[np.ndarray] = []
        width = hi - lo
        eq_l = eq_u = None  # equations (n, N, d + 1) of the previous post-activations
        for k, layer in enumerate(self.hidden):
            w, b = layer.weight, layer.bias
            if k == 0:
                lin = (w @ center.T).T + b
                rad = radius @ self.w_abs[0].T
                slack = ABS_SLACK + REL_SLACK * (absx @ self.w_abs[0].T + self.b_abs[0])
                z_lo, z_hi = lin - rad - slack, lin + rad + slack
                eq_zl = np.empty((w.shape[0], n_boxes, d + 1))
                eq_zl[:, :, :d] = w[:, None, :]
                eq_zl[:, :, d] = b[:, None]
                eq_zu = eq_zl
                lower_eq_hi, upper_eq_lo = z_hi, z_lo
            else:
                assert eq_l is not None and eq_u is not None
                n_prev = eq_l.shape[0]
                flat_l = eq_l.reshape(n_prev, -1)
                flat_u = eq_u.reshape(n_prev, -1)
                wp, wn = self.w_pos[k], self.w_neg[k]
                eq_zl = (wp @ flat_l + wn @ flat_u).reshape(w.shape[0], n_boxes, d + 1)
                eq_zu = (wp @ flat_u + wn @ flat_l).reshape(w.shape[0], n_boxes, d + 1)
                eq_zl[:, :, d] += b[:, None]
                eq_zu[:, :, d] += b[:, None]
                lz_lo, lz_hi, lz_mag = _concretize(eq_zl, center, radius, absx)
                uz_lo, uz_hi, uz_mag = _concretize(eq_zu, center, radius, absx)
                lz_slack = (ABS_SLACK + REL_SLACK * lz_mag).T
                uz_slack = (ABS_SLACK + REL_SLACK * uz_mag).T
                # Interval arithmetic on the previous layer's bounds.
                h_lo = np.maximum(lowers[-1], 0.0)
                h_hi = np.maximum(uppers[-1], 0.0)
                islack = ABS_SLACK + REL_SLACK * (h_hi @ self.w_abs[k].T + self.b_abs[k])
                z_lo = np.maximum(lz_lo.T - lz_slack, h_lo @ wp.T + h_hi @ wn.T + b - islack)
                z_hi = np.minimum(uz_hi.T + uz_slack, h_hi @ wp.T + h_lo @ wn.T + b + islack)
                lower_eq_hi, upper_eq_lo = lz_hi.T + lz_slack, uz_lo.T - uz_slack
                self._refine(k, z_lo, z_hi, lowers, uppers, center, radius, absx)
            lowers.append(z_lo)
            uppers.append(z_hi)
            spread = (np.abs(eq_zl[:, :, :d]) + np.abs(eq_zu[:, :, :d])).transpose(1, 0, 2) * width[:, None, :]
            total = spread.sum(axis=2, keepdims=True)
            shares.append(spread / np.where(total > 0, total, 1.0))
            if k + 1 < len(self.hidden):
                eq_l, eq_u = _relu_equations(eq_zl, eq_zu, z_lo, z_hi, lower_eq_hi, upper_eq_lo)
        return lowers, uppers, shares

    def _refine(
        self,
        k: int,
        z_lo: np.ndarray,
        z_hi: np.ndarray,
        lowers: list[np.ndarray],
        uppers: list[np.ndarray],
        center: np.ndarray,
        radius: np.ndarray,
        absx: np.ndarray,
    ) -> None:
        """Tighten (in place) layer k's bounds by back-substitution, for the neurons unstable
        on some box."""
        cols = np.nonzero(((z_lo < 0.0) & (z_hi > 0.0)).any(axis=0))[0]
        if len(cols) == 0:
            return
        layer = self.hidden[k]
        w = layer.weight[cols]
        rows = np.concatenate([w, -w])
        bias = layer.bias[cols]
        coef, const, const_abs = self._backward(
            rows,
            np.concatenate([bias, -bias]),
            np.concatenate([self.b_abs[k][cols], self.b_abs[k][cols]]),
            k,
            lowers,
            uppers,
            z_lo.shape[0],
        )
        low = _minimum(coef, const, const_abs, center, radius, absx, ABS_SLACK, REL_SLACK)
        n = len(cols)
        z_lo[:, cols] = np.maximum(z_lo[:, cols], low[:, :n])
        z_hi[:, cols] = np.minimum(z_hi[:, cols], -low[:, n:])

    def chunk(self, inputs: int) -> int:
        """Boxes per numpy pass: :data:`CHUNK`, or fewer where one box's equations (neurons x
        inputs, for every hidden layer, and the widest layer's back-substitution) would make a
        pass exceed :data:`CHUNK_BYTES` (a CIFAR-10 convolutional net: ~200 MB a box)."""
        widths = [lay.shape[0] for lay in self.hidden]
        per_box = 8 * (inputs + 1) * (sum(widths) + 2 * max(widths, default=0))
        return int(max(1, min(CHUNK, CHUNK_BYTES // max(per_box, 1))))

    # ------------------------------------------------------------------ spec rows
    def bound(self, lo: np.ndarray, hi: np.ndarray) -> BoxBounds:
        """Bounds of every hidden neuron and every spec row over boxes ``lo``/``hi`` (N, d).

        Boxes are processed in chunks of :data:`CHUNK`: the back-substitution arrays are
        (boxes, rows, neurons) and are memory-bound, so keeping them in cache matters more
        than making each numpy call large.
        """
        chunk = self.chunk(lo.shape[1])
        if len(lo) <= chunk:
            return self._bound(lo, hi)
        parts = [self._bound(lo[i : i + chunk], hi[i : i + chunk]) for i in range(0, len(lo), chunk)]
        return BoxBounds(
            [np.concatenate([p.pre_lower[k] for p in parts]) for k in range(len(parts[0].pre_lower))],
            [np.concatenate([p.pre_upper[k] for p in parts]) for k in range(len(parts[0].pre_upper))],
            np.concatenate([p.row_lower for p in parts]),
            np.concatenate([p.row_margin for p in parts]),
            np.concatenate([p.row_coef for p in parts]),
            np.concatenate([p.row_const for p in parts]),
            np.concatenate([p.split_score for p in parts]),
            np.concatenate([p.row_error for p in parts]),
            None if parts[0].row_slope is None else np.concatenate([p.row_slope for p in parts]),
        )

    def _bound(self, lo: np.ndarray, hi: np.ndarray) -> BoxBounds:
        pre_lo, pre_hi, shares = self.hidden_bounds(lo, hi) if self.hidden else ([], [], [])
        # The network as it runs in float32: each layer adds a rounding error of at most
        # ``local[k]`` (any summation order). The hidden bounds are widened by the accumulated
        # error so that they hold the executed values, which the ReLU relaxations are about, and
        # the back-substitution charges each layer's error at its own coefficients.
        local, total = layer_errors(self.layers, lo, hi, pre_lo, pre_hi)
        # ``total`` also holds the output layer's error: zip stops at the hidden layers
        pre_lo = [p - t for p, t in zip(pre_lo, total, strict=False)]
        pre_hi = [p + t for p, t in zip(pre_hi, total, strict=False)]
        last_error = local[-1] @ np.abs(self.spec).T  # (N, K): the output layer's own rounding
        losses: list[np.ndarray] = [np.zeros_like(a) for a in pre_lo]
        center = 0.5 * (lo + hi)
        radius = 0.5 * (hi - lo)
        absx = np.maximum(np.abs(lo), np.abs(hi))
        best: tuple[np.ndarray, ...] | None = None
        slope_idx = np.zeros(lo.shape[0:1] + (self.rows,), dtype=np.int8)
        # Every choice of lower slopes in [0, 1] gives a valid bound; the spec rows are few, so
        # several choices are tried and the best kept per box and row (a cheap stand-in for
        # optimising the slopes as alpha-CROWN does).
        for s_idx, slope in enumerate(SPEC_SLOPES):
            coef, const, const_abs = self._backward(
                self.last_w,
                self.last_b,
                self.last_b_abs,
                len(self.hidden),
                pre_lo,
                pre_hi,
                lo.shape[0],
                losses if slope == "area" else None,
                slope,
                local,
            )
            const = const - last_error
            acoef = np.abs(coef)
            lower = np.einsum("nkd,nd->nk", coef, center) - np.einsum("nkd,nd->nk", acoef, radius) + const
            mag = np.einsum("nkd,nd->nk", acoef, absx) + const_abs
            if best is None:
                best = (lower, mag, coef, const)
            else:
                better = lower > best[0]
                slope_idx[better] = s_idx
                best = (
                    np.where(better, lower, best[0]),
                    np.where(better, mag, best[1]),
                    np.where(better[:, :, None], coef, best[2]),
                    np.where(better, const, best[3]),
                )
        assert best is not None
        # Attribute each unstable neuron's relaxation loss to the inputs its range comes from.
        split_score = np.zeros(lo.shape)
        for loss, share in zip(losses, shares, strict=True):
            split_score += np.einsum("nj,njd->nd", loss, share)
        lower, mag, coef, const = best
        return BoxBounds(
            pre_lo, pre_hi, lower, proof_margin(mag), coef, const, split_score, np.zeros_like(lower), slope_idx
        )

    def _backward(
        self,
        rows: np.ndarray,
        const0: np.ndarray,
        const0_abs: np.ndarray,
        start: int,
        pre_lo: list[np.ndarray],
        pre_hi: list[np.ndarray],
        n_boxes: int,
        losses: list[np.ndarray] | None = None,
        slope: str = "area",
        errors: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower bounds of ``rows . h_{start-1} + const0`` as linear functions of the input.

        The rows (K, n) are pushed back through hidden layers ``start-1 .. 0`` with the triangle
        relaxation, whose lower slope is ``slope``: ``area`` (1 when u > -l, else 0), ``zero``,
        ``one`` or ``chord`` (u / (u - l)); any slope in [0, 1] is sound. Returns coefficients
        (N, K, d), constants (N, K) and the magnitude of the constants' terms (N, K) for the
        rounding margin. With ``losses`` (one (N, n_k) array per
        layer), adds each unstable neuron's worst-case relaxation gap times its coefficients'
        total size: what the bound loses to that neuron, the branching heuristic's ingredient.
        With ``errors`` (one (N, n_k) array per layer), layer k's pre-activation is the executed
        one, ``W h + b + e`` with ``|e| <= errors[k]``, and the bound pays ``|coefficient| *
        errors[k]`` for it (``pre_lo``/``pre_hi`` must then bound the executed values).
        """
        k_rows = rows.shape[0]
        lam = np.broadcast_to(rows, (n_boxes, *rows.shape))
        const = np.broadcast_to(const0, (n_boxes, k_rows)).copy()
        const_abs = np.broadcast_to(const0_abs, (n_boxes, k_rows)).copy()
        for k in range(start - 1, -1, -1):
            z_lo, z_hi = pre_lo[k], pre_hi[k]
            unstable = (z_lo < 0.0) & (z_hi > 0.0)
            # Slope for a negative coefficient (upper relaxation): 1 active, 0 inactive, chord.
            chord = np.where(unstable, z_hi / np.where(unstable, z_hi - z_lo, 1.0), 0.0)
            s_neg = np.where(z_lo >= 0.0, 1.0, chord)
            lam_z = lam * s_neg[:, None, :]
            cols = np.nonzero(unstable.any(axis=0))[0]
            if len(cols):
                # On unstable columns a positive coefficient takes the lower slope (0 or 1, by
                # area) instead of the chord, and a negative one picks up the chord's intercept.
                lo_c, hi_c, unst = z_lo[:, cols], z_hi[:, cols], unstable[:, cols]
                if slope == "area":
                    low = np.where(unst & (hi_c > -lo_c), 1.0, 0.0)
                elif slope == "one":
                    low = unst.astype(np.float64)
                elif slope == "zero":
                    low = np.zeros_like(hi_c)
                else:
                    low = chord[:, cols]
                diff = low - chord[:, cols]
                icpt = -chord[:, cols] * lo_c
                sub = lam[:, :, cols]
                pos = np.maximum(sub, 0.0)
                lam_z[:, :, cols] += pos * diff[:, None, :]
                if losses is not None:
                    gap = np.where(unst, hi_c * -lo_c / np.where(unst, hi_c - lo_c, 1.0), 0.0)
                    losses[k][:, cols] += np.abs(sub).sum(axis=1) * gap
                neg_icpt = np.einsum("nkj,nj->nk", sub, icpt) - np.einsum("nkj,nj->nk", pos, icpt)
                const += neg_icpt
                const_abs -= neg_icpt
            layer = self.hidden[k]
            const += lam_z @ layer.bias
            const_abs += np.abs(lam_z) @ self.b_abs[k]
            if errors is not None:
                const -= np.einsum("nkj,nj->nk", np.abs(lam_z), errors[k])
            n_out, n_in = layer.weight.shape
            lam = (lam_z.reshape(-1, n_out) @ layer.weight).reshape(n_boxes, k_rows, n_in)
        if start == 0:
            lam = lam.copy()
        return lam, const, const_abs


def _minimum(
    coef: np.ndarray,
    const: np.ndarray,
    const_abs: np.ndarray,
    center: np.ndarray,
    radius: np.ndarray,
    absx: np.ndarray,
    abs_slack: float,
    rel_slack: float,
) -> np.ndarray:
    """Minimum over each box of ``coef . x + const``, widened downward by the rounding slack."""
    acoef = np.abs(coef)
    lin = np.einsum("nkd,nd->nk", coef, center)
    rad = np.einsum("nkd,nd->nk", acoef, radius)
    mag = np.einsum("nkd,nd->nk", acoef, absx) + const_abs
    return lin - rad + const - (abs_slack + rel_slack * mag)


@dataclass
class DisjunctBounds:
    """Per box and unsafe disjunct, the best linear lower bound of ``max_k g_k`` found, (N, D).

    A disjunct (a conjunction of rows ``g_k <= 0``) is refuted on a box when ``max_k g_k > 0``
    there. ``max_k g_k >= sum_k lam_k g_k`` for any ``lam`` in the simplex, so each disjunct's
    bound is the best combination of its rows' linear lower bounds over a grid of ``lam``:
    this proves boxes on which no single row is positive everywhere (the conjunction is what is
    infeasible). ``coef``/``const`` (N, D, d)/(N, D) are the chosen combinations.
    """

    lower: np.ndarray
    margin: np.ndarray
    coef: np.ndarray
    const: np.ndarray
    #: (N, D): the row of ``_simplex_grid(rows of the disjunct)`` each chosen combination is
    choice: np.ndarray | None = None


def _simplex_grid(r: int) -> np.ndarray:
    """Points of the r-simplex: a regular grid for small r, vertices and pair midpoints else."""
    if r == 1:
        return np.ones((1, 1))
    steps = {2: 16, 3: 8, 4: 6, 5: 4}.get(r, 0)
    if steps:
        pts = [p for p in itertools.product(range(steps + 1), repeat=r - 1) if sum(p) <= steps]
        grid = np.array([[*p, steps - sum(p)] for p in pts], dtype=np.float64) / steps
    else:
        eye = np.eye(r)
        pairs = [0.5 * (eye[a] + eye[b]) for a, b in itertools.combinations(range(r), 2)]
        grid = np.vstack([eye, *pairs, np.full((1, r), 1.0 / r)])
    return grid


def disjunct_bounds(bb: BoxBounds, member: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> DisjunctBounds:
    """Combine row bounds into disjunct bounds (see :class:`DisjunctBounds`)."""
    n_boxes, _, d = bb.row_coef.shape
    n_dis = member.shape[0]
    lower = np.full((n_boxes, n_dis), -np.inf)
    margin = np.zeros((n_boxes, n_dis))
    coef = np.zeros((n_boxes, n_dis, d))
    const = np.zeros((n_boxes, n_dis))
    choice = np.zeros((n_boxes, n_dis), dtype=np.int64)
    center = 0.5 * (lo + hi)
    radius = 0.5 * (hi - lo)
    idx = np.arange(n_boxes)
    for j in range(n_dis):
        rows = np.nonzero(member[j])[0]
        if len(rows) == 0:
            continue  # an empty conjunction is true: never refuted
        grid = _simplex_grid(len(rows))  # (P, r)
        c = np.einsum("pr,nrd->npd", grid, bb.row_coef[:, rows])
        k = bb.row_const[:, rows] @ grid.T  # (N, P)
        vals = np.einsum("npd,nd->np", c, center) - np.einsum("npd,nd->np", np.abs(c), radius) + k
        best = np.argmax(vals, axis=1)
        lower[:, j] = vals[idx, best]
        coef[:, j] = c[idx, best]
        const[:, j] = k[idx, best]
        choice[:, j] = best
        margin[:, j] = bb.row_margin[:, rows].max(axis=1)
    return DisjunctBounds(lower, margin, coef, const, choice)


def _concretize(
    eq: np.ndarray, center: np.ndarray, radius: np.ndarray, absx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min, max and term magnitude over each box of linear functions ``eq`` (n, N, d + 1)."""
    coef = eq[:, :, :-1]
    const = eq[:, :, -1]
    lin = np.einsum("nbd,bd->nb", coef, center) + const
    acoef = np.abs(coef)
    rad = np.einsum("nbd,bd->nb", acoef, radius)
    mag = np.einsum("nbd,bd->nb", acoef, absx) + np.abs(const)
    return lin - rad, lin + rad, mag


def _relu_equations(
    eq_zl: np.ndarray,
    eq_zu: np.ndarray,
    z_lo: np.ndarray,
    z_hi: np.ndarray,
    lower_eq_hi: np.ndarray,
    upper_eq_lo: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper equations of ``relu(z)`` given those of ``z`` (Neurify's relaxation).

    With ``L(x) <= z <= U(x)`` and concrete bounds ``l <= z <= u``:
    ``relu(z) <= relu(U(x)) <= u' (U(x) - l') / (u' - l')`` where ``[l', u']`` bounds ``U`` (or
    ``U`` itself when ``l' >= 0``), and ``relu(z) >= relu(L(x)) >= lam L(x)`` with
    ``lam = u'' / (u'' - l)`` in [0, 1] where ``u''`` is the maximum of ``L`` (0 when ``u'' <= 0``).
    All arrays of bounds are (N, n); equations are (n, N, d + 1).
    """
    lo_t, hi_t = z_lo.T, z_hi.T
    l_hi, u_lo = lower_eq_hi.T, upper_eq_lo.T
    inactive = hi_t <= 0.0
    active = lo_t >= 0.0
    # Upper equation.
    u_hi = hi_t
    needs_chord = ~active & ~inactive & (u_lo < 0.0)
    denom = np.where(needs_chord, u_hi - u_lo, 1.0)
    up_scale = np.where(inactive, 0.0, np.where(needs_chord, u_hi / denom, 1.0))
    up_shift = np.where(needs_chord, -up_scale * u_lo, 0.0)
    eq_u = eq_zu * up_scale[:, :, None]
    eq_u[:, :, -1] += up_shift
    # Lower equation.
    unstable = ~active & ~inactive
    pos_part = unstable & (l_hi > 0.0)
    ldenom = np.where(pos_part, l_hi - lo_t, 1.0)
    low_scale = np.where(active, 1.0, np.where(pos_part, l_hi / ldenom, 0.0))
    eq_l = eq_zl * low_scale[:, :, None]
    return eq_l, eq_u
