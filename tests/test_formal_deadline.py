"""Hard deadlines: ``msl vnnlib --timeout T`` answers within T + 1 s measured from outside,
whatever the search is busy with, and says its peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msl.engines.formal import vnnlib as vnnlib_module
from msl.engines.formal.runtime import process_age, run_bounded
from msl.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
MNISTFC = Path(os.environ.get("MSL_BENCHMARKS", REPO.parent / "shared" / "benchmarks")) / "mnistfc"


def _sleep_then(value: int) -> int:
    time.sleep(30)
    return value


def test_run_bounded_returns_the_value_and_the_peak_memory() -> None:
    out = run_bounded(lambda: sum(range(1000)), 30.0)
    assert out.value == 499500 and not out.stopped
    assert out.peak_rss_bytes is not None and out.peak_rss_bytes > 1 << 20


def test_run_bounded_reraises_the_work_s_error() -> None:
    def fail() -> None:
        raise UsageError("net.onnx: unsupported ONNX operator 'Foo'", hint="h")

    with pytest.raises(UsageError, match="unsupported ONNX operator 'Foo'") as info:
        run_bounded(fail, 30.0)
    assert info.value.hint == "h"


def test_run_bounded_stops_work_that_does_not_return() -> None:
    start = time.monotonic()
    out = run_bounded(lambda: _sleep_then(1), 0.5)
    assert out.stopped and out.value is None
    assert time.monotonic() - start < 2.0


def test_answer_by_answers_timeout_when_the_search_overruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search's own clock checks failing (a batch, an LP, z3 running long) cannot delay the
    answer: the hard deadline kills it and answers timeout with the reason."""
    monkeypatch.setattr(vnnlib_module, "run_vnnlib", lambda *a: _sleep_then(vnnlib_module.VnnlibAnswer("unsat")))
    start = time.monotonic()
    answer = vnnlib_module.answer_by(Path("n.onnx"), Path("p.vnnlib"), 1.5, spent=0.5)
    assert time.monotonic() - start < 2.0  # 1.5 - 0.5 spent + the hard margin, and a little
    assert answer.status == "timeout" and answer.reason and "hard deadline of 1.5 s" in answer.reason


def test_process_age_counts_from_the_process_start() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(0.6); from msl.engines.formal.runtime import process_age; print(process_age())",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        check=True,
    )
    assert 0.6 <= float(child.stdout) < 5.0
    assert process_age() > 0.0


@pytest.mark.skipif(not (MNISTFC / "mnist-net_256x6.onnx").exists(), reason=f"mnistfc benchmark not found at {MNISTFC}")
def test_vnnlib_answers_by_the_timeout_on_a_hard_mnist_instance() -> None:
    """Before the hard deadline this instance answered 12.3 s after an 8 s timeout (one bound
    batch of 1,024 boxes of 784 inputs outlasted it)."""
    timeout = 8.0
    cmd = [
        sys.executable,
        "-m",
        "msl",
        "vnnlib",
        str(MNISTFC / "mnist-net_256x6.onnx"),
        str(MNISTFC / "prop_1_0.05.vnnlib"),
        "--timeout",
        str(timeout),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert wall <= timeout + 1.0, f"answered after {wall:.2f} s"
    # The instance has a counterexample (found by 5 VNN-COMP 2021 tools, none disagreeing): never unsat.
    assert proc.stdout.splitlines()[0] in ("timeout", "unknown", "sat")
    assert "peak memory:" in proc.stderr
