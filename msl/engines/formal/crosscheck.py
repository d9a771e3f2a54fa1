"""Before any proof: does the parsed network compute what the original model computes?

A proof is about :class:`~msl.engines.formal.network.PLNetwork`'s layers, which MSL's own
reader made from the user's ONNX file or torch module. A reader mistake (a broadcast read
wrongly, an operator's attribute ignored) would make every proof about another function, and
no witness would ever show it, since a proof has none. So the parsed network is run against
the original model (onnxruntime / torch, one batched call) on points of the domain — corners
(all of them up to 6 inputs, else :data:`CORNERS` seeded ones), the centre and
:data:`RANDOM_POINTS` seeded random points — and any disagreement beyond floating-point noise
refuses the proof with :class:`ReaderMismatch`.

Floating-point noise: the original runs in float32, the parsed network in float64. The
tolerance of output ``j`` at a point is ``REL_TOL |y_j| + ABS_TOL (1 + max_k |y_k|)`` plus
:data:`ERROR_FACTOR` times the bound of :mod:`msl.engines.formal.rounding` on the float32
rounding error of that output (the one proofs use). That bound is large where large terms
cancel, so a network whose float32 execution legitimately loses the result to rounding is not
mistaken for a reader bug.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import InputRegion
from msl.engines.formal.rounding import execution_error
from msl.values import EvalError

#: Corners checked at most (all of them while 2^d is no more).
CORNERS = 64
#: Seeded uniform points checked besides the corners and the centre.
RANDOM_POINTS = 256
REL_TOL = 1e-4
ABS_TOL = 1e-5
#: Safety factor on the propagated rounding-error bound: 2 for networks whose parameters are
#: the model's exactly, more where the reader folded maps the original computes one by one.
ERROR_FACTOR = 2.0
INEXACT_ERROR_FACTOR = 16.0
HINT = "this is a limitation or a bug of MSL's network reader; please report it with the model"


class ReaderMismatch(EvalError):
    """The parsed network disagrees with the original model: no proof may be given.

    An :class:`~msl.values.EvalError`, so a claim that meets it ends as ``error`` (and
    ``msl vnnlib`` answers ``unknown`` with the reason on stderr).
    """


def bounding_box(regions: Sequence[InputRegion]) -> tuple[np.ndarray, np.ndarray]:
    """The smallest box holding every region's box."""
    lower = np.min([r.lower for r in regions], axis=0)
    upper = np.max([r.upper for r in regions], axis=0)
    return lower, upper


def check_points(
    lower: np.ndarray, upper: np.ndarray, seed: int, corners: int = CORNERS, random_points: int = RANDOM_POINTS
) -> np.ndarray:
    """The points checked (float32 values, as float64): corners (all of them while ``2^d`` is
    at most ``corners``, else that many seeded ones), the centre, ``random_points`` seeded ones."""
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    d = lo.size
    rng = np.random.default_rng(seed)
    if 2**d <= corners:
        bits = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    else:
        bits = rng.integers(0, 2, size=(corners, d))
    vertices = np.where(bits == 1, hi, lo)
    centre = 0.5 * (lo + hi)
    uniform = lo + rng.random((random_points, d)) * (hi - lo)
    points = np.vstack([vertices, centre[None, :], uniform])
    return points.astype(np.float32).astype(np.float64)


def forward_with_error(net: PLNetwork, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The parsed network's outputs on ``x`` (N, d) in float64, and a bound (N, m) on how far
    the original's float32 execution may be from them (:mod:`msl.engines.formal.rounding` on
    each point as a box of its own)."""
    h = x
    pre: list[np.ndarray] = []
    layers = net.folded
    for i, layer in enumerate(layers):
        z = h @ layer.weight.T + layer.bias
        if i + 1 < len(layers):
            pre.append(z)
            h = np.maximum(z, 0.0)
        else:
            h = z
    return h, execution_error(net, x, x, pre, pre)


def crosscheck(
    net: PLNetwork, lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray, seed: int = 0
) -> None:
    """Raise :class:`ReaderMismatch` unless ``net``'s layers agree with ``net.replay`` (the
    original model) on the check points of the box ``[lower, upper]``."""
    points = check_points(np.asarray(lower), np.asarray(upper), seed)
    parsed, err = forward_with_error(net, points)
    original = np.asarray(net.replayer(points), dtype=np.float64).reshape(points.shape[0], -1)
    if original.shape[1] != net.output_dim:
        raise ReaderMismatch(
            f"{net.name}: the original model returns {original.shape[1]} outputs, the network as MSL read it"
            f" has {net.output_dim}; no proof is attempted",
            hint=HINT,
        )
    factor = ERROR_FACTOR if net.exact else INEXACT_ERROR_FACTOR
    scale = 1.0 + np.max(np.abs(np.nan_to_num(original, nan=0.0, posinf=0.0, neginf=0.0)), axis=1, keepdims=True)
    tol = REL_TOL * np.abs(parsed) + ABS_TOL * scale + factor * err
    ok = np.abs(parsed - original) <= tol  # False on NaN
    if ok.all():
        return
    i, j = (int(v) for v in np.argwhere(~ok)[0])
    where = ", ".join(f"{v:.9g}" for v in points[i])
    raise ReaderMismatch(
        f"{net.name}: the network as MSL read it disagrees with the original model at x = [{where}]:"
        f" output {j} is {parsed[i, j]!r} as read, {original[i, j]!r} by the original"
        f" (tolerance {tol[i, j]:.3g}; {int((~ok).sum())} of {ok.size} values differ); no proof is attempted",
        hint=HINT,
    )
