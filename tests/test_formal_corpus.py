"""A corpus of tiny hand-built ONNX networks whose truth onnxruntime tells.

For each network the formal engine reads, ``PLNetwork.forward`` must equal onnxruntime (run
one input at a time) on random points, and ``msl vnnlib`` must answer two properties right:
``Y_j >= M - margin`` is ``sat`` (M is the largest Y_j onnxruntime shows on the box's corners and
random points; the witness is replayed through onnxruntime here) and ``Y_j >= M + margin`` is
``unsat`` (every case's Y_j is convex in x — affine, or a non-negative sum of ReLUs of affine
maps — so its maximum over the box is at a corner, and M is exact). Networks the reader does
not support must be refused with the node named, never read as another function. The answers
follow float32 execution (the truth) and numpy's argmax, first index winning ties.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_builders import f32, node, onnx_net, ort_one_at_a_time

from msl.check import check_file
from msl.cli import cli
from msl.engines.formal.crosscheck import forward_with_error
from msl.engines.formal.network import PLNetwork
from msl.errors import UsageError
from msl.run import Runner, RunOptions

Builder = Callable[[Path], Path]
RNG = np.random.default_rng(12)


def _w(*shape: int, positive: bool = False) -> np.ndarray:
    w = RNG.normal(size=shape).astype(np.float32)
    return np.abs(w) if positive else w


@dataclass(frozen=True)
class Case:
    name: str
    build: Builder
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    output: int = 0
    #: the reader must refuse it, naming this node
    refused_at: str | None = None
    #: float32 execution loses the result to rounding: forward() is compared within the
    #: rounding-error bound, and the vnnlib answers follow float32 (the truth), not the reals
    float32_loss: bool = False
    #: (operator, threshold, true answer) of the properties ``(op Y_j threshold)`` checked;
    #: by default ``>= M - margin`` (sat) and ``>= M + margin`` (unsat)
    properties: tuple[tuple[str, float, str], ...] | None = None


def _gemm_chain(
    w: np.ndarray, b: np.ndarray, tail: list[object], consts: dict[str, np.ndarray], **gemm: object
) -> Builder:
    def build(path: Path) -> Path:
        inputs = w.shape[1] if gemm.get("transB") else w.shape[0]
        nodes = [node("Gemm", ["x", "W", "B"], "h" if tail else "y", name="gemm", **gemm), *tail]
        return onnx_net(path, nodes, {"W": w, "B": b, **consts}, [1, inputs])

    return build


IDENTITY = _gemm_chain(np.eye(3, dtype=np.float32), f32([0, 0, 0]), [], {}, transB=1)
TIES = _gemm_chain(f32([[1, 1], [1, 1]]), f32([0.5, 0.5]), [], {})
GEMM_ALPHA_BETA = _gemm_chain(_w(3, 2), _w(3), [], {}, transB=1, alpha=0.5, beta=2.0)
BROADCAST = _gemm_chain(
    np.eye(4, dtype=np.float32),
    f32([0, 0, 0, 0]),
    [node("Relu", ["h"], "r"), node("Add", ["r", "C"], "a", name="add_column"), node("Reshape", ["a", "S"], "y")],
    {"C": f32([[0], [10], [20], [30]]), "S": np.array([1, -1], dtype=np.int64)},
)
BROADCAST_RANK = _gemm_chain(
    _w(2, 2), _w(2), [node("Relu", ["h"], "r"), node("Add", ["r", "C"], "y", name="add_rank3")], {"C": _w(3, 1, 2)}
)
SUB_CONST_FIRST = _gemm_chain(_w(2, 3), _w(3), [node("Relu", ["h"], "r"), node("Sub", ["C", "r"], "y")], {"C": _w(3)})
CANCELLATION = _gemm_chain(
    f32([[2.0**30, 2.0**30]]),
    f32([1, 0]),
    [node("Relu", ["h"], "r"), node("MatMul", ["r", "V"], "y")],
    {"V": f32([[1], [-1]])},
)
BATCHNORM = _gemm_chain(
    _w(2, 3),
    _w(3),
    [
        node("BatchNormalization", ["h", "s", "bb", "m", "v"], "n", epsilon=1e-3),
        node("Relu", ["n"], "r"),
        node("MatMul", ["r", "V"], "y"),
    ],
    {"s": _w(3), "bb": _w(3), "m": _w(3), "v": np.abs(_w(3)) + 0.5, "V": _w(3, 2, positive=True)},
)


def _normalise_matmul(path: Path) -> Path:
    """(x - mean) / std, MatMul + Add, Relu, MatMul + Add with Mul after it."""
    nodes = [
        node("Sub", ["x", "mean"], "c"),
        node("Div", ["c", "std"], "z"),
        node("MatMul", ["z", "W1"], "m1"),
        node("Add", ["m1", "b1"], "h1"),
        node("Relu", ["h1"], "r1"),
        node("MatMul", ["r1", "W2"], "m2"),
        node("Add", ["b2", "m2"], "h2"),
        node("Mul", ["h2", "k"], "y"),
    ]
    consts = {"mean": f32([0.5, -0.25, 1.0]), "std": f32([2.0, 0.5, 4.0]), "W1": _w(3, 4), "b1": _w(4),
              "W2": _w(4, 2, positive=True), "b2": _w(2), "k": f32([0.5, 3.0])}
    return onnx_net(path, nodes, consts, ["batch", 3])


def _flatten_reshape(path: Path) -> Path:
    """A (1, 2, 2) input through Identity, Flatten, Dropout, a Reshape to [1, -1], a Constant bias."""
    from onnx import helper, numpy_helper

    bias = helper.make_node("Constant", [], ["cb"], name="bias_const", value=numpy_helper.from_array(_w(4), "cb"))
    nodes = [
        node("Identity", ["x"], "i"),
        node("Flatten", ["i"], "f", axis=1),
        node("Dropout", ["f"], "d"),
        node("Reshape", ["d", "S"], "s"),
        bias,
        node("Gemm", ["s", "W"], "g"),
        node("Add", ["g", "cb"], "h"),
        node("Relu", ["h"], "r"),
        node("Mul", ["r", "two"], "y"),
    ]
    consts = {"S": np.array([1, -1], dtype=np.int64), "W": _w(4, 4), "two": f32(2.0)}
    return onnx_net(path, nodes, consts, [1, 2, 2])


def _reduce_over_batch(path: Path) -> Path:
    """y = Gemm(x) + ReduceSum(x, axis 0): mixes the inputs of a batch."""
    nodes = [
        node("Gemm", ["x", "W", "B"], "g"),
        node("ReduceSum", ["g", "axes"], "s", name="sum_batch", keepdims=1),
        node("Add", ["g", "s"], "y"),
    ]
    return onnx_net(path, nodes, {"W": f32([[1.0]]), "B": f32([0.0]), "axes": np.array([0], dtype=np.int64)}, [1, 1])


def _broadcast_then_matmul(path: Path) -> Path:
    """A broadcast to (4, 4) followed by a MatMul acting on each of its rows: not a single row."""
    nodes = [node("Add", ["x", "C"], "a"), node("MatMul", ["a", "W"], "y", name="rows_matmul")]
    return onnx_net(path, nodes, {"C": f32([[0], [1], [2], [3]]), "W": _w(4, 2)}, [1, 4])


def _conv_chain(
    conv: dict[str, object], kernel: tuple[int, ...], middle: list[object], consts: dict[str, np.ndarray], flat: int
) -> Builder:
    """Conv on a (1, 2, 2, 3) image, ``middle`` nodes from ``c`` to ``r``, then Flatten and a
    MatMul with non-negative weights (so each output is convex in x: its maximum is at a corner)."""

    def build(path: Path) -> Path:
        nodes = [
            node("Conv", ["x", "K", "kb"], "c", **conv),
            *middle,
            node("Flatten", ["r"], "f", axis=1),
            node("MatMul", ["f", "V"], "y"),
        ]
        return onnx_net(
            path,
            nodes,
            {"K": _w(*kernel), "kb": _w(kernel[0]), "V": _w(flat, 2, positive=True), **consts},
            [1, 2, 2, 3],
        )

    return build


# Groups, asymmetric pads and strides, a BatchNormalization over the channels, a Transpose.
CONV_GROUPS = _conv_chain(
    {"group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2], "kernel_shape": [2, 2]},
    (4, 1, 2, 2),
    [
        node("BatchNormalization", ["c", "s", "bb", "m", "v"], "n", epsilon=1e-3),
        node("Relu", ["n"], "t"),
        node("Transpose", ["t"], "r", perm=[0, 2, 3, 1]),
    ],
    {"s": _w(4), "bb": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5},
    16,
)
# Dilation and padding on every side.
CONV_DILATED = _conv_chain(
    {"dilations": [2, 1], "pads": [1, 1, 1, 1]}, (3, 2, 2, 2), [node("Relu", ["c"], "r")], {}, 24
)
CONV_MAXPOOL = _conv_chain(
    {}, (3, 2, 2, 2), [node("MaxPool", ["c"], "r", name="pool", kernel_shape=[1, 2])], {}, 3
)

CASES = [
    Case("identity", IDENTITY, (-1, -1, -1), (1, 1, 1), output=2),
    Case("ties", TIES, (-1, -1), (1, 1), output=1),
    Case("gemm_transB_alpha_beta", GEMM_ALPHA_BETA, (-1, 0), (1, 2), output=1),
    Case("broadcast_column_then_reshape", BROADCAST, (0, 0, 0, 0), (1, 1, 1, 1), output=1),
    Case("broadcast_to_higher_rank", BROADCAST_RANK, (-1, -1), (1, 1), output=4),
    Case("sub_constant_minus_activation", SUB_CONST_FIRST, (-1, -1), (1, 1), output=2),
    Case("normalise_matmul_add_mul", _normalise_matmul, (-1, -1, -1), (1, 1, 1), output=1),
    Case("batchnorm_folded", BATCHNORM, (-1, -1), (1, 1), output=0),
    Case("identity_flatten_dropout_reshape_constant", _flatten_reshape, (-1, -1, -1, -1), (1, 1, 1, 1), output=3),
    Case(
        "cancellation",
        CANCELLATION,
        (0.5,),
        (1.0,),
        float32_loss=True,
        properties=((">=", -1e-3, "sat"), ("<=", 0.5, "sat")),  # onnxruntime gives 0 everywhere
    ),
    Case("conv_groups_pads_strides_batchnorm_transpose", CONV_GROUPS, (-1,) * 12, (1,) * 12, output=1),
    Case("conv_dilated_padded", CONV_DILATED, (0,) * 6 + (-1,) * 6, (1,) * 12, output=0),
    Case("conv_then_maxpool", CONV_MAXPOOL, (-1,) * 12, (1,) * 12, refused_at="'pool' (MaxPool)"),
    Case("batch_mixing_reduce_sum", _reduce_over_batch, (-1,), (1,), refused_at="'sum_batch' (ReduceSum)"),
    Case(
        "broadcast_then_row_matmul",
        _broadcast_then_matmul,
        (-1, -1, -1, -1),
        (1, 1, 1, 1),
        refused_at="'rows_matmul' (MatMul)",
    ),
]


def _points(case: Case, n: int, seed: int) -> np.ndarray:
    lo, hi = np.array(case.lower, dtype=np.float64), np.array(case.upper, dtype=np.float64)
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
    rand = lo + np.random.default_rng(seed).random((n, lo.size)) * (hi - lo)
    return np.vstack([corners, rand]).astype(np.float32).astype(np.float64)


def _vnnlib(case: Case, path: Path, op: str, threshold: float, outputs: int) -> Path:
    lines = [f"(declare-const X_{i} Real)" for i in range(len(case.lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i, (lo, hi) in enumerate(zip(case.lower, case.upper, strict=True)):
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    lines.append(f"(assert ({op} Y_{case.output} {threshold!r}))")
    path.write_text("\n".join(lines) + "\n")
    return path


def _witness(stdout: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [p.strip(" ()\n").split() for p in stdout.splitlines()[1:]]
    xs = [float(v) for k, v in pairs if k.startswith("X_")]
    ys = [float(v) for k, v in pairs if k.startswith("Y_")]
    return np.array(xs), np.array(ys)


def _params(cases: list[Case]) -> list[object]:
    return [pytest.param(c, id=c.name) for c in cases]


READ = [c for c in CASES if c.refused_at is None]
REFUSED = [c for c in CASES if c.refused_at is not None]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in READ])
def test_forward_equals_onnxruntime(case: Case, tmp_path: Path) -> None:
    path = case.build(tmp_path / f"{case.name}.onnx")
    net = PLNetwork.from_onnx(path)
    xs = _points(case, 200, seed=1)
    truth = ort_one_at_a_time(path, xs)
    parsed = net.forward(xs)
    assert parsed.shape == truth.shape
    if case.float32_loss:  # the reals and float32 differ, by no more than the rounding bound
        _, err = forward_with_error(net, xs)
        assert np.all(np.abs(parsed - truth) <= 2 * err + 1e-6)
        assert np.any(np.abs(parsed - truth) > 0.5)  # and the loss is real
    else:
        np.testing.assert_allclose(parsed, truth, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.replay(xs), truth, rtol=0, atol=0)


@pytest.mark.parametrize("case", _params(READ))
def test_vnnlib_answers_follow_onnxruntime(case: Case, tmp_path: Path) -> None:
    path = case.build(tmp_path / f"{case.name}.onnx")
    xs = _points(case, 2000, seed=2)
    truth = ort_one_at_a_time(path, xs)
    top, outputs = float(truth[:, case.output].max()), truth.shape[1]  # exact: the max is at a corner
    margin = 1e-3 * (1.0 + abs(top))
    # float32 truth: the largest output is `top`, so Y >= top - margin is sat, Y >= top + margin unsat
    checks = case.properties or ((">=", top - margin, "sat"), (">=", top + margin, "unsat"))
    for k, (op, threshold, expected) in enumerate(checks):
        prop = _vnnlib(case, tmp_path / f"p{k}.vnnlib", op, threshold, outputs)
        result = CliRunner().invoke(cli, ["vnnlib", str(path), str(prop), "--timeout", "30"])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == expected, (op, threshold, result.output)
        if expected == "sat":
            x, y = _witness(result.stdout)
            assert np.all(x >= np.array(case.lower) - 1e-4) and np.all(x <= np.array(case.upper) + 1e-4)
            replayed = ort_one_at_a_time(path, x[None, :])[0]
            assert replayed[case.output] >= threshold if op == ">=" else replayed[case.output] <= threshold
            np.testing.assert_allclose(y, replayed, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in REFUSED])
def test_unsupported_networks_are_refused_with_the_node_named(case: Case, tmp_path: Path) -> None:
    path = case.build(tmp_path / f"{case.name}.onnx")
    outputs = ort_one_at_a_time(path, _points(case, 3, seed=3)).shape[1]  # onnxruntime runs it: the file is valid
    with pytest.raises(UsageError, match=case.refused_at.replace("(", r"\(").replace(")", r"\)")):
        PLNetwork.from_onnx(path)
    result = CliRunner().invoke(
        cli, ["vnnlib", str(path), str(_vnnlib(case, tmp_path / "p.vnnlib", ">=", 0.0, outputs))]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert case.refused_at in result.stderr and "Traceback" not in result.output


def test_ties_argmax_claim_follows_first_index_wins(tmp_path: Path) -> None:
    """y0 = y1 everywhere: argmax is 0 (numpy, ONNX ArgMax), so `argmax == 1` is false everywhere."""
    path = TIES(tmp_path / "ties.onnx")
    xs = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    truth = ort_one_at_a_time(path, xs)
    assert np.all(truth[:, 0] == truth[:, 1]) and np.all(np.argmax(truth, axis=1) == 0)
    spec = tmp_path / "s.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model net: network
        verify second_wins {
          forall x in box(lower: [-1, -1], upper: [1, 1])
          expect argmax(net(x)) == 1
        }
    """))
    doc = Runner(RunOptions(progress=False, cache=False, bindings={"net": str(path)})).check([check_file(spec)])
    assert doc.findings[0].verdict.value == "refuted"
