"""Independent oracles for the formal engine's tests.

Random ReLU networks are built with torch and exported to ONNX; the exact answer is computed
by a mixed-integer program (big-M with interval bounds, solved by HiGHS) over the *torch*
weights, so neither the engine's ONNX reader nor its bounds take part in the check.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from msl.engines.formal.property import Condition, InputRegion, LinearConstraint, Property


def random_mlp(rng: np.random.Generator, inputs: int, hidden: list[int], outputs: int) -> torch.nn.Sequential:
    """A seeded MLP with ReLU between its Linear layers, in eval mode."""
    torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
    sizes = [inputs, *hidden, outputs]
    mods: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).eval()


def export_onnx(model: torch.nn.Module, inputs: int, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, inputs),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    return path


def torch_layers(model: torch.nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
        for m in model
        if isinstance(m, torch.nn.Linear)
    ]


def torch_forward(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.atleast_2d(x), dtype=torch.float32)).double().numpy()


def milp_margin(
    layers: list[tuple[np.ndarray, np.ndarray]], region: InputRegion, conj: tuple[LinearConstraint, ...]
) -> float:
    """The largest ``t`` with some x in the region meeting ``c.y + t <= d`` for every constraint
    (capped at 100); ``-inf`` when the MILP is infeasible. Positive: a counterexample with
    margin t exists; negative: the conjunction is unreachable by at least -t."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.setOptionValue("mip_rel_gap", 1e-9)
    lo = np.array(region.lower)
    hi = np.array(region.upper)
    xs = [h.addVariable(lb=float(a), ub=float(b)) for a, b in zip(lo, hi, strict=True)]
    for c in region.constraints:
        h.addConstr(sum(float(a) * x for a, x in zip(c.coeffs, xs, strict=True) if a != 0) <= c.rhs)
    cur = xs
    cur_lo, cur_hi = lo, hi
    for k, (w, b) in enumerate(layers):
        z_lo = np.maximum(w, 0) @ cur_lo + np.minimum(w, 0) @ cur_hi + b
        z_hi = np.maximum(w, 0) @ cur_hi + np.minimum(w, 0) @ cur_lo + b
        zs = []
        for j in range(w.shape[0]):
            z = h.addVariable(lb=float(z_lo[j]) - 1e-6, ub=float(z_hi[j]) + 1e-6)
            h.addConstr(z - sum(float(w[j, i]) * cur[i] for i in range(w.shape[1]) if w[j, i] != 0) == float(b[j]))
            zs.append(z)
        if k + 1 == len(layers):
            cur = zs
            break
        hs = []
        for j, z in enumerate(zs):
            lower, u = float(z_lo[j]), float(z_hi[j])
            if u <= 0:
                hs.append(h.addVariable(lb=0.0, ub=0.0))
            elif lower >= 0:
                hs.append(z)
            else:
                hv = h.addVariable(lb=0.0, ub=u)
                a = h.addVariable(lb=0.0, ub=1.0, type=highspy.HighsVarType.kInteger)
                h.addConstr(hv - z >= 0.0)
                h.addConstr(hv - z - lower * a <= -lower)  # h <= z - lower (1 - a)
                h.addConstr(hv - u * a <= 0.0)
                hs.append(hv)
        cur = hs
        cur_lo, cur_hi = np.maximum(z_lo, 0), np.maximum(z_hi, 0)
    t = h.addVariable(lb=-100.0, ub=100.0)
    for c in conj:
        h.addConstr(sum(float(a) * y for a, y in zip(c.coeffs, cur, strict=True) if a != 0) + t <= c.rhs)
    h.maximize(t)
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return -np.inf
    assert status == highspy.HighsModelStatus.kOptimal, status
    return float(h.getInfo().objective_function_value)


def exact_margin(model: torch.nn.Sequential, prop: Property) -> float:
    """max over regions and disjuncts of :func:`milp_margin`."""
    layers = torch_layers(model)
    return max(milp_margin(layers, r, conj) for r in prop.regions for conj in prop.unsafe.disjuncts)


def random_property(rng: np.random.Generator, model: torch.nn.Module, inputs: int, outputs: int) -> Property:
    """A random box and a random unsafe condition whose threshold is set from sampled outputs,
    so that both answers occur."""
    center = rng.uniform(-1, 1, inputs)
    radius = rng.uniform(0.05, 0.6, inputs)
    region = InputRegion(tuple(center - radius), tuple(center + radius))
    pts = center + radius * rng.uniform(-1, 1, (512, inputs))
    ys = torch_forward(model, pts)
    kind = int(rng.integers(0, 3))
    if kind == 0:  # a bound on one output
        i = int(rng.integers(0, outputs))
        q = float(np.quantile(ys[:, i], rng.choice([0.0, 0.01, 0.5, 1.0])))
        thr = q + float(rng.normal(0, 0.3 * (ys[:, i].std() + 1e-3)))
        coeffs = np.zeros(outputs)
        coeffs[i] = -1.0
        unsafe = Condition.of(LinearConstraint(tuple(coeffs), -thr))  # y_i >= thr
    elif kind == 1:  # the argmax is not i
        i = int(np.bincount(np.argmax(ys, axis=1), minlength=outputs).argmax())
        from msl.engines.formal.property import argmax_is_not

        unsafe = argmax_is_not(outputs, i)
    else:  # a conjunction of two random linear constraints
        cons = []
        for _ in range(2):
            c = rng.normal(0, 1, outputs)
            vals = ys @ c
            cons.append(LinearConstraint(tuple(c), float(np.quantile(vals, rng.uniform(0.0, 0.3)))))
        unsafe = Condition((tuple(cons),))
    return Property((region,), unsafe)


def acasxu_dir() -> Path:
    """The shared ACAS Xu benchmark folder (``MSL_ACASXU_DIR`` overrides)."""
    import os

    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "acasxu"
    return Path(os.environ.get("MSL_ACASXU_DIR", default))


def product_layers(
    a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Layers of ``x -> a(x) - b(x)`` for two networks of the same shape (for the MILP)."""
    out = []
    for k, ((wa, ba), (wb, bb)) in enumerate(zip(a, b, strict=True)):
        if k == 0:
            out.append((np.vstack([wa, wb]), np.concatenate([ba, bb])))
        elif k == len(a) - 1:
            out.append((np.hstack([wa, -wb]), ba - bb))
        else:
            zeros_ab = np.zeros((wa.shape[0], wb.shape[1]))
            zeros_ba = np.zeros((wb.shape[0], wa.shape[1]))
            out.append((np.block([[wa, zeros_ab], [zeros_ba, wb]]), np.concatenate([ba, bb])))
    return out


def max_difference(a: torch.nn.Sequential, b: torch.nn.Sequential, region: InputRegion) -> float:
    """``max over x in the region of |a(x) - b(x)|_inf``, by MILP."""
    layers = product_layers(torch_layers(a), torch_layers(b))
    m = layers[-1][0].shape[0]
    best = -np.inf
    for i in range(m):
        for sign in (1.0, -1.0):
            c = np.zeros(m)
            c[i] = -sign
            best = max(best, milp_margin(layers, region, (LinearConstraint(tuple(c), 0.0),)))
    return float(best)
