"""The on-disk result cache: round trips without pickle, keys, concurrent writers."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msl.cache import ResultCache, encode, result_key
from msl.models.registry import ModelStore
from msl.queries import (
    Add,
    Capture,
    Intervention,
    LensResult,
    LogProb,
    NetOutput,
    NextLogProbs,
    QueryFailed,
    Site,
    TokenSel,
    Vector,
    canonical_json,
)

FP = "sha256:" + "ab" * 32


def test_round_trips(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "r.sqlite")
    values = {
        "float": -1.25,
        "nan": float("nan"),
        "text": " Paris.\nThe answer",
        "vector": np.linspace(0, 1, 7, dtype=np.float32),
        "matrix": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ranks": np.array([3, 0, 7], np.int64),
        "flags": np.array([True, False]),
        "scalar": np.array(2.5, np.float64),
        "empty": np.zeros((0, 4), np.float32),
        "lens": LensResult(np.array([-3.0, -1.0], np.float32), np.array([5, 0], np.int64)),
    }
    assert cache.put_many((k, FP, v) for k, v in values.items()) == len(values)
    again = ResultCache(tmp_path / "r.sqlite")
    for key, value in values.items():
        got = again.get(key)
        if isinstance(value, np.ndarray):
            assert np.array_equal(got, value) and got.dtype == value.dtype
        elif key == "nan":
            assert np.isnan(got)
        else:
            assert got == value
    assert again.get("absent") is None


def test_failures_are_not_stored(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "r.sqlite")
    assert cache.put_many([("k", FP, QueryFailed("boom"))]) == 0
    assert cache.get("k") is None and len(cache) == 0


def test_no_pickle_in_or_out(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        encode(np.array([{"a": 1}], dtype=object))
    with pytest.raises(TypeError):
        encode({"a": 1})
    kind, data = encode(np.ones(3, np.float32))
    assert kind == "nd:<f4:3" and data == np.ones(3, np.float32).tobytes()  # raw numbers, no pickle
    # A hostile row (a pickled object array) is refused on read, not unpickled.
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    cache = ResultCache(tmp_path / "r.sqlite")
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        db.execute("INSERT INTO results VALUES ('evil', ?, 'npy', ?, 0)", (FP, buf.getvalue()))
        db.execute("INSERT INTO results VALUES ('evil2', ?, 'json', ?, 0)", (FP, pickle.dumps(1)))
        # hostile or damaged raw rows: an object dtype, a dtype numpy cannot read, a bad shape
        for key, kind in (
            ("evil3", "nd:|O:1"),
            ("evil4", "nd:garbage:1"),
            ("evil5", "nd:<f4:5"),
            ("evil6", "nd:<f4:x"),
        ):
            db.execute("INSERT INTO results VALUES (?, ?, ?, ?, 0)", (key, FP, kind, np.ones(3, np.float32).tobytes()))
    for key in ("evil", "evil2", "evil3", "evil4", "evil5", "evil6"):
        assert cache.get(key) is None, key


def test_keys_separate_every_part() -> None:
    v = Vector(np.ones(4, np.float32))
    q = NextLogProbs("x")
    i = Intervention((Add(Site("resid_post", 1), v, 2.0, TokenSel.last()),))
    base = result_key(FP, "float32", q, None)
    others = {
        result_key("sha256:" + "cd" * 32, "float32", q, None),
        result_key(FP, "bfloat16", q, None),
        result_key(FP, "float32", NextLogProbs("x "), None),
        result_key(FP, "float32", q, i),
        result_key(FP, "float32", q, Intervention((Add(Site("resid_post", 1), v, 2.5, TokenSel.last()),))),
        result_key(
            FP,
            "float32",
            q,
            Intervention((Add(Site("resid_post", 1), Vector(np.full(4, 2, np.float32)), 2.0, TokenSel.last()),)),
        ),
        result_key(FP, "float32", LogProb("x", ""), None),
    }
    assert base not in others and len(others) == 7
    # Keys are a pure function of the values: equal values, equal keys (the vector by content).
    same = Intervention((Add(Site("resid_post", 1), Vector(np.ones(4, np.float64)), 2.0, TokenSel.last()),))
    assert result_key(FP, "float32", q, same) == result_key(FP, "float32", q, i)
    # ...and their canonical form is pinned: changing it silently would orphan every cache.
    assert canonical_json(q) == '["NextLogProbs","x"]'
    assert canonical_json(i) == (
        '["Intervention",[["Add",["Site","resid_post",1],'
        '"sha256:f6bb1294da2f78cd935b01c7656280df5eaa0439e9d97bc03775825a41a508e4",2.0,["TokenSel","last",0]]]]'
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=4),
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=4),
    st.text(max_size=8),
    st.text(max_size=8),
)
def test_equal_keys_exactly_for_equal_queries(xs: list[float], ys: list[float], s: str, t: str) -> None:
    pairs = [
        (NetOutput(tuple(xs)), NetOutput(tuple(ys))),
        (Capture(s, Site("mlp_out", -2), TokenSel.from_(1)), Capture(t, Site("mlp_out", -2), TokenSel.from_(1))),
        (LogProb(s, t), LogProb(t, s)),
    ]
    for a, b in pairs:
        assert (result_key(FP, "float32", a, None) == result_key(FP, "float32", b, None)) == (a == b)


def _writer(path: str, worker: int, n: int) -> None:
    cache = ResultCache(Path(path))
    for start in range(0, n, 10):
        cache.put_many(
            (f"{worker}-{i}", FP, np.full(64, worker * 1000 + i, np.float32)) for i in range(start, start + 10)
        )
        cache.get(f"{worker}-{start}")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    ResultCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = ResultCache(path)
    assert len(cache) == 400
    assert all(float(cache.get(f"{w}-{i}")[0]) == w * 1000 + i for w in range(4) for i in range(100))


def _materialize(root: str, log: str) -> None:
    def build(tmp: Path, step) -> None:  # type: ignore[no-untyped-def]
        with open(log, "a") as fh:
            fh.write("built\n")
        for i in range(20):
            (tmp / f"part{i}").write_text("x" * 1000)
            time.sleep(0.01)

    ModelStore(Path(root), progress=False).materialize("entry", build)


def test_two_processes_filling_the_model_store(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    log = tmp_path / "log.txt"
    procs = [ctx.Process(target=_materialize, args=(str(tmp_path), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert log.read_text() == "built\n"
    entry = tmp_path / "models" / "entry"
    assert sorted(p.name for p in entry.iterdir()) == sorted(f"part{i}" for i in range(20))
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp")]
