"""The formal engine's network reader against the truth (onnxruntime, one input at a time):
ONNX broadcasting, batching that must not change the function, the cross-check that refuses a
proof when the reading disagrees with the original model, and declared sizes checked against
the file's real weights."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from formal_oracles import export_onnx, random_mlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_builders import f32, node, onnx_net, ort_one_at_a_time

from msl.check import check_file
from msl.cli import cli
from msl.engines.formal.crosscheck import ReaderMismatch, crosscheck
from msl.engines.formal.equivalence import verify_equivalence
from msl.engines.formal.network import AffineLayer, PLNetwork
from msl.engines.formal.property import InputRegion, Property, output_bound
from msl.engines.formal.verify import verify
from msl.errors import UsageError
from msl.models import OnnxNetwork, load_model
from msl.models.batching import batch_independent
from msl.queries import NetOutput
from msl.run import Runner, RunOptions

ROOT = Path(__file__).resolve().parent.parent
BOX4 = "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_2 Real)(declare-const X_3 Real)\n" + "".join(
    f"(assert (>= X_{i} 0))(assert (<= X_{i} 1))" for i in range(4)
)


def broadcast_net(path: Path, batch: int | str = 1) -> Path:
    """Issue 12 item 2: Gemm (identity) -> Relu -> Add a (4, 1) constant -> Reshape [1, -1].

    ONNX broadcasts (1, 4) + (4, 1) to (4, 4): 16 outputs, Y_{4i+j} = relu(x_j) + c_i, so
    Y_1 = x_1 (c_0 = 0), while reading the constant as a vector gives Y_1 = x_1 + 10.
    """
    nodes = [
        node("Gemm", ["x", "W", "B"], "h"),
        node("Relu", ["h"], "r"),
        node("Add", ["r", "C"], "a", name="add_column"),
        node("Reshape", ["a", "S"], "y"),
    ]
    consts = {"W": np.eye(4, dtype=np.float32), "B": f32([0, 0, 0, 0]), "C": f32([[0], [10], [20], [30]]),
              "S": np.array([1, -1], dtype=np.int64)}
    return onnx_net(path, nodes, consts, [batch, 4])


def check_spec(path: Path, **bindings: str) -> dict:
    doc = Runner(RunOptions(progress=False, cache=False, bindings=bindings)).check([check_file(path)])
    return {f.claim.name: f for f in doc.findings}


# ---------------------------------------------------------------- broadcasting (item 2)


def test_broadcast_is_read_as_onnx_computes_it(tmp_path: Path) -> None:
    path = broadcast_net(tmp_path / "b.onnx")
    xs = np.random.default_rng(0).random((50, 4))
    truth = ort_one_at_a_time(path, xs)
    assert truth.shape == (50, 16) and np.allclose(truth[:, 1], xs[:, 1].astype(np.float32))  # Y_1 = x_1
    net = PLNetwork.from_onnx(path)
    assert net.output_dim == 16
    np.testing.assert_allclose(net.forward(xs), truth, rtol=1e-6, atol=1e-6)


def test_broadcast_vnnlib_is_not_unsat(tmp_path: Path) -> None:
    path = broadcast_net(tmp_path / "b.onnx")
    prop = tmp_path / "p.vnnlib"
    prop.write_text(BOX4 + "".join(f"(declare-const Y_{j} Real)" for j in range(16)) + "\n(assert (<= Y_1 5))\n")
    result = CliRunner().invoke(cli, ["vnnlib", str(path), str(prop), "--timeout", "20"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "sat"  # every input satisfies Y_1 <= 5
    x = np.array([float(p.strip(" ()").split()[1]) for p in lines[1:5]])
    assert ort_one_at_a_time(path, x[None])[0][1] <= 5


def test_broadcast_forall_claim_is_refuted_not_proved(tmp_path: Path) -> None:
    path = broadcast_net(tmp_path / "b.onnx")
    spec = tmp_path / "s.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model net: network
        verify second_output_large {
          forall x in box(lower: [0, 0, 0, 0], upper: [1, 1, 1, 1])
          expect net(x)[1] > 5
        }
    """))
    finding = check_spec(spec, net=str(path))["second_output_large"]
    assert finding.verdict.value == "refuted"
    x = np.asarray(finding.counterexamples[0].input, dtype=np.float64)
    assert ort_one_at_a_time(path, x[None])[0][1] <= 5


