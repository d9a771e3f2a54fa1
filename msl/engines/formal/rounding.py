"""Float32 execution: how far the network as it runs can be from the network over the reals.

The engine proves properties of the parsed network, whose parameters are the model's float32
values read as exact reals. The model itself runs in float32, and every operation rounds: for
``relu(2^30 x + 1) - relu(2^30 x)`` the reals say 1 and onnxruntime says 0. A ``proved`` must
hold for the network as it executes, so the engine proves each unsafe constraint with a margin
that covers the largest possible difference between the two, for every input of the domain and
*any* summation order (BLAS kernels, FMA, threads), following Higham's bound for inner products:

    |fl(W h + b) - (W h + b)| <= gamma(n) * (|W| |h| + |b|),   gamma(n) = n u / (1 - n u),

with ``u = 2^-24`` the unit roundoff of float32 and ``n`` the roundings on the way (the fan-in
plus one for the bias, plus one per elementwise operation folded into the layer; see
:class:`~msl.engines.formal.network.AffineLayer`). Errors carry through the next layers by
``|W|`` (ReLU is 1-Lipschitz, and a neuron negative on the whole box even with the error
added outputs exactly 0 in both), so the output error is bounded layer by layer from the
bounds of the hidden values on each box of the branch and bound: the margin shrinks with the
box. Underflow adds at most ``2^-126`` per rounding.

The inputs themselves are float32 values of the domain, so they carry no error: a witness is
always a float32 point, replayed through the original model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msl.engines.formal.network import AffineLayer, PLNetwork

#: Unit roundoff of float32 (round to nearest).
UNIT_ROUNDOFF = 2.0**-24
#: The smallest normal float32: a flushed or underflowing result is off by less than this.
TINY = 2.0**-126


def gamma(n: int) -> float:
    """Higham's ``gamma_n``: the relative error bound of ``n`` chained float32 roundings."""
    nu = n * UNIT_ROUNDOFF
    if nu >= 0.5:
        return float("inf")
    return nu / (1.0 - nu)


def layer_errors(
    layers: Sequence[AffineLayer],
    lower: np.ndarray,
    upper: np.ndarray,
    pre_lower: Sequence[np.ndarray],
    pre_upper: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, (N, n_k) bounds on the rounding error of that layer alone (``local``) and on
    how far its executed output can be from the exact one (``total``: the error of the layers
    before carried through it by ``|W|``), over boxes ``lower``/``upper`` (N, d).

    ``pre_lower``/``pre_upper`` bound the real network's hidden pre-activations on each box
    (the branch and bound has them, and they shrink with the box, so the errors do too). The
    local errors are what a back-substituted bound needs (each weighted by its own
    coefficients, see :class:`~msl.engines.formal.bounds.SpecBounder`); the totals widen the
    hidden bounds to hold the executed values, and bound the outputs' error where only a
    single number per output can be used.
    """
    lo = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    magnitude = np.maximum(np.abs(lo), np.abs(hi))  # the raw inputs: float32 values, exact
    err = np.zeros_like(lo)
    local_errors: list[np.ndarray] = []
    totals: list[np.ndarray] = []
    last = len(layers) - 1
    with np.errstate(invalid="ignore", over="ignore"):
        for k, layer in enumerate(layers):
            abs_w, abs_b, roundings = layer.error_terms
            local = gamma(roundings) * ((magnitude + err) @ abs_w.T + abs_b) + roundings * TINY
            err = err @ abs_w.T + local
            local_errors.append(np.where(np.isfinite(local), local, np.inf))
            totals.append(np.where(np.isfinite(err), err, np.inf))
            if k < last:
                # Negative in both the real and the executed network: the ReLU outputs exactly 0.
                err = np.where(pre_upper[k] + err < 0.0, 0.0, err)
                magnitude = np.maximum(pre_upper[k], 0.0)
    return local_errors, totals


def execution_error(
    net: PLNetwork, lower: np.ndarray, upper: np.ndarray, pre_lower: list[np.ndarray], pre_upper: list[np.ndarray]
) -> np.ndarray:
    """Per box and output, a bound (N, m) on ``|y_float32(x) - y_real(x)|`` over every float32
    ``x`` of the boxes (see :func:`layer_errors`)."""
    return layer_errors(net.layers, lower, upper, pre_lower, pre_upper)[1][-1]


def row_error(
    layers: Sequence[AffineLayer],
    rows: np.ndarray,
    pre_lower: Sequence[np.ndarray],
    pre_upper: Sequence[np.ndarray],
    local: Sequence[np.ndarray],
) -> np.ndarray:
    """For one box, a bound (K,) on how far float32 execution can move each row ``rows @ y``.

    The executed output differs from the real one by ``e_L + W_L S_{L-1} (e_{L-1} + W_{L-1} ...)``
    where ``e_k`` is layer k's own rounding (``|e_k| <= local[k]``) and ``S_k`` the ReLU's
    difference quotients: 1 where layer k is active on the whole box, 0 where inactive, and
    somewhere in [0, 1] where it is unstable (``pre_lower``/``pre_upper`` must bound the executed
    pre-activations). Each error's coefficient is carried back with its sign, as an interval
    where a quotient is unknown, so errors that cancel through the weights are not counted twice
    — far tighter than :func:`layer_errors`' totals, which carry ``|W|``.
    """
    lam_lo = lam_hi = np.asarray(rows, dtype=np.float64)
    bound = np.abs(lam_lo) @ local[-1]
    for k in range(len(layers) - 2, -1, -1):
        w = layers[k + 1].weight
        w_pos, w_neg = np.maximum(w, 0.0), np.minimum(w, 0.0)
        h_lo = lam_lo @ w_pos + lam_hi @ w_neg
        h_hi = lam_hi @ w_pos + lam_lo @ w_neg
        active, inactive = pre_lower[k] >= 0.0, pre_upper[k] <= 0.0
        lam_lo = np.where(active, h_lo, np.where(inactive, 0.0, np.minimum(h_lo, 0.0)))
        lam_hi = np.where(active, h_hi, np.where(inactive, 0.0, np.maximum(h_hi, 0.0)))
        bound = bound + np.maximum(np.abs(lam_lo), np.abs(lam_hi)) @ local[k]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(bound), bound, np.inf)
