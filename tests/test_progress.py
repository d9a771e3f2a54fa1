"""Progress and per-claim times: lines a CI log can read, a heartbeat during long model
work, a bar in a terminal, and each claim's time its own (times that add up to the run's).

The model here is a stub whose time is known (it sleeps a fixed time per query), so a
claim's fair share of the model time can be computed by hand.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from lang_helpers import run_cli
from rich.console import Console

from msl.check import check_file
from msl.models.base import Model, ModelStats, ProgressFn
from msl.progress import BarProgress, LogProgress, RunProgress, for_stream
from msl.queries import Intervention, LogProb, Query, QueryFailed, Result
from msl.run import Runner, RunOptions

PER_QUERY_S = 0.25

SPEC = """msl 1.0

model lm: causal_lm = "stub"

verify big {
  for p in ["one", "two", "three", "four"]
  expect lm.logprob(p, " b") < 0
}

verify subset {
  for p in ["one"]
  expect lm.logprob(p, " b") < 0
}

verify pure {
  for i in range(0, 3)
  expect i >= 0
}
"""


class SlowLM(Model):
    """Sleeps ``PER_QUERY_S`` per query, all in one call, and reports no progress between:
    a single long batch, as a big model's is."""

    kind = "causal_lm"

    def __init__(self) -> None:
        self.ref, self.dtype, self.device = "stub", "float32", "cpu"
        self.stats = ModelStats()
        self.calls: list[list[Query]] = []

    @property
    def fingerprint(self) -> str:
        return "sha256:" + "1" * 64

    def run(
        self, queries: Sequence[Query], intervention: Intervention | None = None, *, progress: ProgressFn | None = None
    ) -> list[Result]:
        self.calls.append(list(queries))
        time.sleep(PER_QUERY_S * len(queries))
        self.stats.rows += len(queries)
        self.stats.batches += 1
        return [-1.0 if isinstance(q, LogProb) else QueryFailed("unsupported") for q in queries]


def _runner(tmp_path: Path, progress: RunProgress | None = None) -> tuple[Runner, SlowLM, object]:
    (tmp_path / "s.msl").write_text(SPEC, encoding="utf-8")
    spec = check_file(tmp_path / "s.msl")
    runner = Runner(RunOptions(cache=False, progress=False), progress)
    model = SlowLM()
    runner.load = lambda ref, kind: model  # type: ignore[method-assign]
    return runner, model, spec


def test_claim_times_are_their_own_and_add_up_to_the_run(tmp_path: Path) -> None:
    """`subset` asks only for a query `big` asks too: the one batch serves both, so
    `subset` gets half of that query's time — not half of the whole batch (the old even
    split among waiting claims), not nothing — and the claims' times add up to the run's."""
    runner, model, spec = _runner(tmp_path)
    start = time.perf_counter()
    doc = runner.check([spec])  # type: ignore[list-item]
    total = time.perf_counter() - start
    assert len(model.calls) == 1 and len(model.calls[0]) == 4  # one batch, "one" asked once
    seconds = {f.claim.name: f.duration_s for f in doc.findings}
    assert {f.claim.name: f.verdict.value for f in doc.findings} == {"big": "holds", "subset": "holds", "pure": "holds"}
    # By hand: 4 queries of PER_QUERY_S; "one" is shared by big and subset.
    model_time = 4 * PER_QUERY_S
    assert seconds["subset"] == pytest.approx(PER_QUERY_S / 2, abs=0.1)
    assert seconds["big"] == pytest.approx(model_time - PER_QUERY_S / 2, abs=0.2)
    assert seconds["pure"] < 0.1
    assert sum(seconds.values()) == pytest.approx(total, abs=0.1 + 0.05 * total)


def test_a_search_that_flushes_within_its_step_is_not_counted_twice() -> None:
    """Searches and shrinking run the planner inside a claim's own step; that model time is
    counted once (counted in the step and again as a share, the sum of the claims' times
    on the sentiment organism's spec exceeded the wall time by a quarter)."""
    spec = check_file(Path(__file__).resolve().parent.parent / "specs" / "verify_sentiment.msl")
    runner = Runner(RunOptions(cache=False, progress=False))
    runner.handles(spec, list(spec.roles))  # the model loaded and fingerprinted first: its own time
    start = time.perf_counter()
    doc = runner.check([spec])
    total = time.perf_counter() - start
    assert sum(f.duration_s for f in doc.findings) == pytest.approx(total, rel=0.05, abs=0.05)


