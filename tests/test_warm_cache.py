"""A warm re-run answers from the result cache: no model weights are loaded and no
formal search is run again, and every verdict and finding id is the one the cold run
computed (which is itself checked against a run without any cache)."""

from __future__ import annotations

import importlib
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from msl.cache import ResultCache
from msl.check import check_file
from msl.models import text
from msl.plan import Planner
from msl.run import Runner, RunOptions

#: The module (the package re-exports its function under the same name).
formal_verify = importlib.import_module("msl.engines.formal.verify")

ROOT = Path(__file__).resolve().parent.parent


def check(spec: Path, cache: Path | None, seed: int = 0) -> dict[str, tuple[str, str]]:
    """``{claim: (verdict, finding id)}`` of one run, with the result cache at ``cache``."""
    runner = Runner(RunOptions(progress=False, cache=False, seed=seed))
    if cache is not None:
        runner.planner = Planner(ResultCache(cache), progress=runner.progress)
    doc = runner.check([check_file(spec)])
    return {f.claim.name: (f.verdict.value, f.id) for f in doc.findings}


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the transformers adapters load (``config``, ``tokenizer``, ``weights``), in order."""
    seen: list[str] = []
    real = text.TransformerModel._load

    def recording(self: Any, what: str, loader: Any, **extra: Any) -> Any:
        seen.append(what)
        return real(self, what, loader, **extra)

    monkeypatch.setattr(text.TransformerModel, "_load", recording)
    return seen


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The properties the formal engine really searched (cache misses)."""
    seen: list[str] = []
    real = formal_verify.verify

    def counting(net: Any, prop: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(prop.name)
        return real(net, prop, *args, **kwargs)

    monkeypatch.setattr(formal_verify, "verify", counting)
    return seen


def test_a_warm_rerun_does_not_load_the_weights(tmp_path: Path, loads: list[str]) -> None:
    spec = tmp_path / "s.msl"
    spec.write_text(textwrap.dedent("""\
        msl 1.0
        model clf: classifier = "organism:sentiment"
        data reviews = template("The {food} was {adj}.", food: ["soup", "tea"], adj: ["good", "awful", "fine"])
        verify reads_praise {
          for x in reviews
          expect clf.prob(x, "positive") >= 0.5
          tolerate 50%
        }
        verify labels_it {
          for x in reviews
          expect clf.label(x) == "positive" or clf.label(x) == "negative"
        }
    """))
    truth = check(spec, None)
    cache = tmp_path / "results.sqlite"
    cold = check(spec, cache)
    assert "weights" in loads  # the cold run ran the model
    loads.clear()
    warm = check(spec, cache)
    assert "weights" not in loads, loads
    assert cold == warm == truth


def test_a_formal_answer_is_decided_once_and_served_from_the_cache(tmp_path: Path, searches: list[str]) -> None:
    spec = ROOT / "specs" / "verify_relu.msl"
    truth = check(spec, None)
    assert len(searches) == 3 and {v for v, _ in truth.values()} == {"proved", "refuted"}
    searches.clear()
    cache = tmp_path / "results.sqlite"
    cold = check(spec, cache)
    assert len(searches) == 3
    searches.clear()
    warm = check(spec, cache)
    assert searches == [] and cold == warm == truth
    # Another seed is another question (the search is seeded): searched again.
    check(spec, cache, seed=1)
    assert len(searches) == 3


def test_a_damaged_formal_entry_is_recomputed(tmp_path: Path, searches: list[str]) -> None:
    spec = ROOT / "specs" / "verify_relu.msl"
    cache = tmp_path / "results.sqlite"
    cold = check(spec, cache)
    with sqlite3.connect(cache) as db:
        changed = db.execute(
            "UPDATE results SET value = ? WHERE fingerprint = 'derived:formal'", (b'"{not json',)
        ).rowcount
    assert changed == 3
    searches.clear()
    assert check(spec, cache) == cold and len(searches) == 3
    searches.clear()
    assert check(spec, cache) == cold and searches == []  # and stored again


def test_changed_formal_code_is_a_miss(tmp_path: Path, searches: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import msl.cache

    spec = ROOT / "specs" / "verify_relu.msl"
    cache = tmp_path / "results.sqlite"
    cold = check(spec, cache)
    searches.clear()
    monkeypatch.setitem(msl.cache._SOURCE_DIGESTS, "msl.engines.formal", "0" * 64)
    assert check(spec, cache) == cold and len(searches) == 3


def test_a_bootstrap_interval_is_computed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interval of a mean over the instances comes from the cache on a re-run, equal to
    the one a run without any cache computes; another seed misses."""
    from msl.engines import finite

    made: list[int] = []
    real = finite.mean_interval
    monkeypatch.setattr(finite, "mean_interval", lambda *a: made.append(1) or real(*a))
    spec = tmp_path / "s.msl"
    spec.write_text("msl 1.0\nverify positive_mean {\n  for x in [1, 2, 3, 5, 8, 13]\n  expect mean(x) > 0\n}\n")
    cache = tmp_path / "results.sqlite"

    def interval(seed: int = 0, cached: bool = True) -> tuple[float, float]:
        runner = Runner(RunOptions(progress=False, cache=False, seed=seed))
        runner.planner = Planner(ResultCache(cache) if cached else None, progress=runner.progress)
        (finding,) = runner.check([check_file(spec)]).findings
        values = finding.statistics.values
        return values["mean(x) ci_low"], values["mean(x) ci_high"]

    truth = interval(cached=False)
    made.clear()
    cold = interval()
    assert made == [1] and cold == truth
    assert interval() == truth and made == [1]
    assert interval(seed=1) and made == [1, 1]
