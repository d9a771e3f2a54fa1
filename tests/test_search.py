"""The property-based search is budgeted in work, never in seconds: the same seed gives the
same verdict, counterexample and finding id on a fast machine and on a loaded one."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msl.builtins.domains import Domain
from msl.check import check_file
from msl.engines import symbolic as symbolic_module
from msl.engines.search import Found, WallClockLimit, search
from msl.findings import Finding
from msl.run import Runner, RunOptions
from msl.values import ListSet

SPEC = Path(__file__).resolve().parent.parent / "specs" / "verify_sentiment.msl"
BOX = Domain((0.0, 0.0), (1.0, 1.0))
#: 1000 inputs, all as long as each other (so the simplest is the first); the last 100 fail.
ITEMS = ListSet(tuple(f"item{i:04d}" for i in range(1000)))


def _needle(item: str) -> bool:
    return int(item[4:]) >= 900


def _corner(p: np.ndarray) -> bool:
    return bool(p[0] + p[1] > 1.5)


def _slow_clock(monkeypatch: pytest.MonkeyPatch, step_s: float) -> None:
    """Every reading of the clocks the search and Hypothesis use is ``step_s`` later than
    the last: a machine as slow as one likes, without waiting for it."""
    ticks = itertools.count(1)
    for name in ("monotonic", "perf_counter"):
        real: Callable[[], float] = getattr(time, name)
        monkeypatch.setattr(time, name, lambda real=real: real() + step_s * next(ticks))


def _same(a: Found | int, b: Found | int) -> bool:
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    return (np.array_equal(a.first, b.first) and np.array_equal(a.minimal, b.minimal)
            and a.examples == b.examples)


def test_a_slow_machine_finds_and_shrinks_the_same_counterexample(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = search(BOX, _corner, 7)
    assert isinstance(fast, Found) and _corner(fast.minimal) and fast.examples > 1
    # Ten minutes per clock reading: far past any time budget (Hypothesis's five minutes
    # of shrinking included), so only work may decide where the search ends.
    _slow_clock(monkeypatch, 600.0)
    assert _same(search(BOX, _corner, 7), fast)
    assert _same(search(ITEMS, _needle, 3), search(ITEMS, _needle, 3))


def test_the_examples_budget_decides() -> None:
    run: list[Any] = []

    def counted(item: str) -> bool:
        run.append(item)
        return _needle(item)

    # One input: the simplest, which passes; nothing is found, and one input was run.
    assert search(ITEMS, counted, 0, max_examples=1) == 1 and run == ["item0000"]
    run.clear()
    found = search(ITEMS, counted, 0, max_examples=200)
    assert isinstance(found, Found) and found.examples == len(run) == len(set(run))
    assert found.minimal == "item0900"  # shrunk to the simplest failing input
    assert _needle(found.first) and run.index(found.first) < 200


def test_the_shrinking_budget_decides() -> None:
    run: list[Any] = []

    def counted(item: str) -> bool:
        run.append(item)
        return _needle(item)

    unshrunk = search(ITEMS, counted, 0, shrink_examples=0)
    assert isinstance(unshrunk, Found) and unshrunk.minimal == unshrunk.first != "item0900"
    assert run[-1] == unshrunk.first and unshrunk.examples == len(run)  # nothing run after it
    generated = len(run)
    for budget in (1, 5):
        run.clear()
        partly = search(ITEMS, counted, 0, shrink_examples=budget)
        assert isinstance(partly, Found) and partly.first == unshrunk.first
        assert partly.examples == generated + budget == len(run)
        assert int(partly.minimal[4:]) <= int(unshrunk.minimal[4:])


def test_the_wall_clock_is_only_a_safety_net(monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_clock(monkeypatch, 1.0)
    with pytest.raises(WallClockLimit, match="wall-clock limit of 30 s after") as stopped:
        search(BOX, _corner, 7, wall_clock_s=30.0)
    assert stopped.value.examples < search(BOX, _corner, 7).examples  # type: ignore[union-attr]


def _praise(seed: int = 0) -> Finding:
    options = RunOptions(seed=seed, select=("praise_is_read_as_praise",), cache=False, progress=False)
    (finding,) = Runner(options).check([check_file(SPEC)]).findings
    return finding


def test_a_loaded_machine_gives_the_same_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentiment organism's planted shortcut, searched on a fast and on a very slow
    machine (the safety net set aside): the same refutation, counterexample and id."""
    fast = _praise()
    assert fast.verdict == "refuted" and "Kevin" in fast.counterexamples[0].input["text"]  # type: ignore[index]
    monkeypatch.setattr(symbolic_module, "WALL_CLOCK_LIMIT_S", math.inf)
    _slow_clock(monkeypatch, 100.0)
    slow = _praise()
    assert slow.id == fast.id and slow.counterexamples == fast.counterexamples and slow.statistics == fast.statistics


def test_a_search_the_safety_net_stops_is_inconclusive_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after different amounts of work, the finding is the same: nothing in it
    depends on how far the search got."""
    monkeypatch.setattr(symbolic_module, "WALL_CLOCK_LIMIT_S", 50.0)
    findings = []
    for step in (10.0, 20.0):
        with monkeypatch.context() as patch:
            _slow_clock(patch, step)
            findings.append(_praise())
    first, second = findings
    assert first.verdict == second.verdict == "inconclusive" and first.id == second.id
    assert "wall-clock limit" in first.message and not first.counterexamples and first.statistics.n is None
