"""ACAS Xu instances (VNN-COMP 2021) against the consensus answers of ``expected.csv``.

Read from the shared benchmark folder (``MSL_ACASXU_DIR`` overrides); skipped when it is absent.
Every ``sat`` witness is re-checked here with onnxruntime, independently of the engine's replay.
"""

from __future__ import annotations

import csv

import numpy as np
import onnxruntime as ort
import pytest
from formal_oracles import acasxu_dir

from msl.engines.formal.vnnlib import read_vnnlib, run_vnnlib

FOLDER = acasxu_dir()
pytestmark = pytest.mark.skipif(
    not (FOLDER / "expected.csv").exists(), reason=f"ACAS Xu benchmark not found at {FOLDER} (set MSL_ACASXU_DIR)"
)


def _expected() -> dict[tuple[str, str], str]:
    with open(FOLDER / "expected.csv", newline="") as fh:
        return {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(fh)}


def _check(net: str, prop: int, timeout: float) -> None:
    onnx_name = f"ACASXU_run2a_{net}_batch_2000.onnx"
    prop_name = f"prop_{prop}.vnnlib"
    answer = run_vnnlib(FOLDER / onnx_name, FOLDER / prop_name, timeout)
    assert answer.status == _expected()[(onnx_name, prop_name)], answer.stats
    if answer.status == "sat":
        assert answer.witness_x is not None
        x = np.array(answer.witness_x, dtype=np.float32)
        sess = ort.InferenceSession(str(FOLDER / onnx_name), providers=["CPUExecutionProvider"])
        y = sess.run(None, {sess.get_inputs()[0].name: x.reshape(1, 1, 1, 5)})[0].astype(np.float64).ravel()
        np.testing.assert_allclose(y, answer.witness_y, atol=1e-6)
        props = read_vnnlib(FOLDER / prop_name)
        assert any(r.contains(x.astype(np.float64)) for p in props for r in p.regions)
        assert any(p.unsafe.holds(y[None, :])[0] for p in props)


@pytest.mark.parametrize(("net", "prop"), [("1_1", 1), ("3_1", 3), ("2_1", 4), ("2_1", 2), ("4_4", 2), ("1_6", 3)])
def test_fast_instances(net: str, prop: int) -> None:
    _check(net, prop, timeout=60)


def test_a_margin_near_the_float32_error_is_proved() -> None:
    """1_1 prop 5 holds by about 1.3e-3 near its hardest boxes, where the float32 error of a
    row carried with every unstable ReLU's slope as [0, 1] is about 3.5e-3: it timed out until
    the LP pieces charged each piece's rounding with its own phases (about 3e-4 there)."""
    _check("1_1", 5, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("net", "prop"),
    [("1_1", 6), ("1_9", 7), ("2_9", 8), ("3_3", 9), ("4_5", 10), ("3_3", 2), ("4_2", 2), ("1_7", 3), ("2_7", 1)],
)
def test_hard_instances(net: str, prop: int) -> None:
    _check(net, prop, timeout=116)
