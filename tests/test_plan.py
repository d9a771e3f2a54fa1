"""The planner: pending queries, deduplication, grouping by intervention, caching, routing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msl.cache import ResultCache
from msl.models.base import Model, ModelLoadError, ModelStats, ProgressFn
from msl.plan import PENDING, Planner
from msl.queries import (
    Add,
    Capture,
    Generate,
    Intervention,
    LogProb,
    NextLogProbs,
    Query,
    QueryFailed,
    Result,
    Site,
    TokenSel,
    Vector,
)


class FakeLM(Model):
    """Answers from the text alone and records every call, so routing is visible."""

    kind = "causal_lm"

    def __init__(self, fingerprint: str = "sha256:" + "0" * 64, fail: Exception | None = None) -> None:
        self.ref, self.dtype, self.device = "fake", "float32", "cpu"
        self.stats = ModelStats()
        self.calls: list[tuple[list[Query], Intervention | None]] = []
        self._fingerprint = fingerprint
        self.fail = fail

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def run(
        self, queries: Sequence[Query], intervention: Intervention | None = None, *, progress: ProgressFn | None = None
    ) -> list[Result]:
        self.calls.append((list(queries), intervention))
        if self.fail is not None:
            raise self.fail
        self.stats.rows += len(queries)
        self.stats.batches += 1
        shift = sum(op.scale for op in intervention.ops) if intervention else 0.0  # type: ignore[union-attr]
        out: list[Result] = []
        for q in queries:
            if isinstance(q, LogProb):
                out.append(-float(len(q.continuation)) + shift)
            elif isinstance(q, NextLogProbs):
                out.append(np.full(4, len(q.text) + shift, np.float32))
            elif isinstance(q, Generate):
                out.append(q.text.upper())
            else:
                out.append(QueryFailed("unsupported"))
        return out


def steer(scale: float) -> Intervention:
    return Intervention((Add(Site("resid_post", 1), Vector(np.ones(4, np.float32)), scale, TokenSel.all()),))


def test_pending_then_flush_then_known() -> None:
    lm, planner = FakeLM(), Planner()
    assert planner.get(lm, LogProb("a", " b")) is PENDING
    assert planner.get(lm, LogProb("a", " b")) is PENDING  # asked again before the flush: still one
    assert planner.pending == 1
    assert planner.flush() == 1
    assert planner.get(lm, LogProb("a", " b")) == -2.0
    assert planner.flush() == 0 and len(lm.calls) == 1
    s = planner.stats
    assert (s.requested, s.unique, s.memory_hits, s.executed, s.forward_passes, s.batches) == (3, 1, 1, 1, 1, 1)


def test_claims_share_queries_and_groups_split_by_intervention() -> None:
    lm, planner = FakeLM(), Planner()
    claims = [
        [(NextLogProbs(t), None) for t in ("x", "yy", "zzz")],
        [(NextLogProbs(t), None) for t in ("yy", "zzz", "wwww")],
        [(NextLogProbs(t), steer(2.0)) for t in ("x", "yy")],
        [(NextLogProbs(t), steer(2.0)) for t in ("yy",)] + [(Generate("hi", 3), None)],
        [(NextLogProbs("x"), Intervention(()))],  # no operation at all: the plain group
    ]
    assert all(planner.get(lm, q, i) is PENDING for claim in claims for q, i in claim)
    assert planner.flush() == 7
    assert len(lm.calls) == 2
    plain, steered = sorted(lm.calls, key=lambda c: c[1] is not None)
    assert plain[1] is None and sorted(map(str, plain[0])) == sorted(
        map(str, {q for c in claims for q, i in c if not i or not i.ops})
    )
    assert steered[1] == steer(2.0) and len(steered[0]) == 2
    assert float(planner.get(lm, NextLogProbs("yy"), steer(2.0))[0]) == 4.0
    assert float(planner.get(lm, NextLogProbs("yy"))[0]) == 2.0
    assert planner.get(lm, Generate("hi", 3)) == "HI"


def test_models_are_kept_apart() -> None:
    a, b = FakeLM("sha256:" + "a" * 64), FakeLM("sha256:" + "b" * 64)
    planner = Planner()
    planner.get(a, NextLogProbs("x"))
    planner.get(b, NextLogProbs("x"))
    planner.flush()
    assert len(a.calls) == len(b.calls) == 1


def test_disk_cache_makes_a_rerun_free(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    lm = FakeLM()
    first = Planner(ResultCache(path))
    queries = [LogProb("p", " q"), NextLogProbs("p"), Generate("p", 2)]
    for q in queries:
        first.get(lm, q, steer(1.0))
    first.flush()
    lm2 = FakeLM()  # a new process: same weights, a new model object
    second = Planner(ResultCache(path))
    values = [second.get(lm2, q, steer(1.0)) for q in queries]
    assert not any(v is PENDING for v in values) and lm2.calls == []
    assert values[0] == -1.0 and values[2] == "P" and np.array_equal(values[1], np.full(4, 2.0, np.float32))
    assert (second.stats.disk_hits, second.stats.executed) == (3, 0)
    # another fingerprint or dtype is another model: nothing is reused
    other = FakeLM("sha256:" + "1" * 64)
    assert Planner(ResultCache(path)).get(other, queries[0], steer(1.0)) is PENDING
    lm3 = FakeLM()
    lm3.dtype = "bfloat16"
    assert Planner(ResultCache(path)).get(lm3, queries[0], steer(1.0)) is PENDING


def test_a_failing_group_fails_its_queries_only(tmp_path: Path) -> None:
    broken, fine = FakeLM(fail=RuntimeError("CUDA out of memory")), FakeLM("sha256:" + "f" * 64)
    planner = Planner(ResultCache(tmp_path / "r.sqlite"))
    planner.get(broken, NextLogProbs("x"))
    planner.get(fine, NextLogProbs("x"))
    planner.flush()
    failed = planner.get(broken, NextLogProbs("x"))
    assert isinstance(failed, QueryFailed) and "out of memory" in failed.message
    assert isinstance(planner.get(fine, NextLogProbs("x")), np.ndarray)
    # failures are not cached on disk: the next run tries again
    assert Planner(ResultCache(tmp_path / "r.sqlite")).get(broken, NextLogProbs("x")) is PENDING


def test_a_model_that_cannot_load_fails_its_queries_only() -> None:
    """It stopped the whole run (issue 13): now the claims that use it end in `error`."""
    broken, fine = FakeLM(fail=ModelLoadError("weights are corrupt")), FakeLM("sha256:" + "f" * 64)
    planner = Planner()
    planner.get(broken, NextLogProbs("x"))
    planner.get(fine, NextLogProbs("x"))
    planner.flush()
    failed = planner.get(broken, NextLogProbs("x"))
    assert isinstance(failed, QueryFailed) and failed.message == "weights are corrupt"
    assert isinstance(planner.get(fine, NextLogProbs("x")), np.ndarray)


def test_pending_is_a_singleton_without_truth() -> None:
    from msl.plan import _Pending

    assert _Pending() is PENDING and repr(PENDING) == "PENDING"
    with pytest.raises(TypeError):
        bool(PENDING)


def test_real_model_batches_across_claims(smollm2: Any, tmp_path: Path) -> None:
    planner = Planner(ResultCache(tmp_path / "r.sqlite"))
    prompts = ["The capital of France is", "The capital of Spain is", "I like", "Hello there"]
    queries: list[Query] = [NextLogProbs(p) for p in prompts] + [LogProb(p, " Paris") for p in prompts[:2]]
    queries += [Capture(prompts[0], Site("resid_post", 3)), Capture(prompts[0], Site("mlp_out", 5))]
    for q in queries + queries:  # two claims asking the same things
        assert planner.get(smollm2, q) is PENDING
    planner.flush()
    direct = smollm2.run(queries)
    got = [planner.get(smollm2, q) for q in queries]
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(got, direct, strict=True))
    s = planner.stats
    assert (s.unique, s.executed, s.forward_passes) == (8, 8, 4)  # log-probs and captures share their prompt's pass
    assert s.batches == 1