def test_broadcast_to_a_higher_rank_replays_one_input_at_a_time(tmp_path: Path) -> None:
    """(batch, 2) + (3, 1, 2) is (3, batch, 2): a batched run interleaves the inputs."""
    nodes = [node("Gemm", ["x", "W", "B"], "h"), node("Add", ["h", "C"], "y")]
    rng = np.random.default_rng(1)
    consts = {"W": f32(rng.normal(size=(2, 2))), "B": f32([0.5, -0.5]), "C": f32(rng.normal(size=(3, 1, 2)))}
    path = onnx_net(tmp_path / "r.onnx", nodes, consts, ["batch", 2])
    xs = rng.random((7, 2))
    truth = ort_one_at_a_time(path, xs)
    net = PLNetwork.from_onnx(path)
    np.testing.assert_allclose(net.forward(xs), truth, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(net.replay(xs), truth)


# ------------------------------------------------------------------- batching (item 6)


def reduce_sum_net(path: Path) -> Path:
    """Issue 12 item 6: y = x + ReduceSum(x, axis 0), declared batch 1 (so y = 2x)."""
    nodes = [node("ReduceSum", ["x", "axes"], "s", keepdims=1), node("Add", ["x", "s"], "y")]
    return onnx_net(path, nodes, {"axes": np.array([0], dtype=np.int64)}, [1, 1], [1, 1])


def test_a_network_that_mixes_the_batch_runs_one_input_at_a_time(tmp_path: Path) -> None:
    path = reduce_sum_net(tmp_path / "mix.onnx")
    net = load_model(str(path), "network")
    assert isinstance(net, OnnxNetwork) and not net.batched
    xs = np.array([[1.0], [2.0], [3.0]])
    out = np.stack(net.run([NetOutput(tuple(x)) for x in xs])).astype(np.float64)
    truth = ort_one_at_a_time(path, xs)
    np.testing.assert_array_equal(truth.ravel(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(out, truth)


def test_batch_independence_is_decided_conservatively(tmp_path: Path) -> None:
    import onnx

    mlp = export_onnx(random_mlp(np.random.default_rng(0), 3, [5], 2), 3, tmp_path / "mlp.onnx")
    assert batch_independent(onnx.load(str(mlp)).graph)
    assert not batch_independent(onnx.load(str(reduce_sum_net(tmp_path / "mix.onnx"))).graph)
    assert not batch_independent(onnx.load(str(broadcast_net(tmp_path / "b.onnx", batch="n"))).graph)  # Reshape [1, -1]
    keep = [node("Reshape", ["x", "S"], "r"), node("MatMul", ["r", "W"], "y")]
    for target, expected in (([0, -1], True), ([-1, 4], True), ([1, -1], False), ([-1, 2], False)):
        path = onnx_net(
            tmp_path / "k.onnx", keep, {"S": np.array(target, dtype=np.int64), "W": f32(np.ones((4, 1)))}, ["n", 2, 2]
        )
        assert batch_independent(onnx.load(str(path)).graph) is expected, target


# ----------------------------------------------------------- cross-check (defence in depth)


def _mlp_and_wrong_copy(tmp_path: Path) -> tuple[PLNetwork, PLNetwork, Path]:
    path = export_onnx(random_mlp(np.random.default_rng(3), 2, [8], 2), 2, tmp_path / "n.onnx")
    net = PLNetwork.from_onnx(path)
    w = net.layers[0].weight.copy()
    w[0, 0] += 0.25  # a slightly wrong reading, with the true replayer kept
    wrong = dataclasses.replace(net, layers=(AffineLayer(w, net.layers[0].bias), *net.layers[1:]))
    return net, wrong, path


def test_a_wrong_reading_refuses_the_proof(tmp_path: Path) -> None:
    net, wrong, _ = _mlp_and_wrong_copy(tmp_path)
    region = InputRegion.box([-1, -1], [1, 1])
    prop = Property((region,), output_bound(2, 0, ">=", 1e6))  # unsafe: unreachable, so unsat for both
    assert verify(net, prop, 10).status == "unsat"
    with pytest.raises(ReaderMismatch, match=r"output \d+ is .* as read, .* by the original"):
        verify(wrong, prop, 10)
    with pytest.raises(ReaderMismatch):
        verify_equivalence(net, wrong, region, 1e6, 10)
    with pytest.raises(ReaderMismatch):
        verify_equivalence(wrong, wrong, region, 1e6, 10)  # identical parameters, both wrong
    last = net.layers[-1]
    short = dataclasses.replace(net, layers=(*net.layers[:-1], AffineLayer(last.weight[:1], last.bias[:1])))
    with pytest.raises(ReaderMismatch, match="the original model returns 2 outputs"):
        verify(short, Property((region,), output_bound(1, 0, ">=", 1e6)), 10)


def test_a_wrong_reading_is_unknown_for_vnnlib_and_error_for_a_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, wrong, path = _mlp_and_wrong_copy(tmp_path)
    monkeypatch.setattr(PLNetwork, "from_onnx", classmethod(lambda cls, p: wrong))
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
        "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))(assert (>= Y_0 1000000))\n"
    )
    result = CliRunner().invoke(cli, ["vnnlib", str(path), str(prop), "--timeout", "10"])
    assert result.exit_code == 0 and result.stdout == "unknown\n"
    assert "reason:" in result.stderr and "disagrees with the original model" in result.stderr
    spec = tmp_path / "s.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model net: network
        verify bounded {
          forall x in box(lower: [-1, -1], upper: [1, 1])
          expect net(x)[0] <= 1000000
        }
    """))
    finding = check_spec(spec, net=str(path))["bounded"]
    assert finding.verdict.value == "error" and "disagrees with the original model" in finding.message
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model a: network
        model b: network
        verify close {
          forall x in box(lower: [-1, -1], upper: [1, 1])
          expect max(abs(a(x) - b(x))) <= 1000000
        }
    """))
    finding = check_spec(spec, a=str(path), b=str(path))["close"]  # the epsilon-equivalence path
    assert finding.verdict.value == "error" and "disagrees with the original model" in finding.message


