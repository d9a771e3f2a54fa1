"""The engine's side of proof certificates: record the branch and bound's split tree and the
evidence that closed each box, and write it as a :class:`msl.certify.Certificate`.

The checker (:mod:`msl.certify`) is written on its own and shares no bound code with the
engine; this module only *records* what the search did: which input each box was bisected
along and where, which unsafe disjunct the bounds refuted on which box (with the simplex
weights that combined its rows and the lower-slope rule each row's bound used), and how every
remaining box was closed (all disjuncts refuted, outside the region's linear constraints, or by
an exact leaf: LP pieces or z3, which carry no checkable evidence yet).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msl.engines.formal.bounds import SPEC_SLOPES, BoxBounds, Leaf, _simplex_grid
from msl.engines.formal.property import InputRegion, Property


@dataclass
class TreeRecorder:
    """The split tree of one input-splitting search, node by node (ids: regions first)."""

    n_regions: int
    member: np.ndarray  # (D, K) the unsafe disjuncts' rows
    next_id: int = 0
    splits: dict[int, tuple[int, float, int, int]] = field(default_factory=dict)
    refuted: dict[
        int,
        tuple[list[list[int]], list[list[tuple[float, float]]], list[tuple[int, list[float], list[list[list[float]]]]]],
    ] = field(default_factory=dict)
    leaves: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    lp: dict[int, tuple[list[list[int]], list[tuple[list[int], int, list[float]]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.next_id = self.n_regions

    def refute(self, nodes: np.ndarray, newly: np.ndarray, bb: BoxBounds, choice: np.ndarray | None) -> None:
        """Record the disjuncts ``newly`` (N, D) refuted by the bounds ``bb`` on boxes ``nodes``:
        the simplex weights of the rows, the unstable ReLUs and each row's lower slopes on them."""
        if bb.row_slope is None or choice is None:
            return  # a bounder that does not say how: those boxes stay without evidence
        for i in np.nonzero(newly.any(axis=1))[0]:
            lows = [a[i] for a in bb.pre_lower]
            highs = [b[i] for b in bb.pre_upper]
            unstable = [np.nonzero((lo < 0.0) & (hi > 0.0))[0] for lo, hi in zip(lows, highs, strict=True)]
            refs = []
            for j in np.nonzero(newly[i])[0]:
                rows = np.nonzero(self.member[j])[0]
                weights = _simplex_grid(len(rows))[int(choice[i, j])]
                alpha = [
                    [
                        _slopes(SPEC_SLOPES[int(bb.row_slope[i, r])], lo[u], hi[u])
                        for lo, hi, u in zip(lows, highs, unstable, strict=True)
                    ]
                    for r in rows
                ]
                refs.append((int(j), [float(w) for w in weights], alpha))
            claims = [[_claim(lo[u_], hi[u_]) for u_ in u] for lo, hi, u in zip(lows, highs, unstable, strict=True)]
            self.refuted[int(nodes[i])] = ([[int(v) for v in u] for u in unstable], claims, refs)

    def lp_leaf(self, node: int, leaf: Leaf, evidence: list[tuple[tuple[bool, ...], int, np.ndarray]]) -> None:
        """A box closed by its linear pieces: the unstable ReLUs, and per piece and open
        disjunct the LP's multipliers."""
        unstable = [
            [int(j) for j in np.nonzero((a < 0.0) & (b > 0.0))[0]]
            for a, b in zip(leaf.pre_lo, leaf.pre_hi, strict=True)
        ]
        cases = [([int(b) for b in bits], j, [float(m) for m in mu]) for bits, j, mu in evidence]
        self.lp[int(node)] = (unstable, cases)
        self.leaf(node, "lp")

    def leaf(self, node: int, kind: str, constraint: int | None = None) -> None:
        self.leaves[int(node)] = (kind, constraint)

    def split(self, nodes: np.ndarray, dims: np.ndarray, mids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Children ids (lower halves, upper halves) of boxes ``nodes`` bisected at ``mids``."""
        n = len(nodes)
        left = np.arange(self.next_id, self.next_id + n)
        right = left + n
        self.next_id += 2 * n
        for p, d, m, a, b in zip(nodes, dims, mids, left, right, strict=True):
            self.splits[int(p)] = (int(d), float(m), int(a), int(b))
        return left, right


def _slopes(rule: str, lo: np.ndarray, hi: np.ndarray) -> list[float]:
    """The lower slopes of rule ``rule`` (see ``SpecBounder._backward``) on unstable ReLUs with
    bounds ``lo < 0 < hi``, rounded to 3 decimals: any slope in [0, 1] is sound, and short
    numbers keep certificates small."""
    if rule == "area":
        a = (hi > -lo).astype(np.float64)
    elif rule == "one":
        a = np.ones_like(hi)
    elif rule == "zero":
        a = np.zeros_like(hi)
    else:
        a = np.clip(np.round(hi / (hi - lo), 3), 0.0, 1.0)
    return [float(v) if v not in (0.0, 1.0) else int(v) for v in a]


#: Significant digits of the claimed bounds (rounded outward): short numbers, small certificates.
CLAIM_DIGITS = 5


def _claim(lo: float, hi: float) -> tuple[float, float]:
    """An unstable ReLU's pre-activation bounds as the certificate states them."""
    return _round(float(lo), -1), _round(float(hi), 1)


def _round(v: float, direction: int) -> float:
    """``v`` to :data:`CLAIM_DIGITS` significant digits, rounded down (-1) or up (1)."""
    if v == 0.0:
        return 0.0
    r = float(f"{v:.{CLAIM_DIGITS - 1}e}")
    while (r - v) * direction < 0:
        r = float(f"{r + direction * abs(r) * 10.0 ** (1 - CLAIM_DIGITS):.{CLAIM_DIGITS - 1}e}")
    return r


def outside_constraint(region: InputRegion, lo: np.ndarray, hi: np.ndarray) -> int | None:
    """The first of the region's linear constraints that the box provably misses."""
    for i, c in enumerate(region.constraints):
        a = np.asarray(c.coeffs)
        if float(np.where(a > 0, lo, hi) @ a) > c.rhs:
            return i
    return None


def file_sha256(path: str | Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(
    recorder: TreeRecorder | None, prop: Property, searched: tuple[InputRegion, ...], onnx: str | Path, name: str = ""
) -> object:
    """The certificate (a :class:`msl.certify.Certificate`) of an ``unsat`` answer.

    ``prop`` is the property as asked; ``searched`` its regions that the search covered (the
    others were found empty and get a leaf without evidence). ``recorder`` is None when the
    search never ran (the unsafe condition is false: every region is one leaf).
    """
    from msl.certify import Certificate, Constraint, NetworkRef, Node, PropertyText, Region

    regions = [
        Region(lower=list(r.lower), upper=list(r.upper),
               constraints=[Constraint(coeffs=list(c.coeffs), rhs=c.rhs, strict=c.strict) for c in r.constraints])
        for r in prop.regions
    ]
    unsafe = [
        [Constraint(coeffs=list(c.coeffs), rhs=c.rhs, strict=c.strict) for c in conj] for conj in prop.unsafe.disjuncts
    ]
    trees: list[list[Node]] = []
    for region in prop.regions:
        if region not in searched:
            trees.append([Node(leaf="empty")])
            continue
        root = searched.index(region)
        if recorder is None:
            trees.append([Node(leaf="bounds")])
            continue
        trees.append(_preorder(recorder, root))
    return Certificate(
        network=NetworkRef(sha256=file_sha256(onnx), name=name or Path(onnx).name),
        property=PropertyText(inputs=len(prop.regions[0].lower), regions=regions, unsafe=unsafe),
        trees=trees,
    )


def _preorder(rec: TreeRecorder, root: int) -> list[object]:
    from msl.certify import LpCase, LpEvidence, Node, Refutation

    out: list[object] = []
    stack = [root]
    while stack:
        node = stack.pop()
        unstable, claims, refs = rec.refuted.get(node, ([], [], []))
        extra = {"unstable": unstable, "bounds": claims,
                 "refute": [Refutation(disjunct=j, weights=w, alpha=a) for j, w, a in refs]} if refs else {}
        if node in rec.splits:
            d, m, a, b = rec.splits[node]
            out.append(Node(split=(d, m), **extra))
            stack.append(b)
            stack.append(a)
        else:
            kind, constraint = rec.leaves.get(node, ("open", None))
            lp = None
            if node in rec.lp:
                unstable, cases = rec.lp[node]
                lp = LpEvidence(
                    unstable=unstable, cases=[LpCase(phases=p, disjunct=j, multipliers=m) for p, j, m in cases]
                )
            out.append(Node(leaf=kind, outside=constraint, lp=lp, **extra))
    return out
