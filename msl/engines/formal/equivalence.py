"""epsilon-equivalence of two networks over a region: ``|f(x) - g(x)|_inf <= eps`` for every x.

The two networks are joined into one *product* network ``x -> f(x) - g(x)`` (one input, both
networks side by side, the last layer subtracting), and the general engine
(:func:`msl.engines.formal.verify.verify`) decides the property "some output of the difference
leaves [-eps, eps]" on it: falsification, input-split branch and bound, linear pieces and z3.
Counterexamples are replayed through *both* original models.

Bounding a difference naively is hopeless (independent bounds of two outputs of about the same
value give an interval of twice their range: +-600 on ACAS Xu). Back-substitution through the
product network already shares the input, and when both networks have the same layer sizes a
ReluDiff-style pass adds bounds on the *differences* of corresponding neurons,
``dz_k = z_k(f) - z_k(g)``, layer by layer: where both ReLUs are active the difference passes
through as a linear function of the input, where both are inactive it is zero, and otherwise
``relu(a) - relu(b)`` lies between ``min(0, a - b)`` and ``max(0, a - b)``. For a network and a
slightly perturbed copy these differences stay tiny where the naive bounds are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from msl.engines.formal.bab import WorkBudget
from msl.engines.formal.bounds import ABS_SLACK, REL_SLACK, BoxBounds, SpecBounder, proof_margin
from msl.engines.formal.crosscheck import bounding_box, crosscheck
from msl.engines.formal.network import AffineLayer, PLNetwork
from msl.engines.formal.property import Condition, InputRegion, LinearConstraint, Property
from msl.engines.formal.rounding import layer_errors
from msl.engines.formal.verify import FormalResult, verify
from msl.engines.formal.witness import WITNESS_REL_MARGIN
from msl.errors import UsageError


def difference_network(a: PLNetwork, b: PLNetwork) -> PLNetwork:
    """The product network ``x -> a(x) - b(x)``, replayed through both original models.

    Hidden layers are block-diagonal; a shallower network is extended with exact identity
    blocks (``y = relu(y) - relu(-y)``). Different input normalisations are folded into the
    first layers (in float64, so the product is then marked inexact).
    """
    if a.input_dim != b.input_dim or a.output_dim != b.output_dim:
        raise UsageError(
            f"the networks differ in shape: {a.input_dim} -> {a.output_dim} and {b.input_dim} -> {b.output_dim}"
        )
    same_norm = a.input_shift == b.input_shift and a.input_gain == b.input_gain
    la = list(a.layers if same_norm else a.folded)
    lb = list(b.layers if same_norm else b.folded)
    depth = max(len(la), len(lb))
    la, lb = _pad(la, depth), _pad(lb, depth)
    layers: list[AffineLayer] = []
    for k in range(depth):
        wa, wb = la[k].weight, lb[k].weight
        # Float32 execution: each network runs its own layer, so the product's error terms are
        # the two networks' terms side by side (summed where both read the same input).
        (aa, ba, ra), (ab, bb, rb) = la[k].error_terms, lb[k].error_terms
        if k == 0 and k == depth - 1:
            w, bias = wa - wb, la[k].bias - lb[k].bias
            abs_w, abs_b = aa + ab, ba + bb
        elif k == 0:
            w, bias = np.vstack([wa, wb]), np.concatenate([la[k].bias, lb[k].bias])
            abs_w, abs_b = np.vstack([aa, ab]), np.concatenate([ba, bb])
        elif k == depth - 1:
            w, bias = np.hstack([wa, -wb]), la[k].bias - lb[k].bias
            abs_w, abs_b = np.hstack([aa, ab]), ba + bb
        else:
            w = _block_diagonal(wa, wb)
            bias = np.concatenate([la[k].bias, lb[k].bias])
            abs_w, abs_b = _block_diagonal(aa, ab), np.concatenate([ba, bb])
        layers.append(AffineLayer(w, bias, abs_w, abs_b, max(ra, rb)))
    exact = a.exact and b.exact and same_norm and _exact_difference(la[-1].bias, lb[-1].bias)
    if depth == 1:
        exact = exact and _exact_difference(la[0].weight, lb[0].weight)
    notes = tuple(dict.fromkeys((*a.notes, *b.notes)))
    if not same_norm:
        notes += ("different input normalisations were folded into the first layers in float64",)

    def replay(x: np.ndarray) -> np.ndarray:
        return np.asarray(a.replayer(x), dtype=np.float64) - np.asarray(b.replayer(x), dtype=np.float64)

    return PLNetwork(
        layers=tuple(layers),
        input_shift=a.input_shift if same_norm else tuple([Fraction(0)] * a.input_dim),
        input_gain=a.input_gain if same_norm else tuple([Fraction(1)] * a.input_dim),
        exact=exact,
        name=f"{a.name} - {b.name}",
        replayer=replay,
        notes=notes,
    )


def _block_diagonal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.block([[a, np.zeros((a.shape[0], b.shape[1]))], [np.zeros((b.shape[0], a.shape[1])), b]])


def _identical(a: PLNetwork, b: PLNetwork) -> bool:
    return (
        a.input_shift == b.input_shift
        and a.input_gain == b.input_gain
        and len(a.layers) == len(b.layers)
        and all(
            la.shape == lb.shape and np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
            and _same_execution(la, lb)
            for la, lb in zip(a.layers, b.layers, strict=True)
        )
    )


def _same_execution(a: AffineLayer, b: AffineLayer) -> bool:
    """Whether two layers are computed by the same float32 operations (so round alike)."""
    (wa, ba, ra), (wb, bb, rb) = a.error_terms, b.error_terms
    return ra == rb and np.array_equal(wa, wb) and np.array_equal(ba, bb)


def _exact_difference(x: np.ndarray, y: np.ndarray) -> bool:
    return all(
        Fraction(float(p)) - Fraction(float(q)) == Fraction(float(p - q))
        for p, q in zip(x.ravel(), y.ravel(), strict=True)
    )


def _pad(layers: list[AffineLayer], depth: int) -> list[AffineLayer]:
    """Extend a network to ``depth`` layers without changing its function."""
    if len(layers) == depth:
        return layers
    last = layers[-1]
    m = last.shape[0]
    eye = np.eye(m)
    out = layers[:-1]
    abs_w, abs_b, roundings = last.error_terms
    out.append(
        AffineLayer(
            np.vstack([last.weight, -last.weight]), np.concatenate([last.bias, -last.bias]),
            np.vstack([abs_w, abs_w]), np.concatenate([abs_b, abs_b]), roundings,
        )
    )
    # The identity blocks are not executed by the model: they round nothing.
    for _ in range(depth - len(layers) - 1):
        out.append(AffineLayer(np.block([[eye, -eye], [-eye, eye]]), np.zeros(2 * m), roundings=0))
    out.append(AffineLayer(np.hstack([eye, -eye]), np.zeros(m), roundings=0))
    return out


def equivalence_condition(outputs: int, eps: float) -> Condition:
    """The unsafe condition on the difference ``d``: some ``d_i > eps`` or ``d_i < -eps``."""
    disjuncts = []
    for i in range(outputs):
        e = np.zeros(outputs)
        e[i] = 1.0
        disjuncts.append((LinearConstraint(tuple(-e), -eps, strict=True),))
        disjuncts.append((LinearConstraint(tuple(e), -eps, strict=True),))
    return Condition(tuple(disjuncts))


class DifferenceBounder(SpecBounder):
    """Back-substitution through the product network, tightened by ReluDiff-style bounds on
    the differences of corresponding neurons (networks with the same layer sizes)."""

    def __init__(self, a: PLNetwork, b: PLNetwork, product: PLNetwork, spec: np.ndarray, offset: np.ndarray) -> None:
        super().__init__(product.folded, spec, offset)
        self.a_layers = a.folded
        self.b_layers = b.folded
        self.sizes = [layer.shape[0] for layer in self.a_layers[:-1]]
        self.dw = [la.weight - lb.weight for la, lb in zip(self.a_layers, self.b_layers, strict=True)]
        self.db = [la.bias - lb.bias for la, lb in zip(self.a_layers, self.b_layers, strict=True)]
        self.offset_vec = np.asarray(offset, dtype=np.float64)

    def _bound(self, lo: np.ndarray, hi: np.ndarray) -> BoxBounds:
        bb = super()._bound(lo, hi)
        coef, const, mag = self._difference_rows(lo, hi, bb.pre_lower, bb.pre_upper)
        center = 0.5 * (lo + hi)
        radius = 0.5 * (hi - lo)
        absx = np.maximum(np.abs(lo), np.abs(hi))
        lower = np.einsum("nkd,nd->nk", coef, center) - np.einsum("nkd,nd->nk", np.abs(coef), radius) + const
        margin = proof_margin(np.einsum("nkd,nd->nk", np.abs(coef), absx) + mag)
        better = lower - margin > bb.row_lower - bb.row_margin
        # The difference rows are about the real networks: where they are used, float32
        # execution is allowed for by one margin per output (see msl.engines.formal.rounding).
        executed = layer_errors(self.layers, lo, hi, bb.pre_lower, bb.pre_upper)[1][-1] @ np.abs(self.spec).T
        return BoxBounds(
            bb.pre_lower,
            bb.pre_upper,
            np.where(better, lower, bb.row_lower),
            np.where(better, margin, bb.row_margin),
            np.where(better[:, :, None], coef, bb.row_coef),
            np.where(better, const, bb.row_const),
            bb.split_score,
            np.where(better, executed, bb.row_error),
        )

    def _difference_rows(
        self, lo: np.ndarray, hi: np.ndarray, pre_lo: list[np.ndarray], pre_hi: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Linear lower bounds (N, K, d), (N, K) of the spec rows from the neuron differences,
        with the magnitude (N, K) of their terms."""
        n_boxes, d = lo.shape
        center = 0.5 * (lo + hi)
        radius = 0.5 * (hi - lo)
        absx = np.maximum(np.abs(lo), np.abs(hi))
        # Equations (N, n, d + 1) of the lower and upper bounds of dz, starting exactly.
        first = np.concatenate([self.dw[0], self.db[0][:, None]], axis=1)
        eq_l = np.broadcast_to(first, (n_boxes, *first.shape)).copy()
        eq_u = eq_l.copy()
        mag = absx @ np.abs(self.dw[0]).T + np.abs(self.db[0])
        for k, n in enumerate(self.sizes):
            za_lo, za_hi = pre_lo[k][:, :n], pre_hi[k][:, :n]
            zb_lo, zb_hi = pre_lo[k][:, n:], pre_hi[k][:, n:]
            dz_lo = _low(eq_l, center, radius) - (ABS_SLACK + REL_SLACK * mag)
            dz_hi = -_low(-eq_u, center, radius) + (ABS_SLACK + REL_SLACK * mag)
            both_on = (za_lo >= 0) & (zb_lo >= 0)
            both_off = (za_hi <= 0) & (zb_hi <= 0)
            # Elsewhere: relu(a) - relu(b) within [min(0, da), max(0, da)], and within the
            # difference of the two ReLUs' ranges.
            ha_lo, ha_hi = np.maximum(za_lo, 0), np.maximum(za_hi, 0)
            hb_lo, hb_hi = np.maximum(zb_lo, 0), np.maximum(zb_hi, 0)
            c_lo = np.maximum(np.minimum(dz_lo, 0), ha_lo - hb_hi)
            c_hi = np.minimum(np.maximum(dz_hi, 0), ha_hi - hb_lo)
            keep = both_on[:, :, None]
            const_only = ~both_on & ~both_off
            eq_l = np.where(keep, eq_l, 0.0)
            eq_u = np.where(keep, eq_u, 0.0)
            eq_l[:, :, d] += np.where(const_only, c_lo, 0.0)
            eq_u[:, :, d] += np.where(const_only, c_hi, 0.0)
            # Next layer: dz' = W_a dh + dW h_b + db, h_b within its interval.
            w = self.a_layers[k + 1].weight
            wp, wn = np.maximum(w, 0), np.minimum(w, 0)
            new_l = np.einsum("ji,nid->njd", wp, eq_l) + np.einsum("ji,nid->njd", wn, eq_u)
            new_u = np.einsum("ji,nid->njd", wp, eq_u) + np.einsum("ji,nid->njd", wn, eq_l)
            dw = self.dw[k + 1]
            dwp, dwn = np.maximum(dw, 0), np.minimum(dw, 0)
            new_l[:, :, d] += hb_lo @ dwp.T + hb_hi @ dwn.T + self.db[k + 1]
            new_u[:, :, d] += hb_hi @ dwp.T + hb_lo @ dwn.T + self.db[k + 1]
            mag = np.abs(w) @ np.maximum(np.abs(dz_lo), np.abs(dz_hi)).T
            mag = mag.T + hb_hi @ np.abs(dw).T + np.abs(self.db[k + 1])
            eq_l, eq_u = new_l, new_u
        # Spec rows c . dy - d: lower bound from eq_l where c >= 0 and eq_u where c < 0.
        spec = self.spec
        sp, sn = np.maximum(spec, 0), np.minimum(spec, 0)
        rows = np.einsum("ki,nid->nkd", sp, eq_l) + np.einsum("ki,nid->nkd", sn, eq_u)
        rows[:, :, d] -= self.offset_vec
        row_mag = mag @ np.abs(spec).T + np.abs(self.offset_vec)
        return rows[:, :, :d], rows[:, :, d], row_mag


