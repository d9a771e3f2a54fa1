"""The exact leaf procedures on their own: z3 over exact rationals and the LP pieces, against the
MILP oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from formal_oracles import exact_margin, export_onnx, random_mlp, random_property

from msl.engines.formal.bounds import Leaf, SpecBounder
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.pieces import PieceSolver
from msl.engines.formal.property import InputRegion, Property
from msl.engines.formal.smt import LeafSolver


def _case(seed: int, folder: Path) -> tuple:
    rng = np.random.default_rng(seed)
    model = random_mlp(rng, 2, [6, 5], 2)
    net = PLNetwork.from_onnx(export_onnx(model, 2, folder / "n.onnx"))
    prop = random_property(rng, model, 2, 2)
    region = prop.regions[0]
    # A small box keeps the number of unstable ReLUs within reach of the piece enumeration.
    center = 0.5 * (np.array(region.lower) + np.array(region.upper))
    small = InputRegion(tuple(center - 0.2), tuple(center + 0.2))
    prop = Property((small,), prop.unsafe)
    rows = SpecRows.of(prop.unsafe, 2)
    bb = SpecBounder(net.folded, rows.matrix, rows.offset).bound(np.array([small.lower]), np.array([small.upper]))
    pre_lo = [a[0] for a in bb.pre_lower]
    pre_hi = [b[0] for b in bb.pre_upper]
    return model, net, prop, rows, small, pre_lo, pre_hi


@pytest.mark.parametrize("seed", range(16))
def test_z3_and_pieces_agree_with_milp(seed: int, tmp_path: Path) -> None:
    model, net, prop, rows, box, pre_lo, pre_hi = _case(seed, tmp_path)
    margin = exact_margin(model, prop)
    disjuncts = list(range(len(prop.unsafe.disjuncts)))
    leaf = Leaf(np.array(box.lower), np.array(box.upper), box, disjuncts, pre_lo, pre_hi)
    z3_answer = LeafSolver(net, rows).solve(leaf, np.zeros(len(rows.offset)), 30)
    assert z3_answer.variables > 0 and z3_answer.constraints > 0
    pieces = PieceSolver(net.folded, rows).decide(leaf)
    if margin > 1e-6:
        assert z3_answer.status == "sat"
        assert box.contains(z3_answer.x, tol=0.0)
        assert pieces.status == "candidates"
    elif margin < -1e-6:
        assert z3_answer.status == "unsat"
        assert pieces.status == "unsat"
