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
``|W|`` (ReLU is 1-Lipschitz, and a neuron negative on the whole domain even with the error
added outputs exactly 0 in both), so the output error is bounded layer by layer from interval
bounds of the hidden values over the domain. Underflow adds at most ``2^-126`` per rounding.

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


def execution_error(net: PLNetwork, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per output, a bound on ``|y_float32(x) - y_real(x)|`` over every float32 ``x`` in the box.

    Interval bounds of the real network give the magnitude of every hidden value; the error of
    each layer is added to them (the executed value is what the next layer multiplies).
    """
    h_lo = np.asarray(lower, dtype=np.float64)
    h_hi = np.asarray(upper, dtype=np.float64)
    err = np.zeros_like(h_lo)  # the inputs are float32 values of the domain: exact
    layers = net.folded  # the real map from the raw input, for the interval bounds
    for k, (layer, real) in enumerate(zip(net.layers, layers)):
        abs_w, abs_b, roundings = layer.error_terms
        magnitude = np.maximum(np.abs(h_lo), np.abs(h_hi)) + err
        local = gamma(roundings) * (abs_w @ magnitude + abs_b) + roundings * TINY
        err = abs_w @ err + local
        w_pos, w_neg = np.maximum(real.weight, 0.0), np.minimum(real.weight, 0.0)
        z_lo = w_pos @ h_lo + w_neg @ h_hi + real.bias
        z_hi = w_pos @ h_hi + w_neg @ h_lo + real.bias
        # float64 rounding of these bounds is far below the float32 error being bounded
        slack = 1e-12 * (np.abs(real.weight) @ np.maximum(np.abs(h_lo), np.abs(h_hi)) + np.abs(real.bias) + 1.0)
        z_lo, z_hi = z_lo - slack, z_hi + slack
        if k + 1 < len(layers):
            dead = z_hi + err < 0.0  # negative in both the real and the executed network: exactly 0
            err = np.where(dead, 0.0, err)
            h_lo, h_hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    if not np.all(np.isfinite(err)):
        return np.full(net.output_dim, np.inf)
    return err
