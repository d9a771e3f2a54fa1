"""Exact answers about the small ReLU organisms, by mixed-integer programming.

A test oracle that shares nothing with MSL's formal engine: the networks are read straight
from their ONNX Gemm nodes, every ReLU gets the standard big-M encoding with interval
bounds, and HiGHS (``highspy``) maximises the quantity asked for. Its
answers back the numbers in ``msl/organisms/relu-nets.md``; ``python tests/milp_oracle.py``
prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import highspy
import numpy as np
import onnx
from onnx import numpy_helper
from scipy.sparse import lil_matrix

Layers = list[tuple[np.ndarray, np.ndarray]]
ORGANISMS = Path(__file__).resolve().parent.parent / "msl" / "organisms"


def read_layers(path: Path) -> Layers:
    """``(W, b)`` per Gemm node in graph order, ``W`` of shape (out, in); ReLU between them."""
    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    layers: Layers = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
            w = init[node.input[1]]
            layers.append((w if attrs.get("transB", 0) else w.T, init[node.input[2]]))
        else:
            assert node.op_type == "Relu", node.op_type
    return layers


@dataclass
class Encoding:
    """A MILP under construction: variables with bounds, sparse linear rows."""

    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)

    def var(self, lo: float, hi: float, integer: bool = False) -> int:
        self.lb.append(lo)
        self.ub.append(hi)
        self.integer.append(int(integer))
        return len(self.lb) - 1

    def net(self, layers: Layers, inputs: list[int], lo: np.ndarray, hi: np.ndarray) -> list[int]:
        """Encode one network on the shared input variables; returns its output variables."""
        acts, a_lo, a_hi = inputs, lo, hi
        for depth, (w, b) in enumerate(layers):
            wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
            z_lo = wp @ a_lo + wn @ a_hi + b - 1e-6
            z_hi = wp @ a_hi + wn @ a_lo + b + 1e-6
            zs = []
            for j in range(w.shape[0]):
                z = self.var(z_lo[j], z_hi[j])
                self.rows.append(({z: 1.0, **{a: -w[j, i] for i, a in enumerate(acts)}}, b[j], b[j]))
                zs.append(z)
            if depth == len(layers) - 1:
                return zs
            new = []
            for j, z in enumerate(zs):
                if z_lo[j] >= 0:
                    new.append(z)
                elif z_hi[j] <= 0:
                    new.append(self.var(0.0, 0.0))
                else:
                    a, d = self.var(0.0, z_hi[j]), self.var(0.0, 1.0, integer=True)
                    self.rows.append(({a: 1.0, z: -1.0}, 0.0, np.inf))
                    self.rows.append(({a: 1.0, z: -1.0, d: -z_lo[j]}, -np.inf, -z_lo[j]))
                    self.rows.append(({a: 1.0, d: -z_hi[j]}, -np.inf, 0.0))
                    new.append(a)
            acts, a_lo, a_hi = new, np.maximum(z_lo, 0), np.maximum(z_hi, 0)
        return acts

    def maximize(self, objective: dict[int, float]) -> tuple[float, float, np.ndarray]:
        """(best value found, proven upper bound, the solution vector).

        """
        a = lil_matrix((len(self.rows), len(self.lb)))
        for r, (coeffs, _, _) in enumerate(self.rows):
            for v, c in coeffs.items():
                a[r, v] = c
        matrix = a.tocsc()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(self.lb), len(self.rows)
        lp.col_cost_ = np.array([-objective.get(v, 0.0) for v in range(len(self.lb))])
        lp.col_lower_, lp.col_upper_ = np.array(self.lb), np.array(self.ub)
        lp.row_lower_ = np.array([r[1] for r in self.rows])
        lp.row_upper_ = np.array([r[2] for r in self.rows])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = matrix.indptr, matrix.indices, matrix.data
        kinds = highspy.HighsVarType
        lp.integrality_ = [kinds.kInteger if i else kinds.kContinuous for i in self.integer]
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        solver.setOptionValue("mip_rel_gap", 1e-6)
        solver.passModel(lp)
        solver.run()
        status = solver.getModelStatus()
        assert status == highspy.HighsModelStatus.kOptimal, solver.modelStatusToString(status)
        info = solver.getInfo()
        bound = info.mip_dual_bound if any(self.integer) else info.objective_function_value
        return -info.objective_function_value, -bound, np.array(solver.getSolution().col_value)


def _inputs(enc: Encoding, lo: np.ndarray, hi: np.ndarray) -> list[int]:
    return [enc.var(lo[i], hi[i]) for i in range(len(lo))]


def max_gap(f: Layers, g: Layers, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float, np.ndarray]:
    """max over the box of ‖f(x) − g(x)‖∞: (value, upper bound, a maximising x)."""
    best = (-np.inf, -np.inf, np.zeros(len(lo)))
    for j in range(f[-1][0].shape[0]):
        for sign in (1.0, -1.0):
            enc = Encoding()
            xs = _inputs(enc, lo, hi)
            yf, yg = enc.net(f, xs, lo, hi), enc.net(g, xs, lo, hi)
            value, bound, sol = enc.maximize({yf[j]: sign, yg[j]: -sign})
            if value > best[0]:
                best = (value, max(bound, best[1]), sol[xs])
            else:
                best = (best[0], max(bound, best[1]), best[2])
    return best


def max_margin(f: Layers, cls: int, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float, np.ndarray]:
    """max over the box of y_cls − max_{k≠cls} y_k. Below 0: output ``cls`` is never maximal there."""
    enc = Encoding()
    xs = _inputs(enc, lo, hi)
    ys = enc.net(f, xs, lo, hi)
    t = enc.var(-1e3, 1e3)
    for k, y in enumerate(ys):
        if k != cls:
            enc.rows.append(({t: 1.0, ys[cls]: -1.0, y: 1.0}, -np.inf, 0.0))
    value, bound, sol = enc.maximize({t: 1.0})
    return value, bound, sol[xs]


BOX = (-np.ones(4), np.ones(4))
#: Sub-box where output 0 is never maximal (documented in relu-nets.md).
HOLDS_BOX = (np.array([0.5, 0.5, 0.0, -1.0]), np.array([1.0, 1.0, 1.0, 1.0]))
#: Box where "output 0 is never maximal" is violated.
VIOLATED_BOX = (np.array([0.0, -1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0, 1.0]))


def main() -> None:
    base = read_layers(ORGANISMS / "relu-net.onnx")
    for variant in ("pruned", "quantized"):
        value, bound, x = max_gap(base, read_layers(ORGANISMS / f"relu-net-{variant}.onnx"), *BOX)
        print(f"{variant}: max |f-g|_inf over [-1,1]^4 = {value:.6f} (bound {bound:.6f}) at x = {x.round(6).tolist()}")
    for name in ("relu-net", "relu-net-pruned", "relu-net-quantized"):
        net = read_layers(ORGANISMS / f"{name}.onnx")
        for label, box in (("holds box", HOLDS_BOX), ("violated box", VIOLATED_BOX)):
            value, bound, x = max_margin(net, 0, *box)
            print(
                f"{name} {label}: max y0 - max(y1, y2) = {value:.6f} (bound {bound:.6f}) at x = {x.round(6).tolist()}"
            )


if __name__ == "__main__":
    main()
