"""The LP pieces prove each row with a float32 margin of the piece's own phases: never a leaf on
which an execution within the rounding model reaches the unsafe set.

The truth here is independent of the engine's margin code: torch's autograd finds, for the
network executed with each layer's rounding error ``|e_k| <= layer_error[k]`` chosen against
the row (and the input moved against it), how low each row can go, and numpy runs the network
in float32 in several summation orders. Networks are built with neurons that sit at zero in
the middle of the box, so the executed and the real phases disagree there.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from msl.engines.formal.bounds import Leaf, SpecBounder
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import AffineLayer
from msl.engines.formal.pieces import PieceSolver
from msl.engines.formal.property import InputRegion
from msl.engines.formal.rounding import layer_errors

SIZES = (3, 8, 8, 8, 2)


def _network(rng: np.random.Generator, center: np.ndarray) -> tuple[AffineLayer, ...]:
    """float32 weights; two neurons per hidden layer with a bias that puts them at zero at the
    box centre (in float32), where rounding decides their phase."""
    layers = []
    h = center.astype(np.float32)
    for k in range(len(SIZES) - 1):
        w = rng.normal(size=(SIZES[k + 1], SIZES[k])).astype(np.float32)
        b = rng.normal(size=SIZES[k + 1]).astype(np.float32)
        z = w @ h
        if k < len(SIZES) - 2:
            for j in rng.choice(SIZES[k + 1], 2, replace=False):
                b[j] = -z[j]
        z = w @ h + b
        h = np.maximum(z, np.float32(0.0))
        layers.append(AffineLayer(w.astype(np.float64), b.astype(np.float64)))
    return tuple(layers)


def _float32_runs(layers: tuple[AffineLayer, ...], x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Outputs of the network run in float32, summing each dot product in several orders (the
    bias first or last), and once by numpy's own kernel."""
    runs = []
    for order in range(6):
        h = x.astype(np.float32)
        for k, layer in enumerate(layers):
            w, b = layer.weight.astype(np.float32), layer.bias.astype(np.float32)
            n_in = w.shape[1]
            perm = {0: np.arange(n_in), 1: np.arange(n_in)[::-1]}.get(order, rng.permutation(n_in))
            acc = b.copy() if order % 2 == 0 else np.zeros_like(b)
            for i in perm:
                acc = (acc + w[:, i] * h[i]).astype(np.float32)
            if order % 2 == 1:
                acc = (acc + b).astype(np.float32)
            h = acc if k == len(layers) - 1 else np.maximum(acc, np.float32(0.0))
        runs.append(h.astype(np.float64))
    h = x.astype(np.float32)
    for k, layer in enumerate(layers):
        z = layer.weight.astype(np.float32) @ h + layer.bias.astype(np.float32)
        h = z if k == len(layers) - 1 else np.maximum(z, np.float32(0.0))
    runs.append(h.astype(np.float64))
    return runs


