"""Counterexample acceptance: the rule every ``sat`` answer must pass.

A candidate input ``x`` is accepted as a witness only when

1. it is rounded to float32 (the dtype the original model computes in), kept inside the box
   where a float32 value exists there, and lies in its input region within :data:`INPUT_TOL`;
2. the ORIGINAL model (onnxruntime on the user's file, or the user's torch module) replayed on
   that input is finite and meets the unsafe condition with every constraint's slack above a
   margin times ``1 + |d| + sum |c_i y_i|``: :data:`WITNESS_REL_MARGIN` by default, VNN-COMP's
   rule (a "violation" of 1e-14 is rounding, not a counterexample another machine would see),
   or 0 where outputs are judged exactly as the evaluator judges them (``msl check``).

The parsed network's own outputs are recorded but do not decide: the network as it runs is the
truth (in float32 it can differ from the reals, see :mod:`msl.engines.formal.rounding`).

Searches push candidates deeper into the unsafe set before asking (PGD keeps descending, the
exact solver is re-asked with a tightened condition), so a real counterexample normally clears
the margin by orders of magnitude; one that cannot is reported ``unknown``, never ``sat``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import Condition, InputRegion

#: Input constraints must hold within this tolerance (the VNN-COMP rule).
INPUT_TOL = 1e-4
#: Required slack of every unsafe constraint, relative to its magnitude.
WITNESS_REL_MARGIN = 1e-6


@dataclass(frozen=True)
class Witness:
    """An input (float32 values) and the original model's outputs on it."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    y_parsed: tuple[float, ...]


def to_float32_inside(x: np.ndarray, region: InputRegion) -> np.ndarray:
    """Round ``x`` to float32, nudging a coordinate back inside the box when rounding left it."""
    lo = np.asarray(region.lower)
    hi = np.asarray(region.upper)
    x32 = np.clip(np.asarray(x, dtype=np.float64), lo, hi).astype(np.float32)
    up = np.nextafter(x32, np.float32(np.inf))
    down = np.nextafter(x32, np.float32(-np.inf))
    x32 = np.where((x32 < lo) & (up <= hi), up, x32)
    x32 = np.where((x32 > hi) & (down >= lo), down, x32)
    return x32.astype(np.float64)


def confirm(
    net: PLNetwork,
    regions: tuple[InputRegion, ...],
    unsafe: Condition,
    x: np.ndarray,
    margin: float = WITNESS_REL_MARGIN,
) -> Witness | None:
    """The accepted witness for candidate ``x``, or None when it fails the rule above."""
    x = np.asarray(x, dtype=np.float64)
    for region in regions:
        if not region.contains(x, tol=INPUT_TOL):
            continue
        x32 = to_float32_inside(x, region)
        if not region.contains(x32, tol=INPUT_TOL):
            continue
        y_rep = net.replay(x32)
        if not np.all(np.isfinite(y_rep)) or not unsafe.holds(y_rep, margin)[0]:
            continue
        y64 = net.forward(x32)
        return Witness(tuple(float(v) for v in x32), tuple(float(v) for v in y_rep), tuple(float(v) for v in y64))
    return None
