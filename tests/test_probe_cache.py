"""Probe fits are cached in the result cache, keyed by every input that decides them.

The truth a cached fit is checked against is :func:`fit_probes` run directly: a hit must
give exactly its accuracies and weights, and any change to an input must miss.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msl.builtins import explore
from msl.builtins.explore import cached_fits, fit_probes
from msl.cache import ResultCache
from msl.evaluate import RunContext
from msl.plan import Planner

N, D = 60, 6


def problem() -> tuple[np.ndarray, list[Any], np.ndarray, np.ndarray]:
    """Two layers (one where the label is readable, one of noise), labels and a split."""
    rng = np.random.default_rng(0)
    labels: list[Any] = ["pos" if i % 2 else "neg" for i in range(N)]
    signal = np.array([1.0 if v == "pos" else -1.0 for v in labels])
    readable = rng.normal(size=(N, D)) + 3.0 * signal[:, None] * (np.arange(D) == 2)
    features = np.stack([readable, rng.normal(size=(N, D))])
    order = rng.permutation(N)
    return features, labels, order[:40], order[40:]


@pytest.fixture
def fits_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fits really computed (cache misses)."""
    made: list[int] = []
    real = explore.fit_probes

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(explore, "fit_probes", counting)
    return made


def context(cache: ResultCache | None, tmp_path: Path) -> RunContext:
    return RunContext(Planner(cache), seed=0, spec_dir=tmp_path)


def same(a: list[explore.ProbeFit], b: list[explore.ProbeFit]) -> bool:
    return all(x.accuracy == y.accuracy and x.classes == y.classes and np.array_equal(x.weights, y.weights)
               for x, y in zip(a, b, strict=True)) and len(a) == len(b)


def test_a_rerun_answers_from_the_cache_with_the_very_same_fit(tmp_path: Path, fits_made: list[int]) -> None:
    features, labels, train, test = problem()
    truth = fit_probes(features, labels, train, test, 1)
    fits_made.clear()
    path = tmp_path / "results.sqlite"
    first = cached_fits(context(ResultCache(path), tmp_path), features, labels, train, test, 1)
    assert same(first, truth) and len(fits_made) == 1
    again = cached_fits(
        context(ResultCache(path), tmp_path), features.copy(), list(labels), train, test, 1
    )  # a new run
    assert same(again, truth) and len(fits_made) == 1


def test_every_input_is_in_the_key(tmp_path: Path, fits_made: list[int]) -> None:
    features, labels, train, test = problem()
    ctx = context(ResultCache(tmp_path / "results.sqlite"), tmp_path)
    cached_fits(ctx, features, labels, train, test, 1)
    nudged = features.copy()
    nudged[1, 7, 3] = np.nextafter(nudged[1, 7, 3], np.inf)  # one activation, one ulp
    renamed = ["yes" if v == "pos" else v for v in labels]  # the same partition, other class names
    typed: list[Any] = [1 if v == "pos" else 0 for v in labels]
    variants = [
        (nudged, labels, train, test, 1),
        (features, renamed, train, test, 1),
        (features, typed, train, test, 1),
        (features, [*labels[:-1], "neg" if labels[-1] == "pos" else "pos"], train, test, 1),
        (features, labels, train[:-1], test, 1),
        (features, labels, train, test[::-1].copy(), 1),
        (features, labels, train, test, 2),
        (features[:1], labels, train, test, 1),
    ]
    for args in variants:
        before = len(fits_made)
        got = cached_fits(ctx, *args)
        assert len(fits_made) == before + 1, "a changed input was answered from the cache"
        assert same(got, fit_probes(*args))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(explore, "_EPOCHS", explore._EPOCHS - 1)  # the training's budget
        before = len(fits_made)
        cached_fits(ctx, features, labels, train, test, 1)
        assert len(fits_made) == before + 1


def test_a_damaged_or_partial_entry_is_recomputed(tmp_path: Path, fits_made: list[int]) -> None:
    features, labels, train, test = problem()
    path = tmp_path / "results.sqlite"
    truth = cached_fits(context(ResultCache(path), tmp_path), features, labels, train, test, 1)
    db = sqlite3.connect(path)
    db.execute("UPDATE results SET value = x'00ff' WHERE key LIKE '%/weights'")  # bytes of the wrong size
    db.commit()
    got = cached_fits(context(ResultCache(path), tmp_path), features, labels, train, test, 1)
    assert same(got, truth) and len(fits_made) == 2
    db.execute("DELETE FROM results WHERE key LIKE '%/accuracy'")  # half an entry
    db.commit()
    got = cached_fits(context(ResultCache(path), tmp_path), features, labels, train, test, 1)
    assert same(got, truth) and len(fits_made) == 3
    assert same(cached_fits(context(ResultCache(path), tmp_path), features, labels, train, test, 1), truth)
    assert len(fits_made) == 3  # repaired by the recomputation


def test_without_a_cache_every_fit_is_computed(tmp_path: Path, fits_made: list[int]) -> None:
    features, labels, train, test = problem()
    ctx = context(None, tmp_path)  # msl check --no-cache
    first = cached_fits(ctx, features, labels, train, test, 1)
    assert same(cached_fits(ctx, features, labels, train, test, 1), first)
    assert len(fits_made) == 2