def _lowest_execution(
    layers: tuple[AffineLayer, ...],
    local: list[np.ndarray],
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    starts: np.ndarray,
    pre_lo: list[np.ndarray],
    pre_hi: list[np.ndarray],
) -> float:
    """The lowest ``row . y`` found over executions ``z_k = W_k h + b_k + e_k`` with
    ``|e_k| <= local[k]`` and x in the box: each error set against the row's gradient (autograd),
    the input moved by signed gradient steps. Every execution visited is checked to lie inside
    the hidden bounds the leaf is given (they must hold the executed values)."""
    ws = [torch.tensor(lay.weight) for lay in layers]
    bs = [torch.tensor(lay.bias) for lay in layers]
    loc = [torch.tensor(e) for e in local]
    c = torch.tensor(row)
    t_lo, t_hi = torch.tensor(lo), torch.tensor(hi)
    best = float("inf")
    for x0 in starts:
        x = torch.tensor(x0)
        es = [torch.zeros_like(e) for e in loc]
        for step in range(10):
            x.requires_grad_(True)
            for e in es:
                e.requires_grad_(True)
            h = x
            for k, (w, b, e) in enumerate(zip(ws, bs, es, strict=True)):
                z = w @ h + b + e
                if k < len(ws) - 1:
                    zd = z.detach().numpy()
                    assert np.all(zd >= pre_lo[k] - 1e-12) and np.all(zd <= pre_hi[k] + 1e-12)
                    h = torch.relu(z)
                else:
                    h = z
            value = c @ h
            best = min(best, float(value.detach()))
            grads = torch.autograd.grad(value, [x, *es])
            es = [-torch.sign(g) * e for g, e in zip(grads[1:], loc, strict=True)]
            scale = 0.5 ** (step // 2) * 0.25 * (t_hi - t_lo)
            x = torch.clamp(x.detach() - scale * torch.sign(grads[0]), t_lo, t_hi)
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.sampled_from([1e-6, 1e-4, 1e-2]))
def test_pieces_never_certify_a_leaf_an_execution_reaches(seed: int, radius: float) -> None:
    rng = np.random.default_rng(seed)
    center = rng.uniform(-1, 1, SIZES[0]).astype(np.float32).astype(np.float64)
    layers = _network(rng, center)
    lo = (center - radius).astype(np.float32).astype(np.float64)
    hi = (center + radius).astype(np.float32).astype(np.float64)
    matrix = rng.normal(size=(2, SIZES[-1])).round(3)
    bounder = SpecBounder(layers, matrix, np.zeros(2))
    bb = bounder.bound(lo[None], hi[None])
    pre_lo = [a[0] for a in bb.pre_lower]
    pre_hi = [b[0] for b in bb.pre_upper]
    if sum(int(np.sum((a < 0) & (b > 0))) for a, b in zip(pre_lo, pre_hi, strict=True)) > 7:
        return  # too many pieces to enumerate in a unit test
    local_b, total_b = layer_errors(layers, lo[None], hi[None], bb.pre_lower, bb.pre_upper)
    local = [e[0] for e in local_b]
    region = InputRegion(tuple(lo), tuple(hi))
    starts = np.vstack([center, lo, hi, rng.uniform(lo, hi, (5, len(lo)))])
    for r in range(len(matrix)):
        reach = _lowest_execution(layers, local, matrix[r], lo, hi, starts, pre_lo, pre_hi)
        for x in rng.uniform(lo, hi, (20, len(lo))).astype(np.float32).astype(np.float64):
            reach = min([reach] + [float(matrix[r] @ y) for y in _float32_runs(layers, x, rng)])
        rows = SpecRows(
            matrix[r : r + 1], np.array([reach]), np.zeros(1, dtype=bool), np.ones((1, 1), dtype=bool), np.ones(1)
        )
        leaf = Leaf(lo, hi, region, [0], pre_lo, pre_hi, None, local)
        # Some execution meets row . y <= reach: the leaf must not be certified free of it.
        assert PieceSolver(layers, rows).decide(leaf).status != "unsat"
        # A row below the bounds' own lower bound by more than any float32 margin is certified
        # (the check above is not passed by a solver that never certifies).
        widest = float(np.abs(matrix[r]) @ total_b[-1][0])
        below = float(bb.row_lower[0, r]) - 2 * widest - 1e-6 * (1 + abs(float(bb.row_lower[0, r])))
        rows_below = SpecRows(
            matrix[r : r + 1], np.array([below]), np.zeros(1, dtype=bool), np.ones((1, 1), dtype=bool), np.ones(1)
        )
        assert PieceSolver(layers, rows_below).decide(leaf).status == "unsat"


def test_a_relu_that_rounding_switches_on_is_covered_by_the_pieces() -> None:
    """At x = (1, s, s, s, s, 2^-26) with s = 2^-24 + 2^-30, the neuron z = sum(x) + b with
    b = -(1 + 2^-21) is about -2^-22 over the reals, but summed in float32 from the left with
    the bias before the last term each s rounds up by almost 2^-24, and z is 2^-26: the
    executed ReLU is on where the real one is off, by more than the LP certificates' own
    float64 margin, and y = 2^24 relu(z) is 0.25 where the reals say 0. The piece with the ReLU
    on must admit x (its phase row relaxed by the rounding), or the leaf would be certified
    free of y >= 0.125, which that execution reaches."""
    s = 2.0**-24 + 2.0**-30
    x = np.array([1.0, s, s, s, s, 2.0**-26])
    bias = -(1.0 + 2.0**-21)
    x32 = x.astype(np.float32)
    assert np.array_equal(x32.astype(np.float64), x) and np.float32(bias) == bias  # exact float32
    z32 = np.float32(0.0)
    for term in [*x32[:-1], np.float32(bias), x32[-1]]:
        z32 = np.float32(z32 + term)
    y32 = np.float32(2.0**24) * max(z32, np.float32(0.0))
    assert y32 == 0.25
    z_real = sum(Fraction(v) for v in x) + Fraction(bias)
    assert z_real < -1e-7  # off over the reals, well beyond 1e-8 of its terms: y = 0
    layers = (
        AffineLayer(np.ones((1, len(x))), np.array([bias])),
        AffineLayer(np.array([[2.0**24]]), np.zeros(1)),
    )
    rows = SpecRows(
        np.array([[-1.0]]), np.array([-0.125]), np.zeros(1, dtype=bool), np.ones((1, 1), dtype=bool), np.ones(1)
    )
    bb = SpecBounder(layers, rows.matrix, rows.offset).bound(x[None], x[None])
    local = [e[0] for e in layer_errors(layers, x[None], x[None], bb.pre_lower, bb.pre_upper)[0]]
    leaf = Leaf(
        x,
        x,
        InputRegion(tuple(x), tuple(x)),
        [0],
        [a[0] for a in bb.pre_lower],
        [b[0] for b in bb.pre_upper],
        None,
        local,
    )
    assert PieceSolver(layers, rows).decide(leaf).status != "unsat"