def test_the_crosscheck_accepts_true_readings_and_float32_rounding(tmp_path: Path) -> None:
    for seed in range(5):
        path = export_onnx(random_mlp(np.random.default_rng(seed), 4, [16, 16], 3), 4, tmp_path / f"m{seed}.onnx")
        crosscheck(PLNetwork.from_onnx(path), [-3] * 4, [3] * 4, seed)
    # relu(2^30 x + 1) - relu(2^30 x): 1 over the reals, 0 in float32 -- rounding, not a misreading
    nodes = [node("Gemm", ["x", "W", "B"], "h"), node("Relu", ["h"], "r"), node("MatMul", ["r", "V"], "y")]
    consts = {"W": f32([[2.0**30, 2.0**30]]), "B": f32([1, 0]), "V": f32([[1], [-1]])}
    crosscheck(PLNetwork.from_onnx(onnx_net(tmp_path / "c.onnx", nodes, consts, [1, 1])), [0.5], [1.0], 0)


# ---------------------------------------------------------- declared sizes (issue 13, DoS)


def test_a_tiny_file_declaring_two_billion_inputs_is_refused_within_seconds(tmp_path: Path) -> None:
    path = onnx_net(tmp_path / "huge.onnx", [node("Relu", ["x"], "y")], {}, [1, 2_000_000_000])
    assert path.stat().st_size < 200
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= Y_0 1))\n"
    )

    def limit_memory() -> None:  # on a regression the child dies of MemoryError, not the machine
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "msl", "vnnlib", str(path), str(prop)],
        capture_output=True, text=True, timeout=60, preexec_fn=limit_memory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert time.monotonic() - start < 30
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "declares 2000000000 values, but the file holds only 0 weights" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


