"""Regression tests for false proofs (issue 12): each claim below was once ``proved`` while the
network, as onnxruntime runs it, violates it. The truth of every case is computed here with
onnxruntime (or by hand) and the verdict must agree with it: ``refuted`` with a witness that
replays, or an honest ``inconclusive``/``error`` — never ``proved``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from msl.check import check_file
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import InputRegion, Property, argmax_is, linear
from msl.engines.formal.verify import verify
from msl.run import Runner, RunOptions

Layer = tuple[list[list[float]], list[float]]


def relu_chain(path: Path, layers: list[Layer]) -> Path:
    """An ONNX file ``Gemm (-> Relu -> Gemm)*`` with the given float32 weights, batch dim free."""
    nodes, inits = [], []
    current = "x"
    for k, (w, b) in enumerate(layers):
        wt = np.asarray(w, dtype=np.float32)
        inits += [
            numpy_helper.from_array(wt, f"W{k}"),
            numpy_helper.from_array(np.asarray(b, dtype=np.float32), f"B{k}"),
        ]
        out = "y" if k == len(layers) - 1 else f"z{k}"
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"B{k}"], [out], transB=1))
        if k < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{k}"]))
            current = f"h{k}"
    n_in = len(layers[0][0][0])
    n_out = len(layers[-1][1])
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path))
    return session.run(None, {"x": np.asarray(x, dtype=np.float32).reshape(-1, session.get_inputs()[0].shape[1])})[0]


def check(spec: str, folder: Path, **nets: Path) -> dict:
    path = folder / "claims.msl"
    path.write_text(textwrap.dedent(spec))
    bindings = {role: str(p) for role, p in nets.items()}
    doc = Runner(RunOptions(progress=False, cache=False, bindings=bindings)).check([check_file(path)])
    return {f.claim.name: f for f in doc.findings}


def identity(path: Path) -> Path:
    """y = relu(x) - relu(-x) = x, through one hidden layer."""
    return relu_chain(path, [([[1.0], [-1.0]], [0.0, 0.0]), ([[1.0, -1.0]], [0.0])])


# ------------------------------------------------------------------------ 1: argument-blind matching
def test_equivalence_checks_the_calls_arguments(tmp_path: Path) -> None:
    a, b = identity(tmp_path / "a.onnx"), identity(tmp_path / "b.onnx")
    # The truth, by onnxruntime: at x = 1, a(x) = 1 and b(-x) = -1 (gap 2); b([0]) = 0 (gap 1).
    assert abs(run_onnx(a, [1.0])[0, 0] - run_onnx(b, [-1.0])[0, 0]) == pytest.approx(2.0)
    findings = check("""\
        msl 1.0
        model a: network
        model b: network
        verify negated_argument {
          forall x in box(lower: [-1], upper: [1])
          expect max(abs(a(x) - b(-x))) <= 0.5
        }
        verify constant_argument {
          forall x in box(lower: [-1], upper: [1])
          expect max(abs(a(x) - b([0]))) <= 0.5
        }
        verify same_argument {
          forall x in box(lower: [-1], upper: [1])
          expect max(abs(a(x) - b(x))) <= 0.5
        }
    """, tmp_path, a=a, b=b)
    for name in ("negated_argument", "constant_argument"):
        f = findings[name]
        assert f.verdict.value == "refuted", (name, f.verdict, f.message)
        x = np.asarray(f.counterexamples[0].input, dtype=np.float64)
        shifted = -x if name == "negated_argument" else np.zeros(1)
        gap = abs(run_onnx(a, x)[0, 0] - run_onnx(b, shifted)[0, 0])
        assert gap > 0.5
    assert findings["same_argument"].verdict.value == "proved"


# ------------------------------------------------------------------------ 3: argmax ties
def ties(path: Path) -> Path:
    """Two equal outputs y0 = y1 = relu(x), and a third y2 = relu(x) - 1 below them."""
    return relu_chain(path, [([[1.0]], [0.0]), ([[1.0], [1.0], [1.0]], [0.0, 0.0, -1.0])])


def test_argmax_ties_go_to_the_first_index_everywhere(tmp_path: Path) -> None:
    net = ties(tmp_path / "ties.onnx")
    y = run_onnx(net, [[0.3]])
    assert y[0, 0] == y[0, 1] and int(np.argmax(y[0])) == 0  # numpy/ONNX: first index wins
    findings = check("""\
        msl 1.0
        model net: network
        verify second_wins {
          forall x in box(lower: [0], upper: [1])
          expect argmax(net(x)) == 1
        }
        verify first_wins {
          forall x in box(lower: [0], upper: [1])
          expect argmax(net(x)) == 0
        }
        verify first_is_not_beaten {
          forall x in box(lower: [0], upper: [1])
          expect argmax(net(x)) != 1
        }
        verify third_never_wins {
          forall x in box(lower: [0], upper: [1])
          expect argmax(net(x)) != 2
        }
        verify argmin_is_the_third {
          forall x in box(lower: [0], upper: [1])
          expect argmin(net(x)) == 2
        }
        verify argmin_second {
          forall x in box(lower: [0], upper: [1])
          expect argmin(net(x)) == 1
        }
    """, tmp_path, net=net)
    for name in ("second_wins", "argmin_second"):
        f = findings[name]
        assert f.verdict.value == "refuted", (name, f.verdict, f.message)
        x = np.asarray(f.counterexamples[0].input)
        y = run_onnx(net, x)[0]
        assert (int(np.argmax(y)) != 1) if name == "second_wins" else (int(np.argmin(y)) != 1)
    for name in ("third_never_wins", "argmin_is_the_third"):
        assert findings[name].verdict.value == "proved", (name, findings[name].message)
    # True as the network runs, but a proof would need y0 and y1 to round alike, which float32
    # does not promise for every summation order: honest answers only.
    for name in ("first_wins", "first_is_not_beaten"):
        assert findings[name].verdict.value in ("proved", "inconclusive"), (name, findings[name].message)


def test_the_formal_encoding_of_argmax_matches_numpy(tmp_path: Path) -> None:
    """On the tie network the engine's `argmax == i` agrees with numpy for both i."""
    pl = PLNetwork.from_onnx(ties(tmp_path / "ties.onnx"))
    box = (InputRegion.box([0.0], [1.0]),)
    second = verify(pl, Property(box, argmax_is(3, 1).negate(), "p"), witness_margin=0.0)
    assert second.status == "sat" and int(np.argmax(second.witness_y)) != 1
    assert verify(pl, Property(box, argmax_is(3, 0).negate(), "p"), witness_margin=0.0).status != "sat"
    assert verify(pl, Property(box, argmax_is(3, 2), "p")).status == "unsat"


