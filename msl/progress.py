"""Progress of a check, told the way its reader sees it.

* In a terminal (:class:`BarProgress`): rich's bar over the claims, done/total with the
  time elapsed and an ETA, a second bar over the queries of the model work running now,
  and one line per finished claim above them.
* In a CI log or a pipe (:class:`LogProgress`): no redrawn bar, only whole lines — one per
  finished claim, ``[12/56] names_do_not_matter violated 3.1 s``, and, while model work or
  one claim's own computation runs for long, a heartbeat every 30 s saying what runs
  (``… 1 m 30 s: smollm2-135m, 280 of 400 queries left``), so a slow job never looks hung.
* ``-q`` (:class:`RunProgress` itself): nothing; ``-v`` adds a line per model batch group.

The runner and the planner report to one of these; the times shown are each claim's own
(see :meth:`msl.plan.Planner.take_shares`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msl.engines import ClaimRun

#: Seconds without a line after which :class:`LogProgress` says what is still running.
HEARTBEAT_S = 30.0


class RunProgress:
    """Reports nothing (``-q``, the pytest plugin, library callers): the interface the
    runner and the planner report to."""

    def start(self, claims: int) -> None:
        """A run of ``claims`` claims begins (said again, it starts the count anew)."""

    def working_on(self, what: str | None) -> None:
        """What runs now outside model batches (``checking NAME``: a claim's own
        computation), or None when that ended."""

    def loading(self, ref: str | None) -> None:
        """The model ``ref`` is being loaded (prepared on first use: minutes), or None
        when that ended."""

    def claim_done(self, run: ClaimRun) -> None:
        """``run`` has its outcome; ``run.seconds`` is its own time."""

    def work_started(self, model: str, queries: int, intervened: bool) -> None:
        """The model ``model`` starts on ``queries`` queries (under an intervention or not)."""

    def advance(self, n: int) -> None:
        """``n`` more queries of the running model work are answered."""

    def work_done(self, model: str, queries: int, batches: int, seconds: float) -> None:
        """The model work begun by :meth:`work_started` ended."""

    def close(self) -> None:
        """The run ended (or failed): stop any display or thread (twice is harmless)."""


def for_stream(*, quiet: bool, verbose: bool, stream: IO[str] | None = None) -> RunProgress:
    """The reporter for ``stream`` (stderr by default): nothing when quiet, a bar in a
    terminal, whole lines anywhere else."""
    if quiet:
        return RunProgress()
    from rich.console import Console

    out = stream if stream is not None else sys.stderr
    console = Console(file=out, highlight=False, emoji=False)
    if console.is_terminal:
        return BarProgress(console, verbose=verbose)
    return LogProgress(out, verbose=verbose)


def claim_line(index: int, total: int, run: ClaimRun) -> str:
    """``[12/56] names_do_not_matter violated 3.1 s``."""
    verdict = run.outcome.verdict if run.outcome is not None else "?"
    return f"[{index}/{total}] {run.claim.name} {verdict} {run.seconds:.1f} s"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


def _work_line(label: str, queries: int, batches: int, seconds: float) -> str:
    """``  model smollm2-135m: 400 queries in 7 batches, 3.2 s`` (``-v``)."""
    return (f"  model {label}: {queries} quer{'y' if queries == 1 else 'ies'} "
            f"in {batches} batch{'' if batches == 1 else 'es'}, {seconds:.1f} s")


def _model_label(model: str, intervened: bool) -> str:
    return f"{model} (intervened)" if intervened else model


class LogProgress(RunProgress):
    """Whole lines for a log: a line per finished claim, a heartbeat while work runs long.

    The heartbeat is checked whenever the model reports a finished batch and, for batches
    or claim computations that take longer than that, by a daemon thread; ``clock`` is
    injectable so that the 30 s rule can be tested without waiting.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        verbose: bool = False,
        interval: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.verbose = verbose
        self.interval = interval
        self.clock = clock
        self.total = 0
        self.finished = 0
        self._lock = threading.Lock()
        self._last_line = clock()
        self._doing: tuple[str, float] | None = None  # (what, since)
        self._work: list[Any] | None = None  # [model label, queries, answered, started]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, line: str) -> None:
        with self._lock:
            self._emit(line)

    def _emit(self, line: str) -> None:
        """Write a line (the caller holds the lock)."""
        self.stream.write(line + "\n")
        self.stream.flush()
        self._last_line = self.clock()

    def start(self, claims: int) -> None:
        self.total, self.finished = claims, 0
        self._last_line = self.clock()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat_loop, name="msl-heartbeat", daemon=True)
            self._thread.start()

    def working_on(self, what: str | None) -> None:
        self._doing = (what, self.clock()) if what is not None else None

    def loading(self, ref: str | None) -> None:
        self.working_on(f"loading model {ref}" if ref is not None else None)

    def claim_done(self, run: ClaimRun) -> None:
        self.finished += 1
        self._write(claim_line(self.finished, self.total, run))

    def work_started(self, model: str, queries: int, intervened: bool) -> None:
        self._work = [_model_label(model, intervened), queries, 0, self.clock()]

    def advance(self, n: int) -> None:
        if self._work is not None:
            self._work[2] += n
        self.beat()

    def work_done(self, model: str, queries: int, batches: int, seconds: float) -> None:
        label = self._work[0] if self._work is not None else model
        self._work = None
        if self.verbose:
            self._write(_work_line(label, queries, batches, seconds))

    def beat(self) -> None:
        """Write a heartbeat if nothing was written for :attr:`interval` seconds and
        something is running."""
        with self._lock:  # the thread and the model's progress both beat: one line, not two
            now = self.clock()
            if now - self._last_line < self.interval:
                return
            work, doing = self._work, self._doing
            if work is not None:
                label, queries, answered, started = work
                what = f"{label}, {max(queries - answered, 0)} of {queries} queries left"
                elapsed = now - started
            elif doing is not None:
                what, elapsed = doing[0], now - doing[1]
            else:
                return
            self._emit(f"  … {_duration(elapsed)}: {what} ({self.finished}/{self.total} claims done)")

    def _beat_loop(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            self.beat()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class BarProgress(RunProgress):
    """rich's bars on a terminal: claims done/total with ETA, the running model work below,
    and a line per finished claim printed above them (kept when the bars go)."""

    def __init__(self, console: Any, *, verbose: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.verbose = verbose
        self.total = 0
        self.finished = 0
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True,
        )
        self._claims: Any = None
        self._queries: Any = None
        self._started = False

    def start(self, claims: int) -> None:
        self.total, self.finished = claims, 0
        if not self._started:
            self._bar.start()
            self._started = True
        if self._claims is not None:
            self._bar.remove_task(self._claims)
        self._claims = self._bar.add_task("claims", total=claims)

    def loading(self, ref: str | None) -> None:
        """Hide the bars while a model loads: preparing a model draws its own."""
        if ref is not None and self._started:
            self._bar.stop()
        elif ref is None and self._started:
            self._bar.start()

    def claim_done(self, run: ClaimRun) -> None:
        self.finished += 1
        self._bar.console.print(claim_line(self.finished, self.total, run), markup=False, highlight=False)
        if self._claims is not None:
            self._bar.advance(self._claims, 1)

    def work_started(self, model: str, queries: int, intervened: bool) -> None:
        self._queries = self._bar.add_task(f"  {_model_label(model, intervened)}", total=queries)

    def advance(self, n: int) -> None:
        if self._queries is not None:
            self._bar.advance(self._queries, n)

    def work_done(self, model: str, queries: int, batches: int, seconds: float) -> None:
        if self._queries is not None:
            self._bar.remove_task(self._queries)
            self._queries = None
        if self.verbose:
            self._bar.console.print(_work_line(model, queries, batches, seconds), markup=False, highlight=False)

    def close(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False
