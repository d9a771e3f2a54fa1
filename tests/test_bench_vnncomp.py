"""bench/vnncomp/run.py on a tiny benchmark set built here: the runner's counts follow the
truth (onnxruntime), an overrun is counted as such, and a resumed run re-runs nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from formal_oracles import export_onnx, random_mlp

from bench.vnncomp import run as runner

PROP = (
    "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
    "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))\n(assert (>= Y_0 {t}))\n"
)


def _tiny_set(folder: Path) -> float:
    """Two instances: Y_0 >= top - 1 (sat) and Y_0 >= top + 1 (unsat), with top the largest
    Y_0 onnxruntime gives on a grid (the nets' slopes are far below 1 per 0.01 step)."""
    import onnxruntime as ort

    net = export_onnx(random_mlp(np.random.default_rng(1), 2, [6], 2), 2, folder / "n.onnx")
    g = np.linspace(-1, 1, 201)
    xs = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2).astype(np.float32)
    top = float(ort.InferenceSession(str(net), providers=["CPUExecutionProvider"]).run(None, {"x": xs})[0][:, 0].max())
    (folder / "sat.vnnlib").write_text(PROP.format(t=repr(top - 1.0)))
    (folder / "unsat.vnnlib").write_text(PROP.format(t=repr(top + 1.0)))
    (folder / "tiny_instances.csv").write_text("n.onnx,sat.vnnlib,20\nn.onnx,unsat.vnnlib,20\n")
    (folder / "expected.csv").write_text(
        "onnx,vnnlib,timeout_s,expected,T_ans,T_time\nn.onnx,sat.vnnlib,20,sat,sat,2.0\nn.onnx,unsat.vnnlib,20,unsat,timeout,20\n"
    )
    return top


def test_runner_counts_follow_the_truth_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    _tiny_set(folder)
    results = tmp_path / "r.csv"
    assert runner.main([str(folder), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "answered:  2 (sat 1, unsat 1)" in out and "wrong:     0" in out
    assert (
        "witnesses failing the independent check: 0" in out
        and "overruns (any answer later than the timeout + 1 s): 0" in out
    )
    assert "T: answered 1 right (median 2.00 s), both answered 1" in out
    rows = list(csv.DictReader(open(results)))
    assert [r["result"] for r in rows] == ["sat", "unsat"] and rows[0]["witness_ok"] == "yes" and rows[0]["peak_mib"]
    assert runner.main([str(folder), "--results", str(results)]) == 0  # resumed: nothing runs again
    assert "[1/2]" not in capsys.readouterr().out


def test_summary_counts_overruns_and_wrong_answers() -> None:
    rows = [
        {"onnx": "n", "vnnlib": "a", "timeout_s": "10", "result": "unsat", "seconds": "11.5",
         "cpu_s": "1", "peak_mib": "10",
         "expected": "unsat", "correct": "yes", "witness_ok": ""},
        {"onnx": "n", "vnnlib": "b", "timeout_s": "10", "result": "unsat", "seconds": "2",
         "cpu_s": "1", "peak_mib": "10",
         "expected": "sat", "correct": "NO", "witness_ok": ""},
        {"onnx": "n", "vnnlib": "c", "timeout_s": "10", "result": "timeout", "seconds": "10.9",
         "cpu_s": "1", "peak_mib": "",
         "expected": "", "correct": "", "witness_ok": ""},
    ]
    text = runner.summarize(rows, {})
    assert "answered:  1 (sat 0, unsat 1)" in text  # the late answer does not count
    assert "wrong:     1" in text and "overruns (any answer later than the timeout + 1 s): 1" in text
