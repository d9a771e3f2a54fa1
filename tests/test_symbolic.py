"""forall claims over networks: proved and refuted through the formal engine, witnesses
replayed independently, and never a proof for a model that is not piecewise-linear."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from msl.check import check_file
from msl.run import Runner, RunOptions

ROOT = Path(__file__).resolve().parent.parent


def check(path: Path, **bindings: str) -> dict:
    doc = Runner(RunOptions(progress=False, cache=False, bindings=bindings)).check([check_file(path)])
    return {f.claim.name: f for f in doc.findings}


def test_relu_spec_is_proved_and_refuted() -> None:
    findings = check(ROOT / "specs" / "verify_relu.msl")
    assert findings["class_zero_never_wins_top_right"].verdict.value == "proved"
    assert findings["margin_under_a_linear_constraint"].verdict.value == "proved"
    refuted = findings["class_zero_never_wins_right_half"]
    assert refuted.verdict.value == "refuted" and refuted.method.value == "smt"
    x = np.asarray(refuted.counterexamples[0].input, dtype=np.float32)
    assert np.all(x >= np.array([0, -1, -1, -1]) - 1e-4) and np.all(x <= 1 + 1e-4)
    session = ort.InferenceSession(str(ROOT / "msl" / "organisms" / "relu-net.onnx"))
    y = session.run(None, {session.get_inputs()[0].name: x[None]})[0][0]
    assert int(np.argmax(y)) == 0  # the witness really makes output 0 the largest


def _sigmoid_net(path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 2))
    torch.onnx.export(net, torch.zeros(1, 2), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_network_that_is_not_piecewise_linear_is_searched_never_proved(tmp_path: Path) -> None:
    _sigmoid_net(tmp_path / "sig.onnx")
    spec = tmp_path / "s.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model net: network
        verify bounded {
          forall x in box(lower: [-1, -1], upper: [1, 1])
          expect net(x)[0] <= 100
        }
        verify impossible {
          forall x in box(lower: [-1, -1], upper: [1, 1])
          expect net(x)[0] > net(x)[0] + 1
        }
    """))
    findings = check(spec, net=str(tmp_path / "sig.onnx"))
    bounded = findings["bounded"]
    assert bounded.method.value == "property-based" and bounded.verdict.value == "inconclusive"
    impossible = findings["impossible"]
    assert impossible.method.value == "property-based" and impossible.verdict.value == "refuted"


def test_an_l2_ball_is_proved_through_its_box_and_refuted_inside_it(tmp_path: Path) -> None:
    """A proof on the enclosing box covers the ball; a refutation must come from the ball."""
    spec = tmp_path / "ball.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model net: network = "organism:relu-net"
        verify inside_the_class_two_region {
          forall x in l2_ball(center: [0.75, 0.75, 0.5, 0], radius: 0.1)
          expect argmax(net(x)) == 2
        }
        verify around_a_class_zero_point {
          forall x in l2_ball(center: [0, -1, -1, -1], radius: 0.3)
          expect argmax(net(x)) != 0
        }
    """))
    findings = check(spec)
    proved = findings["inside_the_class_two_region"]
    assert proved.verdict.value == "proved" and proved.method.value == "smt" and "enclosing box" in proved.message
    refuted = findings["around_a_class_zero_point"]
    assert refuted.verdict.value == "refuted"
    x = np.asarray(refuted.counterexamples[0].input, dtype=np.float32)
    assert np.linalg.norm(x - np.array([0, -1, -1, -1])) <= 0.3 + 1e-6
    session = ort.InferenceSession(str(ROOT / "msl" / "organisms" / "relu-net.onnx"))
    assert int(np.argmax(session.run(None, {session.get_inputs()[0].name: x[None]})[0][0])) == 0
