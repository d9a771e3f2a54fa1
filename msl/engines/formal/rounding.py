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

import numpy as np

from msl.engines.formal.network import PLNetwork

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


def execution_error(
    net: PLNetwork, lower: np.ndarray, upper: np.ndarray, pre_lower: list[np.ndarray], pre_upper: list[np.ndarray]
) -> np.ndarray:
    """Per box and output, a bound on ``|y_float32(x) - y_real(x)|`` over every float32 ``x``.

    ``lower``/``upper`` are (N, d) boxes and ``pre_lower``/``pre_upper`` (N, n_k) bounds on the
    real network's hidden pre-activations over them (the branch and bound has them for every
    box, and they shrink with the box, so the margin does too). Returns (N, m).
    """
    lo = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    magnitude = np.maximum(np.abs(lo), np.abs(hi))  # the raw inputs: float32 values, exact
    err = np.zeros_like(lo)
    last = len(net.layers) - 1
    for k, layer in enumerate(net.layers):
        abs_w, abs_b, roundings = layer.error_terms
        local = gamma(roundings) * ((magnitude + err) @ abs_w.T + abs_b) + roundings * TINY
        err = err @ abs_w.T + local
        if k < last:
            # Negative in both the real and the executed network: the ReLU outputs exactly 0.
            err = np.where(pre_upper[k] + err < 0.0, 0.0, err)
            magnitude = np.maximum(pre_upper[k], 0.0)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(err), err, np.inf)