def test_log_lines_one_per_claim_with_verdict_and_own_time(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner, _, spec = _runner(tmp_path, LogProgress(stream))
    doc = runner.check([spec])  # type: ignore[list-item]
    lines = stream.getvalue().splitlines()
    claims = [line for line in lines if line.startswith("[")]
    assert [re.sub(r"\d+\.\d s$", "T", line) for line in claims] == [
        "[1/3] pure holds T", "[2/3] big holds T", "[3/3] subset holds T"
    ]
    shown = {line.split()[1]: float(line.split()[3]) for line in claims}
    for finding in doc.findings:  # the line shows the claim's final time
        assert shown[finding.claim.name] == pytest.approx(finding.duration_s, abs=0.051)


def test_heartbeat_every_30_s_of_model_work_says_what_runs() -> None:
    now = [1000.0]
    stream = io.StringIO()
    log = LogProgress(stream, clock=lambda: now[0])
    log.start(5)
    try:
        log.work_started("smollm2-135m", 400, False)
        log.advance(100)
        now[0] += 29
        log.advance(20)
        assert stream.getvalue() == ""  # under 30 s: silence
        now[0] += 2
        log.advance(30)
        beats = stream.getvalue().splitlines()
        assert len(beats) == 1
        assert re.fullmatch(r"  … 31 s: smollm2-135m, \d+ of 400 queries left \(0/5 claims done\)", beats[0])
        now[0] += 15
        log.beat()
        assert len(stream.getvalue().splitlines()) == 1  # 15 s since the last line
        now[0] += 16
        log.beat()
        assert re.fullmatch(r"  … 1 m 02 s: smollm2-135m, 250 of 400 queries left \(0/5 claims done\)",
                            stream.getvalue().splitlines()[1])
        log.work_done("smollm2-135m", 400, 7, 62.0)
        now[0] += 60
        log.beat()  # nothing runs: no heartbeat
        assert len(stream.getvalue().splitlines()) == 2
        log.working_on("checking sentiment_by_layer")
        now[0] += 45
        log.beat()
        assert stream.getvalue().splitlines()[2] == "  … 45 s: checking sentiment_by_layer (0/5 claims done)"
    finally:
        log.close()


def test_heartbeat_comes_during_one_long_batch(tmp_path: Path) -> None:
    """A batch that reports no progress for long still gets heartbeats (from the thread)."""
    stream = io.StringIO()
    runner, _, spec = _runner(tmp_path, LogProgress(stream, interval=0.2))
    runner.check([spec])  # type: ignore[list-item]
    beats = [line for line in stream.getvalue().splitlines() if line.startswith("  … ")]
    assert beats and all("stub, 4 of 4 queries left" in line for line in beats), stream.getvalue()


def test_heartbeat_comes_while_a_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preparing a model on first use takes minutes: the log says so instead of going quiet."""
    import msl.models

    def slow_load(ref: str, kind: str, **options: object) -> SlowLM:
        time.sleep(0.6)
        return SlowLM()

    monkeypatch.setattr(msl.models, "load_model", slow_load)
    (tmp_path / "s.msl").write_text(SPEC, encoding="utf-8")
    stream = io.StringIO()
    Runner(RunOptions(cache=False), LogProgress(stream, interval=0.2)).check([check_file(tmp_path / "s.msl")])
    assert re.search(r"^  … \d+ s: loading model stub \(0/3 claims done\)$", stream.getvalue(), re.M), stream.getvalue()


def test_verbose_adds_a_line_per_model_group(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner, _, spec = _runner(tmp_path, LogProgress(stream, verbose=True))
    runner.check([spec])  # type: ignore[list-item]
    assert re.search(r"^  model stub: 4 queries in 1 batch, \d+\.\d s$", stream.getvalue(), re.M), stream.getvalue()


def test_terminal_shows_a_bar_and_claim_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bars, hidden while the model loads (preparing one draws its own) and back after."""
    import msl.models

    monkeypatch.setattr(msl.models, "load_model", lambda ref, kind, **options: SlowLM())
    (tmp_path / "s.msl").write_text(SPEC, encoding="utf-8")
    out = io.StringIO()
    runner = Runner(RunOptions(cache=False), BarProgress(Console(file=out, force_terminal=True, width=100)))
    runner.check([check_file(tmp_path / "s.msl")])
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert "[3/3] subset holds" in text
    assert "claims" in text and "stub" in text  # the claims bar and the model's bar were drawn


def test_reporter_by_stream() -> None:
    assert type(for_stream(quiet=True, verbose=False)) is RunProgress
    assert isinstance(for_stream(quiet=False, verbose=False, stream=io.StringIO()), LogProgress)


def _pure_spec(tmp_path: Path) -> None:
    (tmp_path / "s.msl").write_text(
        'msl 1.0\nverify a {\n  for i in range(0, 3)\n  expect i >= 0\n}\n'
        'verify b {\n  for s in ["x", "yy"]\n  expect len(s) > 1\n}\n'
        'verify c {\n  for s in ["yy"]\n  expect len(s) > 1\n}\n',
        encoding="utf-8",
    )


def test_cli_in_a_pipe_prints_a_line_per_claim(tmp_path: Path) -> None:
    _pure_spec(tmp_path)
    result, _ = run_cli("check", "s.msl", "--no-cache", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [re.sub(r" \d+\.\d s$", "", line) for line in lines] == [
        "[1/3] a holds",
        "[2/3] b violated",
        "[3/3] c holds",
    ]
    assert "\x1b[" not in result.stderr  # no bar redrawn into the log


def test_cli_quiet_prints_only_the_table_and_q_v_contradict(tmp_path: Path) -> None:
    _pure_spec(tmp_path)
    result, _ = run_cli("check", "s.msl", "--no-cache", "-q", cwd=tmp_path)
    assert result.returncode == 1
    assert not re.search(r"^\[\d", result.stderr, re.M) and "violated" in result.stderr
    both, _ = run_cli("check", "s.msl", "-q", "-v", cwd=tmp_path)
    assert both.returncode == 2 and "-q and -v contradict each other" in both.stderr
    shown, _ = run_cli("check", "--help")
    assert "-v, --verbose" in shown.stdout and "[12/56]" in shown.stdout