def _low(eq: np.ndarray, center: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Minimum over each box of equations (N, n, d + 1)."""
    coef = eq[:, :, :-1]
    return np.einsum("nid,nd->ni", coef, center) - np.einsum("nid,nd->ni", np.abs(coef), radius) + eq[:, :, -1]


def verify_equivalence(
    net_a: PLNetwork,
    net_b: PLNetwork,
    region: InputRegion | Sequence[InputRegion],
    eps: float,
    timeout: float = 60.0,
    seed: int = 0,
    witness_margin: float = WITNESS_REL_MARGIN,
    work: WorkBudget | None = None,
) -> FormalResult:
    """Decide ``|net_a(x) - net_b(x)|_inf <= eps`` for every x in the region (``witness_margin``
    and ``work`` as for :func:`~msl.engines.formal.verify.verify`).

    ``unsat`` means proved (the networks are eps-equivalent there); ``sat`` carries an input
    whose outputs, replayed through both original models, differ by more than eps
    (``witness_y`` is that difference; ``stats["witness_outputs"]`` has both outputs).
    """
    if not (eps >= 0 and np.isfinite(eps)):
        raise UsageError(f"eps must be a finite non-negative number, not {eps}")
    regions = (region,) if isinstance(region, InputRegion) else tuple(region)
    product = difference_network(net_a, net_b)
    for net in (net_a, net_b):  # both readings, before anything (even "identical") is concluded
        crosscheck(net, *bounding_box(regions), seed)
    if _identical(net_a, net_b):
        # The same parameters computed by the same operations: the same float32 results, so the
        # difference is exactly zero everywhere (bounds could only approach that).
        stats = {"method": "the two networks have identical parameters", "equivalence": {"eps": eps}, "time_s": 0.0}
        return FormalResult("unsat", stats=stats)
    prop = Property(regions, equivalence_condition(net_a.output_dim, eps), name=f"{eps}-equivalence")
    same_shape = (
        len(net_a.layers) == len(net_b.layers)
        and all(la.shape == lb.shape for la, lb in zip(net_a.layers, net_b.layers, strict=True))
        and len(product.layers) > 1
    )

    def bounder(spec: np.ndarray, offset: np.ndarray) -> SpecBounder:
        return (
            DifferenceBounder(net_a, net_b, product, spec, offset)
            if same_shape
            else SpecBounder(product.folded, spec, offset)
        )

    result = verify(product, prop, timeout, seed, bounder=bounder, witness_margin=witness_margin, work=work)
    result.stats["equivalence"] = {"eps": eps, "difference_bounds": "ReluDiff-style" if same_shape else "product only"}
    if result.status == "sat" and result.witness_x is not None:
        x = np.array(result.witness_x)
        result.stats["witness_outputs"] = {"a": net_a.replay(x).tolist(), "b": net_b.replay(x).tolist()}
    return result