ACASXU = ROOT.parent / "shared" / "benchmarks" / "acasxu"


@pytest.mark.skipif(not (ACASXU / "prop_1.vnnlib").exists(), reason="the shared ACAS Xu benchmark is not here")
def test_on_acas_xu_the_crosscheck_passes_and_catches_a_one_percent_error() -> None:
    from msl.engines.formal.vnnlib import read_vnnlib

    net = PLNetwork.from_onnx(ACASXU / "ACASXU_run2a_1_1_batch_2000.onnx")
    for k in range(1, 11):
        for prop in read_vnnlib(ACASXU / f"prop_{k}.vnnlib"):
            for region in prop.regions:
                crosscheck(net, region.lower, region.upper, 0)
    region = read_vnnlib(ACASXU / "prop_1.vnnlib")[0].regions[0]
    for k in range(len(net.layers)):
        layers = list(net.layers)
        layers[k] = AffineLayer(layers[k].weight * 1.01, layers[k].bias)
        with pytest.raises(ReaderMismatch):
            crosscheck(dataclasses.replace(net, layers=tuple(layers)), region.lower, region.upper, 0)


@st.composite
def _broadcast_graphs(draw: st.DrawFn) -> tuple[tuple[int, ...], str, tuple[int, ...]]:
    """A view of a width-k activation, an elementwise operator, and a constant shape that
    broadcasts with it (possibly repeating the activation, possibly adding axes)."""
    k = draw(st.sampled_from([1, 2, 3, 4, 6]))
    splits = [(1, k)] + [(1, a, k // a) for a in (2, 3) if k % a == 0] + [(1, k, 1)]
    view = draw(st.sampled_from(splits))
    op = draw(st.sampled_from(["Add", "Sub", "Mul", "Div"]))
    dims = [draw(st.sampled_from([1, d, 2])) if d == 1 else draw(st.sampled_from([1, d])) for d in view]
    extra = draw(st.lists(st.integers(1, 3), max_size=2))
    cut = draw(st.integers(0, len(dims)))
    return view, op, (*extra, *dims[cut:]) if not extra else (*extra, *dims)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_broadcast_graphs(), const_first=st.booleans())
def test_broadcasting_is_read_exactly_or_refused_with_the_node_named(
    tmp_path: Path, case: tuple, const_first: bool
) -> None:
    view, op, cshape = case
    k = math.prod(view)
    rng = np.random.default_rng(abs(hash((view, op, cshape))) % 2**32)
    const = f32(rng.uniform(0.5, 2.0, size=cshape) * rng.choice([-1, 1], size=cshape))
    ins = ["C", "v"] if const_first else ["v", "C"]
    nodes = [
        node("Gemm", ["x", "W", "B"], "g"),
        node("Reshape", ["g", "S"], "v"),
        node(op, ins, "e", name="the_op"),
        node("Relu", ["e"], "r"),
        node("Reshape", ["r", "F"], "y"),
    ]
    consts = {"W": f32(rng.normal(size=(3, k))), "B": f32(rng.normal(size=k)), "S": np.array(view, dtype=np.int64),
              "C": const, "F": np.array([1, -1], dtype=np.int64)}
    path = onnx_net(tmp_path / "g.onnx", nodes, consts, [1, 3])
    xs = rng.uniform(-1, 1, (16, 3))
    truth = ort_one_at_a_time(path, xs)
    try:
        net = PLNetwork.from_onnx(path)
    except UsageError as exc:
        assert "'the_op'" in exc.message, exc.message
        assert op == "Div" and const_first, exc.message  # the one form that is not piecewise linear
        return
    np.testing.assert_allclose(net.forward(xs), truth, rtol=1e-5, atol=1e-5)
