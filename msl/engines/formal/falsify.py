"""The cheap falsifier: random sampling, then projected gradient descent, in numpy.

Every fast verifier tries to find a counterexample before proving anything, since a found
counterexample is a complete answer. The network is a ReLU MLP, so its gradient is a product of
masked weight matrices; computing it in numpy over a batch of points avoids importing torch
(about 2 s of start-up, which matters for a 1 s median).

The objective of a point is ``min over disjuncts of max over rows of (c.y - d) / (1 + |c|)``:
negative exactly when the point meets a disjunct of the unsafe condition. PGD descends it with
signed steps projected onto the box and keeps going after it turns negative, so that candidates
end deep inside the unsafe set and clear the witness margin (:mod:`msl.engines.formal.witness`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import Condition, InputRegion


@dataclass
class SpecRows:
    """The unsafe condition flattened into rows ``C y - d`` and their disjunct membership."""

    matrix: np.ndarray  # (K, m)
    offset: np.ndarray  # (K,)
    strict: np.ndarray  # (K,) bool
    member: np.ndarray  # (D, K) bool: row k belongs to disjunct j
    norm: np.ndarray  # (K,) 1 + |c_k|_1, to compare rows on one scale

    @classmethod
    def of(cls, unsafe: Condition, outputs: int) -> SpecRows:
        rows = [c for conj in unsafe.disjuncts for c in conj]
        k = len(rows)
        matrix = np.zeros((k, outputs))
        offset = np.zeros(k)
        strict = np.zeros(k, dtype=bool)
        member = np.zeros((len(unsafe.disjuncts), k), dtype=bool)
        pos = 0
        for j, conj in enumerate(unsafe.disjuncts):
            for c in conj:
                matrix[pos] = c.coeffs
                offset[pos] = c.rhs
                strict[pos] = c.strict
                member[j, pos] = True
                pos += 1
        return cls(matrix, offset, strict, member, 1.0 + np.abs(matrix).sum(axis=1))

    def objective(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point: the objective value and the row that attains it (whose gradient to follow)."""
        g = (y @ self.matrix.T - self.offset) / self.norm  # (N, K)
        masked = np.where(self.member[None, :, :], g[:, None, :], -np.inf)  # (N, D, K)
        worst_row = np.argmax(masked, axis=2)  # (N, D)
        worst = np.take_along_axis(masked, worst_row[:, :, None], axis=2)[:, :, 0]
        best_disjunct = np.argmin(worst, axis=1)
        value = worst[np.arange(len(y)), best_disjunct]
        row = worst_row[np.arange(len(y)), best_disjunct]
        return value, row


def _gradient(net: PLNetwork, x: np.ndarray, directions: np.ndarray, leak: float = 0.0) -> np.ndarray:
    """Gradient of ``directions[n] . f(x[n])`` with respect to ``x[n]``, batched.

    With ``leak`` > 0 an inactive ReLU passes that fraction of the gradient (the gradient of a
    leaky ReLU), so that a search started where every path is dead still finds a direction.
    """
    layers = net.folded
    masks = []
    h = x
    for layer in layers[:-1]:
        z = h @ layer.weight.T + layer.bias
        masks.append(np.where(z > 0, 1.0, leak))
        h = np.maximum(z, 0.0)
    v = directions @ layers[-1].weight
    for layer, mask in zip(reversed(layers[:-1]), reversed(masks), strict=True):
        v = (v * mask) @ layer.weight
    return v


def _sample(region: InputRegion, n: int, rng: np.random.Generator) -> np.ndarray:
    lo = np.asarray(region.lower)
    hi = np.asarray(region.upper)
    pts = lo + (hi - lo) * rng.random((n, lo.size))
    # A third of the samples have coordinates snapped to the box's faces: extreme inputs are
    # where counterexamples often sit, and uniform samples almost never reach them.
    snap = rng.random((n, lo.size)) < np.where(np.arange(n) % 3 == 0, 0.3, 0.0)[:, None]
    pts = np.where(snap, np.where(rng.random((n, lo.size)) < 0.5, lo, hi), pts)
    pts[0] = 0.5 * (lo + hi)
    if region.constraints:
        keep = np.ones(n, dtype=bool)
        for c in region.constraints:
            keep &= c.slack(pts) >= 0
        pts = pts[keep]
    return pts


def falsify(
    net: PLNetwork,
    regions: tuple[InputRegion, ...],
    rows: SpecRows,
    deadline: float,
    rng: np.random.Generator,
    samples: int = 2000,
    starts: int = 32,
    steps: int = 60,
) -> tuple[np.ndarray, dict[str, float]]:
    """Candidate counterexamples, best first (possibly empty), and statistics.

    Samples ``samples`` points per region, runs ``steps`` PGD steps from the ``starts`` best, and
    returns every point whose objective is negative, sorted by objective.
    """
    found: list[tuple[float, np.ndarray]] = []
    evaluated = 0
    best = np.inf
    for region in regions:
        if time.monotonic() > deadline:
            break
        lo = np.asarray(region.lower)
        hi = np.asarray(region.upper)
        pts = _sample(region, samples, rng)
        if len(pts) == 0:
            continue
        val, _ = rows.objective(net.forward(pts))
        evaluated += len(pts)
        # Half the starts are the best samples, half random ones: the best samples often sit in
        # one flat region (every ReLU of a layer off) where the gradient vanishes.
        order = np.argsort(val)
        x = np.concatenate([pts[order[: starts // 2]], pts[rng.choice(len(pts), starts - starts // 2)]])
        width = hi - lo
        for step in range(steps):
            if time.monotonic() > deadline:
                break
            y = net.forward(x)
            val, row = rows.objective(y)
            evaluated += len(x)
            for v, p in zip(val, x, strict=True):
                if v < 0:
                    found.append((float(v), p.copy()))
            best = min(best, float(val.min()))
            direction = rows.matrix[row] / rows.norm[row][:, None]
            grad = _gradient(net, x, direction, leak=0.1 if step < steps // 2 else 0.0)
            size = width * 0.1 * 1e-4 ** (step / max(steps - 1, 1))
            x = np.clip(x - size * np.sign(grad), lo, hi)
        y = net.forward(x)
        val, _ = rows.objective(y)
        for v, p in zip(val, x, strict=True):
            if v < 0:
                found.append((float(v), p.copy()))
    found.sort(key=lambda t: t[0])
    points = np.array([p for _, p in found[:16]]) if found else np.zeros((0, len(regions[0].lower)))
    return points, {"points_evaluated": float(evaluated), "best_objective": best}
