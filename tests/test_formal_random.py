"""Random small ReLU networks: every answer is compared with an exact MILP and every witness is
replayed through torch, independently of the engine."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from formal_oracles import (
    exact_margin,
    export_onnx,
    milp_margin,
    random_mlp,
    random_property,
    torch_forward,
    torch_layers,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msl.engines.formal.crosscheck import ReaderMismatch
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import Condition, InputRegion, LinearConstraint, Property
from msl.engines.formal.verify import FormalResult, verify

#: MILP margins within this of zero are too close to call for the oracle (its tolerances).
AMBIGUOUS = 1e-3


def _instance(seed: int, folder: Path) -> tuple:
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    hidden = [int(rng.integers(8, 25)) for _ in range(int(rng.integers(1, 4)))]
    model = random_mlp(rng, n_in, hidden, n_out)
    net = PLNetwork.from_onnx(export_onnx(model, n_in, folder / f"net{seed}.onnx"))
    return rng, model, net, n_in, n_out


def _check_witness(model, prop: Property, result: FormalResult) -> None:
    """The witness lies in the region and truly violates the property on the torch model."""
    assert result.witness_x is not None and result.witness_y is not None
    x = np.array(result.witness_x)
    assert any(r.contains(x, tol=1e-4) for r in prop.regions)
    y = torch_forward(model, x)
    np.testing.assert_allclose(y[0], result.witness_y, atol=1e-5)
    assert prop.unsafe.holds(y)[0]


def _check_against_milp(model, prop: Property, result: FormalResult) -> None:
    margin = exact_margin(model, prop)
    if result.status == "sat":
        _check_witness(model, prop, result)
        assert margin > -1e-6, f"sat but the MILP says every input stays {-margin:g} away"
    elif result.status == "unsat":
        assert margin < 1e-6, f"unsat but the MILP finds a counterexample with margin {margin:g}"
    if abs(margin) > AMBIGUOUS:
        assert result.status == ("sat" if margin > 0 else "unsat"), (result.status, margin, result.stats)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_random_networks_agree_with_milp(seed: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    rng, model, net, n_in, n_out = _instance(seed, tmp_path_factory.mktemp("nets"))
    prop = random_property(rng, model, n_in, n_out)
    start = time.monotonic()
    result = verify(net, prop, timeout=30)
    assert time.monotonic() - start < 10, result.stats
    _check_against_milp(model, prop, result)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_many_random_networks_agree_with_milp(seed: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    rng, model, net, n_in, n_out = _instance(seed, tmp_path_factory.mktemp("nets"))
    prop = random_property(rng, model, n_in, n_out)
    result = verify(net, prop, timeout=30)
    _check_against_milp(model, prop, result)


@pytest.mark.parametrize("seed", [3, 11, 42])
def test_tiny_margins_are_not_counterexamples(seed: int, tmp_path: Path) -> None:
    """Around the exact maximum of an output: just above it nothing may be reported sat; just
    below it a counterexample exists only with a margin too small to be told from rounding,
    so the answer must not be unsat, and sat only with a replayed witness."""
    rng, model, net, n_in, n_out = _instance(seed, tmp_path)
    region = InputRegion(tuple([-1.0] * n_in), tuple([1.0] * n_in))
    up = np.zeros(n_out)
    up[0] = -1.0
    peak = milp_margin(torch_layers(model), region, (LinearConstraint(tuple(up), 0.0),))  # max of y_0
    for delta, forbidden in ((1e-6, "sat"), (-1e-7, "unsat")):
        thr = peak + delta * (1 + abs(peak))
        prop = Property((region,), Condition.of(LinearConstraint(tuple(up), -thr)))  # y_0 >= thr
        result = verify(net, prop, timeout=20)
        assert result.status != forbidden, (delta, result.status, result.stats)
        if result.status == "sat":
            _check_witness(model, prop, result)


def test_a_parser_bug_cannot_confirm_itself(tmp_path: Path) -> None:
    """If the parsed network disagrees with the original model, nothing is reported sat: the
    cross-check refuses to start (and its counterexamples would fail the replay anyway)."""
    rng, model, net, n_in, n_out = _instance(5, tmp_path)
    region = InputRegion(tuple([-1.0] * n_in), tuple([1.0] * n_in))
    ys = net.forward(rng.uniform(-1, 1, (256, n_in)))
    c = np.zeros(n_out)
    c[0] = -1.0
    prop = Property((region,), Condition.of(LinearConstraint(tuple(c), -float(np.median(ys[:, 0])))))
    assert verify(net, prop, timeout=10).status == "sat"
    lying = dataclasses.replace(net, replayer=lambda x: np.asarray(net.replayer(x)) - np.eye(n_out)[0] * 1e3)
    with pytest.raises(ReaderMismatch):
        verify(lying, prop, timeout=5)


def test_result_carries_method_and_encoding_statistics(tmp_path: Path) -> None:
    rng, model, net, n_in, n_out = _instance(7, tmp_path)
    region = InputRegion(tuple([-0.5] * n_in), tuple([0.5] * n_in))
    c = np.zeros(n_out)
    c[0] = -1.0
    prop = Property((region,), Condition.of(LinearConstraint(tuple(c), -1e6)))  # y_0 >= 1e6: unsat
    result = verify(net, prop, timeout=20)
    assert result.status == "unsat" and result.proved
    for key in ("method", "branches", "leaves_smt", "encoding", "time_s", "network", "falsify"):
        assert key in result.stats
