"""Neuron splitting (msl.engines.formal.neurons): every answer is checked against an exact MILP
over the torch weights, every witness replayed through torch, and the bounds of split
subproblems against sampled points of those subproblems — independently of the engine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
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

from msl.engines.formal import neurons
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.neurons import NeuronBounder, NeuronSplitSearch, prefers_neuron_split
from msl.engines.formal.property import Condition, InputRegion, LinearConstraint, Property
from msl.engines.formal.verify import verify
from msl.engines.formal.witness import confirm

#: MILP margins within this of zero are too close to call for the oracle (its tolerances).
AMBIGUOUS = 1e-3


def _instance(seed: int, folder: Path, inputs: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    n_in = inputs or int(rng.integers(64, 100))
    n_out = int(rng.integers(2, 5))
    hidden = [int(rng.integers(8, 20)) for _ in range(int(rng.integers(1, 4)))]
    model = random_mlp(rng, n_in, hidden, n_out)
    net = PLNetwork.from_onnx(export_onnx(model, n_in, folder / f"net{seed}.onnx"))
    return rng, model, net, n_in, n_out


def _check_witness(model: torch.nn.Module, prop: Property, x: np.ndarray) -> None:
    assert any(r.contains(x, tol=1e-6) for r in prop.regions)
    assert prop.unsafe.holds(torch_forward(model, x))[0]


def _small_box(rng: np.random.Generator, model: torch.nn.Module, n_in: int, n_out: int) -> Property:
    """A random property on a box of radius ~0.05 per input (like an L-inf robustness ball)."""
    prop = random_property(rng, model, n_in, n_out)
    center = rng.uniform(-1, 1, n_in)
    radius = rng.uniform(0.01, 0.08, n_in)
    return Property((InputRegion(tuple(center - radius), tuple(center + radius)),), prop.unsafe)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_neuron_splitting_agrees_with_milp(seed: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Many inputs: the neuron-splitting search alone (no falsifier) and verify() as a whole
    answer unsat only where the MILP finds no counterexample, sat only with a witness that
    violates the property on the torch model."""
    rng, model, net, n_in, n_out = _instance(seed, tmp_path_factory.mktemp("nets"))
    prop = _small_box(rng, model, n_in, n_out)
    assert prefers_neuron_split(net, prop)
    margin = exact_margin(model, prop)
    rows = SpecRows.of(prop.unsafe, n_out)
    search = NeuronSplitSearch(
        net, prop.regions, rows, lambda x: confirm(net, prop.regions, prop.unsafe, x), time.monotonic() + 20
    )
    out = search.run(until=time.monotonic() + 20)
    statuses = [out.status]
    if out.status == "sat":
        assert out.witness is not None
        _check_witness(model, prop, np.array(out.witness.x))
    result = verify(net, prop, timeout=20)
    statuses.append(result.status)
    if result.status == "sat":
        _check_witness(model, prop, np.array(result.witness_x))
    if "unsat" in statuses:
        assert margin < 1e-6, f"unsat but the MILP finds a counterexample with margin {margin:g}"
    if "sat" in statuses:
        assert margin > -1e-6
    if margin > AMBIGUOUS:
        assert result.status == "sat", (result.status, margin)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_split_bounds_hold_on_their_subproblems(seed: int, tmp_path: Path) -> None:
    """For random splits and random multipliers (alpha in [0, 1], beta >= 0), every row's lower
    bound is at most the row's value at every sampled input whose pre-activations have the
    split signs (computed by torch, not by the engine)."""
    rng, model, net, n_in, n_out = _instance(seed, tmp_path, inputs=6)
    center = rng.uniform(-1, 1, n_in)
    region = InputRegion(tuple(center - 0.5), tuple(center + 0.5))
    unsafe = Condition(tuple((LinearConstraint(tuple(rng.normal(0, 1, n_out)), 0.0),) for _ in range(3)))
    rows = SpecRows.of(unsafe, n_out)
    bounder = NeuronBounder(net, rows, region)
    pts = center + rng.uniform(-0.5, 0.5, (20000, n_in))
    h = pts
    signs = []
    for w, b in torch_layers(model)[:-1]:
        z = h @ w.T + b
        signs.append(np.sign(z))
        h = np.maximum(z, 0.0)
    g = torch_forward(model, pts) @ rows.matrix.T - rows.offset
    # Subproblems around sampled points: about a third of the ReLUs fixed to that point's signs.
    n = 16
    seeds = rng.choice(len(pts), n, replace=False)
    split = [torch.tensor((sg[seeds] * (rng.random(sg[seeds].shape) < 0.3)).astype(np.int8)) for sg in signs]
    alpha = [torch.tensor(rng.random((n, bounder.rows, s))) for s in bounder.sizes]
    beta = [torch.tensor(rng.exponential(1.0, (n, bounder.rows, s))) for s in bounder.sizes]
    lower = bounder.bound(split, alpha, beta, final=True).lower.numpy()
    checked = 0
    for i in range(n):
        inside = np.ones(len(pts), dtype=bool)
        for s, sg in zip(split, signs, strict=True):
            si = s[i].numpy()
            inside &= np.all((si == 0) | (si * sg >= 0), axis=1)
        if inside.any():
            checked += 1
            assert np.all(g[inside].min(axis=0) >= lower[i] - 1e-9), (i, g[inside].min(axis=0), lower[i])
    assert checked == n