# ------------------------------------------------------------------------ 4: empty domains
def test_an_empty_domain_is_inconclusive_never_proved(tmp_path: Path) -> None:
    net = identity(tmp_path / "id.onnx")
    findings = check("""\
        msl 1.0
        model net: network
        verify nothing_there {
          forall x in box(lower: [0], upper: [1]) where x[0] >= 2
          expect net(x)[0] > 5
        }
        verify something_there {
          forall x in box(lower: [0], upper: [3]) where x[0] >= 2
          expect net(x)[0] >= 1.5
        }
    """, tmp_path, net=net)
    empty = findings["nothing_there"]
    assert empty.verdict.value == "inconclusive" and "empty" in empty.message
    assert findings["something_there"].verdict.value == "proved"


def test_the_engine_does_not_prove_over_an_empty_region(tmp_path: Path) -> None:
    pl = PLNetwork.from_onnx(identity(tmp_path / "id.onnx"))
    region = InputRegion.box([0.0], [1.0])
    empty = InputRegion(region.lower, region.upper, linear([-1.0], "<=", -2.0).disjuncts[0])
    result = verify(pl, Property((empty,), linear([1.0], "<=", 5.0), "p"))
    assert result.status == "unknown" and "empty" in str(result.stats.get("decided_by"))


# ------------------------------------------------------------------------ 5: float32 execution
def cancellation(path: Path) -> Path:
    """relu(2^30 x + 1) - relu(2^30 x): 1 over the reals, 0 in float32 for x in [0.5, 1]."""
    big = float(2**30)
    return relu_chain(path, [([[big], [big]], [1.0, 0.0]), ([[1.0, -1.0]], [0.0])])


def test_a_proof_holds_for_the_network_as_it_runs_in_float32(tmp_path: Path) -> None:
    net = cancellation(tmp_path / "cancel.onnx")
    xs = np.linspace(0.5, 1.0, 101, dtype=np.float32)
    assert np.all(run_onnx(net, xs[:, None])[:, 0] == 0.0)  # the truth: 0, not 1
    findings = check("""\
        msl 1.0
        model net: network
        verify at_least_a_half {
          forall x in box(lower: [0.5], upper: [1])
          expect net(x)[0] >= 0.5
        }
    """, tmp_path, net=net)
    f = findings["at_least_a_half"]
    assert f.verdict.value == "refuted", (f.verdict, f.message)
    x = np.asarray(f.counterexamples[0].input, dtype=np.float32)
    assert 0.5 <= float(x[0]) <= 1.0 and run_onnx(net, x[None])[0, 0] < 0.5


def test_vnnlib_does_not_answer_unsat_where_float32_rounding_breaks_the_property(tmp_path: Path) -> None:
    net = cancellation(tmp_path / "cancel.onnx")
    pl = PLNetwork.from_onnx(net)
    # unsafe: Y_0 <= 0.25 (over the reals Y_0 = 1 everywhere: unsat; in float32 it is 0: sat)
    result = verify(pl, Property((InputRegion.box([0.5], [1.0]),), linear([1.0], "<=", 0.25), "p"))
    assert result.status == "sat"
    assert run_onnx(net, np.asarray(result.witness_x, dtype=np.float32)[None])[0, 0] <= 0.25


# ------------------------------------------------------------------------ defence in depth
FALSE_CLAIM = """\
    msl 1.0
    model net: network
    verify small {
      forall x in box(lower: [-1], upper: [1])
      expect net(x)[0] <= 0.5
    }
"""


def test_a_formal_answer_the_evaluator_contradicts_never_reaches_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken formal engine (simulated) that answers unsat for a false claim, or sat with a
    witness that is no counterexample: the evaluator's check catches both."""
    import importlib

    from msl.engines.formal.verify import FormalResult

    formal = importlib.import_module("msl.engines.formal.verify")

    net = identity(tmp_path / "id.onnx")  # y = x: the claim fails for x > 0.5
    monkeypatch.setattr(formal, "_verify", lambda *a, **k: FormalResult("unsat", stats={"decided_by": "a bug"}))
    f = check(FALSE_CLAIM, tmp_path, net=net)["small"]
    assert f.verdict.value == "refuted" and "internal inconsistency" in f.message
    assert run_onnx(net, np.asarray(f.counterexamples[0].input))[0, 0] > 0.5

    lie = FormalResult("sat", (0.0,), (0.0,), {"decided_by": "a bug"})
    monkeypatch.setattr(formal, "_verify", lambda *a, **k: lie)
    f = check(FALSE_CLAIM, tmp_path, net=net)["small"]
    assert f.verdict.value == "error" and "internal inconsistency" in f.message
