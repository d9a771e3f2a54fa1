"""The VNN-LIB reader and the ``msl vnnlib`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from formal_oracles import acasxu_dir, export_onnx, random_mlp

from msl.cli import cli
from msl.engines.formal import vnnlib as vnnlib_module
from msl.engines.formal.vnnlib import VnnlibAnswer, parse_vnnlib, read_vnnlib
from msl.errors import MslError

ACASXU = acasxu_dir()
needs_acasxu = pytest.mark.skipif(
    not (ACASXU / "prop_1.vnnlib").exists(), reason=f"ACAS Xu benchmark not found at {ACASXU}"
)

HEAD = b"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"

GOLDEN = [
    (HEAD + b"(assert (<= X_0 1.0)\n", "p.vnnlib:3:1: error: unclosed '(' (the file ends inside an expression)"),
    (HEAD + b"(assert (<= X_0 1.0)))\n", "p.vnnlib:3:22: error: unbalanced ')'"),
    (
        HEAD + b"(assert (<= X_0 1.0))\n(assert (>= X_0 0))\n(assert (distinct Y_0 1))\n",
        "p.vnnlib:5:10: error: unsupported operator 'distinct'",
    ),
    (HEAD + b"(assert (<= (* X_0 X_0) 1.0))\n", "p.vnnlib:3:13: error: a product of variables is not linear"),
    (HEAD + b"(assert (<= X_1 1.0))\n", "p.vnnlib:3:13: error: X_1 is used but not declared"),
    (HEAD + b"(assert (<= X_0 1.0))\n(assert (<= Y_0 1.0))\n", "p.vnnlib:1:16: error: input X_0 has no lower bound"),
    (b"(declare-const X_0 Int)\n", "p.vnnlib:1:20: error: unsupported sort 'Int'; only Real is supported"),
    (
        b"(declare-const foo Real)\n",
        "p.vnnlib:1:16: error: unsupported variable name 'foo'; expected X_i (inputs) or Y_j (outputs)",
    ),
    (HEAD + b"(check-sat)\n", "p.vnnlib:3:2: error: unsupported command 'check-sat'"),
    (HEAD + b"(assert (<= (/ X_0 0) 1))\n", "p.vnnlib:3:13: error: division is supported only by a nonzero constant"),
    (b"hello", "p.vnnlib:1:1: error: unexpected 'hello' outside parentheses"),
    (b"\x00\x01\x02\xff", "p.vnnlib:1:4: error: the file is not UTF-8 text (is it a VNN-LIB file?)"),
    (HEAD + b"(assert\x00)", "p.vnnlib:3:8: error: the file contains a NUL byte (is it a VNN-LIB file?)"),
    (b"(" * 100_000, "p.vnnlib:1:101: error: expressions nest deeper than 100 levels"),
]


@pytest.mark.parametrize(("text", "message"), GOLDEN)
def test_malformed_files_give_spanned_errors(text: bytes, message: str) -> None:
    with pytest.raises(MslError) as info:
        parse_vnnlib(text, "p.vnnlib")
    assert info.value.render().splitlines()[0] == message


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.vnnlib"
    path.write_bytes(b"; comment\n" * 2000)
    monkeypatch.setattr(vnnlib_module, "MAX_VNNLIB_BYTES", 1000)
    with pytest.raises(MslError, match="too large"):
        read_vnnlib(path)


def test_disjunctions_over_inputs_and_outputs() -> None:
    text = b"""; two boxes, two unsafe disjuncts
    (declare-const X_0 Real) (declare-const X_1 Real)
    (declare-const Y_0 Real) (declare-const Y_1 Real)
    (assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 -1) (<= X_1 0))
                (and (>= X_0 2) (<= X_0 3) (= X_1 0.5))))
    (assert (<= (+ X_0 (* 2 X_1)) 2.5))
    (assert (or (and (<= Y_0 Y_1)) (and (>= (- Y_0 (* 0.5 Y_1)) 3) (< Y_1 1e-3))))
    """
    (prop,) = parse_vnnlib(text, "q.vnnlib")
    assert [r.lower for r in prop.regions] == [(0.0, -1.0), (2.0, 0.5)]
    assert [r.upper for r in prop.regions] == [(1.0, 0.0), (3.0, 0.5)]
    assert all(len(r.constraints) == 1 for r in prop.regions)
    assert len(prop.unsafe.disjuncts) == 2
    strict = prop.unsafe.disjuncts[1][1]
    assert strict.strict and strict.coeffs == (0.0, 1.0) and strict.rhs == 1e-3
    y = np.array([[4.0, 0.0], [1.0, 0.5], [4.0, 2.0]])
    assert prop.unsafe.holds(y).tolist() == [True, False, False]


@needs_acasxu
def test_acasxu_properties_parse() -> None:
    shapes = {}
    for k in range(1, 11):
        (prop,) = read_vnnlib(ACASXU / f"prop_{k}.vnnlib")
        assert prop.input_dim == 5 and prop.unsafe.dims == {5}
        shapes[k] = (len(prop.regions), [len(c) for c in prop.unsafe.disjuncts])
    assert shapes[1] == (1, [1])
    assert shapes[2] == (1, [4])
    assert shapes[5] == (1, [1, 1, 1, 1])
    assert shapes[6] == (2, [1, 1, 1, 1])
    assert shapes[7] == (1, [3, 3])
    assert shapes[8] == (1, [2, 2, 2])


def test_render_format() -> None:
    assert VnnlibAnswer("unsat").render() == "unsat"
    text = VnnlibAnswer("sat", (0.5, -1.0), (2.0,)).render()
    assert text == "sat\n((X_0 0.5)\n (X_1 -1.0)\n (Y_0 2.0))"


def test_cli_bad_file_exit_code_and_message(tmp_path: Path) -> None:
    net = export_onnx(random_mlp(np.random.default_rng(0), 2, [8], 2), 2, tmp_path / "n.onnx")
    prop = tmp_path / "p.vnnlib"
    prop.write_bytes(HEAD + b"(assert (<= X_1 1.0))\n")
    result = CliRunner().invoke(cli, ["vnnlib", str(net), str(prop)])
    assert result.exit_code == 2
    assert f"{prop}:3:13: error: X_1 is used but not declared" in result.output
    assert "Traceback" not in result.output


def test_cli_answers_with_a_witness(tmp_path: Path) -> None:
    net = export_onnx(random_mlp(np.random.default_rng(0), 2, [8], 2), 2, tmp_path / "n.onnx")
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
        "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))\n"
        "(assert (>= Y_0 -1000))\n"
    )
    result = CliRunner().invoke(cli, ["vnnlib", str(net), str(prop), "--timeout", "20"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0] == "sat"
        and lines[1].startswith("((X_0 ")
        and lines[-1].startswith(" (Y_1 ")
        and lines[-1].endswith("))")
    )
    prop.write_text(prop.read_text().replace("(>= Y_0 -1000)", "(>= Y_0 1000)"))
    result = CliRunner().invoke(cli, ["vnnlib", str(net), str(prop), "--timeout", "20"])
    assert result.stdout.strip() == "unsat"


def test_negated_terms() -> None:
    """``-Y_0`` (an atom, as the SoundnessBench generator writes it) and ``(- Y_0)`` both mean
    the negation; ``-X_1`` bounds an input from below."""
    text = HEAD.replace(
        b"(declare-const Y_0 Real)", b"(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
    ) + (
        b"(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= -X_1 2))(assert (<= X_1 3))\n"
        b"(assert (or (<= -Y_0 -1.5) (>= (- Y_1) Y_0)))\n"
    )
    (prop,) = parse_vnnlib(text, "p.vnnlib")
    assert prop.regions[0].lower == (0.0, -2.0) and prop.regions[0].upper == (1.0, 3.0)
    first, second = prop.unsafe.disjuncts
    assert first[0].coeffs == (-1.0, 0.0) and first[0].rhs == -1.5  # -y0 <= -1.5
    assert second[0].coeffs == (1.0, 1.0) and second[0].rhs == 0.0  # y0 - (-y1) <= 0
    y = np.array([[2.0, 0.0], [1.0, -3.0], [1.0, 0.0]])
    assert list(prop.unsafe.holds(y)) == [True, True, False]


def _mixed_prop(path: Path, threshold: float) -> Path:
    path.write_text(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
        "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))\n"
        f"(assert (>= (- Y_0 (* 2 X_0) -X_1) {threshold!r}))\n"
    )
    return path


def test_comparisons_mixing_inputs_and_outputs_follow_onnxruntime(tmp_path: Path) -> None:
    """``Y_0 - 2 X_0 + X_1 >= t`` on a random net: sat below the largest value onnxruntime
    finds on a fine grid, unsat above it (with the grid's error as margin); every witness is
    replayed through onnxruntime and checked against the mixed constraint itself."""
    import onnxruntime as ort

    net = export_onnx(random_mlp(np.random.default_rng(3), 2, [8, 8], 2), 2, tmp_path / "n.onnx")
    g = np.linspace(-1, 1, 801)
    xs = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2).astype(np.float32)
    sess = ort.InferenceSession(str(net), providers=["CPUExecutionProvider"])
    ys = sess.run(None, {"x": xs})[0].astype(np.float64)
    values = ys[:, 0] - 2 * xs[:, 0] + xs[:, 1]
    top = float(values.max())
    margin = 0.05 * (1.0 + abs(top))  # the grid step is 0.0025; the net's slopes are far below 20
    result = CliRunner().invoke(
        cli, ["vnnlib", str(net), str(_mixed_prop(tmp_path / "s.vnnlib", top - margin)), "--timeout", "30"]
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "sat", result.output
    vals = [float(line.strip(" ()").split()[1]) for line in lines[1:]]
    assert len(vals) == 4  # X_0, X_1, Y_0, Y_1: the appended inputs are not printed as outputs
    x = np.array(vals[:2], dtype=np.float32)
    y = sess.run(None, {"x": x[None]})[0][0].astype(np.float64)
    assert y[0] - 2 * x[0] + x[1] >= top - margin
    result = CliRunner().invoke(
        cli, ["vnnlib", str(net), str(_mixed_prop(tmp_path / "u.vnnlib", top + margin)), "--timeout", "30"]
    )
    assert result.stdout.strip() == "unsat", result.output