def test_search_finds_a_counterexample_by_its_bounds(tmp_path: Path) -> None:
    """Without the falsifier, the search's own candidates (minimisers of the subproblems'
    linear bounds) find a counterexample where one exists with a clear margin."""
    rng, model, net, n_in, n_out = _instance(7, tmp_path, inputs=70)
    center = rng.uniform(-1, 1, n_in)
    region = InputRegion(tuple(center - 0.05), tuple(center + 0.05))
    layers = torch_layers(model)
    c = np.zeros(n_out)
    c[0] = -1.0
    # y_0 >= t, with t a bit below the exact maximum of y_0 (by MILP): a counterexample exists.
    top = milp_margin(layers, region, (LinearConstraint(tuple(c), 0.0),))
    thr = top - 0.02 * (abs(top) + 1.0)
    prop = Property((region,), Condition.of(LinearConstraint(tuple(c), -thr)))
    rows = SpecRows.of(prop.unsafe, n_out)
    search = NeuronSplitSearch(
        net, prop.regions, rows, lambda x: confirm(net, prop.regions, prop.unsafe, x), time.monotonic() + 60
    )
    out = search.run(until=time.monotonic() + 60)
    assert out.status == "sat", out.stats
    assert out.witness is not None
    _check_witness(model, prop, np.array(out.witness.x))


@pytest.mark.parametrize("seed", [3, 11])
def test_near_the_exact_maximum(seed: int, tmp_path: Path) -> None:
    """Just above an output's exact maximum nothing may be sat; just below it, never unsat."""
    rng, model, net, n_in, n_out = _instance(seed, tmp_path)
    center = rng.uniform(-1, 1, n_in)
    region = InputRegion(tuple(center - 0.05), tuple(center + 0.05))
    c = np.zeros(n_out)
    c[0] = -1.0
    top = milp_margin(torch_layers(model), region, (LinearConstraint(tuple(c), 0.0),))  # max y_0
    for thr, forbidden in ((top + 1e-3 * (1 + abs(top)), "sat"), (top - 1e-3 * (1 + abs(top)), "unsat")):
        prop = Property((region,), Condition.of(LinearConstraint(tuple(c), -thr)))
        result = verify(net, prop, timeout=20)
        assert result.status != forbidden, (thr, top, result.stats)
        rows = SpecRows.of(prop.unsafe, n_out)
        search = NeuronSplitSearch(
            net,
            prop.regions,
            rows,
            lambda x, prop=prop: confirm(net, prop.regions, prop.unsafe, x),
            time.monotonic() + 20,
        )
        assert search.run(until=time.monotonic() + 20).status != forbidden
        if result.status == "sat":
            _check_witness(model, prop, np.array(result.witness_x))


def test_selection_threshold(tmp_path: Path) -> None:
    """Few inputs or linear input constraints: input splitting stays."""
    _, _, net, n_in, n_out = _instance(5, tmp_path, inputs=5)
    box = InputRegion(tuple([0.0] * n_in), tuple([1.0] * n_in))
    unsafe = Condition.of(LinearConstraint(tuple([1.0] * n_out), 0.0))
    assert not prefers_neuron_split(net, Property((box,), unsafe))
    _, _, wide, n_in, n_out = _instance(5, tmp_path, inputs=neurons.NEURON_SPLIT_MIN_INPUTS)
    box = InputRegion(tuple([0.0] * n_in), tuple([1.0] * n_in))
    unsafe = Condition.of(LinearConstraint(tuple([1.0] * n_out), 0.0))
    assert prefers_neuron_split(wide, Property((box,), unsafe))
    constrained = InputRegion(box.lower, box.upper, (LinearConstraint(tuple([1.0] * n_in), 1.0),))
    assert not prefers_neuron_split(wide, Property((constrained,), unsafe))


def test_no_proof_where_float32_rounding_breaks_the_property(tmp_path: Path) -> None:
    """relu(2^30 x0 + 40) - relu(2^30 x0) is 40 over the reals but 0 in float32 at x0 = 1 (40
    is lost to an ulp of 128), a gap beyond the bound's float64 proof margin (~1e-8 of 2^31):
    the bounds alone (no falsifier, every candidate rejected) must not prove ``Y_0 > 10``."""
    from test_false_proofs import relu_chain, run_onnx

    d = neurons.NEURON_SPLIT_MIN_INPUTS
    first = np.zeros((2, d))
    first[:, 0] = float(2**30)
    onnx_path = relu_chain(tmp_path / "cancel.onnx", [(first.tolist(), [40.0, 0.0]), ([[1.0, -1.0]], [0.0])])
    lower, upper = [0.5] + [0.0] * (d - 1), [1.0] * d
    assert run_onnx(onnx_path, np.ones((1, d), dtype=np.float32))[0, 0] == 0.0  # the truth in float32
    net = PLNetwork.from_onnx(onnx_path)
    prop = Property((InputRegion.box(lower, upper),), Condition.of(LinearConstraint((1.0,), 10.0)))
    assert prefers_neuron_split(net, prop)
    search = NeuronSplitSearch(net, prop.regions, SpecRows.of(prop.unsafe, 1), lambda x: None, time.monotonic() + 30)
    out = search.run(until=time.monotonic() + 30)
    assert out.status != "unsat"
