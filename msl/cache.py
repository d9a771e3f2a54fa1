"""The on-disk result cache: an unchanged re-run answers from here without running models.

Results are keyed by (model fingerprint, dtype, query, intervention) through their canonical
JSON form (:func:`msl.queries.canonical_json`) and :data:`~msl.queries.SEMANTICS_VERSION`,
hashed to a fixed-length key. The fingerprint covers everything that decides a model's
answers — weights, config, tokenizer and the adapter's code version
(:mod:`msl.models.fingerprint`) — so a changed tokenizer or config is never answered from
the results of the old one. Values are stored without pickle: arrays as ``.npy`` bytes
(read back with ``allow_pickle=False``), a logit-lens result as an ``.npz`` of two arrays,
floats and strings as JSON. SQLite in WAL mode with a busy timeout lets two processes read
and write the same cache at once; failures (:class:`~msl.queries.QueryFailed`) are never
stored, so a transient error is retried on the next run.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from msl.errors import RuntimeFailure
from msl.queries import SEMANTICS_VERSION, Intervention, LensResult, Query, QueryFailed, canonical
from msl.sqlite import retry_locked, use_wal

#: Array dtypes the cache stores (bool, integers, floats): never objects.
_NUMERIC = "biuf"

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0


def result_key(fingerprint: str, dtype: str, query: Query, intervention: Intervention | None) -> str:
    """The cache key of one result (sha256 hex of its canonical description)."""
    text = json.dumps(
        [SEMANTICS_VERSION, fingerprint, dtype, canonical(query), canonical(intervention)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def encode(value: Any) -> tuple[str, bytes]:
    """``(kind, bytes)`` of a result, without pickle."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC:
            raise TypeError(f"arrays of dtype {value.dtype} are not cacheable")
        # The dtype and shape in the kind, the bytes raw: a warm run decodes tens of
        # thousands of small arrays, and parsing an .npy header each time showed up.
        shape = ",".join(str(n) for n in value.shape)
        return f"nd:{value.dtype.str}:{shape}", np.ascontiguousarray(value).tobytes()
    if isinstance(value, LensResult):
        buf = io.BytesIO()
        np.savez(buf, logprob=value.logprob, rank=value.rank)
        return "lens", buf.getvalue()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, float | int | str):
        raise TypeError(f"results of type {type(value).__name__} are not cacheable")
    return "json", json.dumps(value).encode()


def decode(kind: str, data: bytes) -> Any:
    if kind.startswith("nd:"):
        _, dtype_text, shape_text = kind.split(":")
        dtype = np.dtype(dtype_text)
        if dtype.kind not in _NUMERIC:
            raise ValueError(f"cached dtype {dtype_text!r} is not numeric")
        shape = tuple(int(n) for n in shape_text.split(",")) if shape_text else ()
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if kind == "npy":  # the format of earlier versions
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "lens":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return LensResult(z["logprob"], z["rank"])
    if kind == "json":
        return json.loads(data)
    raise ValueError(f"unknown cached value kind {kind!r}")


class ResultCache:
    """Model results on disk (SQLite), safe for concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._connect()
            retry_locked(lambda: db.execute(
                "CREATE TABLE IF NOT EXISTS results ("
                " key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,"
                " value BLOB NOT NULL, created REAL NOT NULL)"
            ), BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFailure(f"cannot open the result cache {self.path}: {exc}") from None

    @classmethod
    def default(cls) -> ResultCache:
        """The cache under ``$MSL_CACHE_DIR`` (default ``~/.cache/msl``)."""
        from msl.models.registry import cache_dir

        return cls(cache_dir() / "results.sqlite")

    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            use_wal(db, BUSY_TIMEOUT_S)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def get(self, key: str) -> Any | None:
        """The cached value, or ``None`` when absent or unreadable (it is then recomputed)."""
        row = self._connect().execute("SELECT kind, value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return decode(row[0], row[1])
        except (ValueError, TypeError, OSError, KeyError):
            return None

    def put_many(self, items: Iterable[tuple[str, str, Any]]) -> int:
        """Store ``(key, fingerprint, value)`` triples in one transaction; failures are skipped.
        Returns how many were stored."""
        rows = []
        now = time.time()
        for key, fingerprint, value in items:
            if isinstance(value, QueryFailed):
                continue
            kind, data = encode(value)
            rows.append((key, fingerprint, kind, data, now))
        if not rows:
            return 0
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(rows)

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
