"""The offline registry from an empty cache, and the benchmark workload end to end (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from msl.models import load_model
from msl.queries import NextLogProbs


@pytest.mark.slow
def test_smollm2_from_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path))
    model = load_model("smollm2-135m", "causal_lm", progress=False)
    entry = tmp_path / "models" / "smollm2-135m"
    assert (entry / "model.safetensors").is_file() and (entry / "tokenizer.json").is_file()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith((".tmp", ".dl"))]
    (logp,) = model.run([NextLogProbs("The capital of France is")])
    assert model.token_text(int(np.argmax(logp))) == " Paris"
    start = time.monotonic()
    again = load_model("smollm2-135m", "causal_lm", progress=False)
    again.module  # noqa: B018
    assert time.monotonic() - start < 20  # converted once: later loads take seconds
    assert again.fingerprint == model.fingerprint


@pytest.mark.slow
def test_benchmark_variants_agree(smollm2) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    from bench.planner import run

    with tempfile.TemporaryDirectory() as tmp:
        from msl.cache import ResultCache

        _, planned, planner = run.run_planner(smollm2, ResultCache(Path(tmp) / "r.sqlite"))
        _, rerun, warm = run.run_planner(smollm2, ResultCache(Path(tmp) / "r.sqlite"))
    assert planner.stats.unique < planner.stats.requested / 2  # the claims really share queries
    assert warm.stats.executed == 0 and rerun == planned
    assert run.agree(planned, run.hand_written(smollm2, 32))
