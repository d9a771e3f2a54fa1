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

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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


def derived_key(name: str, parts: object) -> str:
    """The cache key of a pure computation on model results (a probe fit, …): ``name`` and
    its exact inputs ``parts`` (JSON; arrays given by their :func:`array_digest`), kept
    apart from model results by the name and :data:`~msl.queries.SEMANTICS_VERSION`."""
    text = json.dumps(["derived", SEMANTICS_VERSION, name, parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes: equal digests, equal arrays."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}:{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def source_digest(package: str) -> str:
    """sha256 over the source files of ``package`` (a dotted name) and its subpackages,
    computed once per process: part of the key of a derived result computed by that code,
    so that any change of the code recomputes it rather than serve the old code's answer."""
    if package not in _SOURCE_DIGESTS:
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for {package!r}")
        root = Path(spec.origin).parent
        files = sorted(root.rglob("*.py")) if spec.submodule_search_locations else [Path(spec.origin)]
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\n")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        _SOURCE_DIGESTS[package] = h.hexdigest()
    return _SOURCE_DIGESTS[package]


_SOURCE_DIGESTS: dict[str, str] = {}


def cached_json(cache: ResultCache | None, key: str, label: str, compute: Callable[[], Any],
                encode_value: Callable[[Any], Any], decode_value: Callable[[Any], Any],
                storable: Callable[[Any], bool] = lambda value: True) -> Any:
    """The value of a pure computation whose exact inputs ``key`` names
    (:func:`derived_key`): decoded from its JSON form in the result cache when stored
    before, else computed and, when ``storable``, stored (same SQLite file, one atomic
    write; an unreadable entry is recomputed). ``cache`` None (``--no-cache``) computes."""
    if cache is not None:
        text = cache.get(key)
        if isinstance(text, str):
            try:
                return decode_value(json.loads(text))
            except (ValueError, TypeError, KeyError):
                pass  # damaged or from an incompatible layout: recompute and overwrite
    value = compute()
    if cache is not None and storable(value):
        try:
            text = json.dumps(encode_value(value), allow_nan=False)
        except (TypeError, ValueError):
            return value  # not exactly representable in JSON: not cached
        cache.put_many([(key, label, text)])
    return value


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


#: What SQLite says of a file that is not, or no longer, a sound database.
_DAMAGE = ("not a database", "malformed", "corrupt", "disk i/o error")


def is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether ``exc`` means the database file itself is damaged (not busy, not full)."""
    return any(word in str(exc).lower() for word in _DAMAGE)


def _notice(message: str) -> None:
    """One line on stderr: the cache is a convenience, its faults never stop a run."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class ResultCache:
    """Model results on disk (SQLite), safe for concurrent processes.

    The cache is best effort: a damaged file is set aside (``results.sqlite.damaged-…``)
    and rebuilt, with one line saying so; a write that fails (a full disk) is reported
    once and the run goes on without caching — it never costs a verdict or a report.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        #: False once a write failed: the run goes on without caching
        self.writable = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._create()
            except sqlite3.DatabaseError as exc:
                if not self._damaged(exc):
                    raise
                self._set_aside(exc)
                self._create()
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFailure(f"cannot open the result cache {self.path}: {exc}") from None

    def _create(self) -> None:
        db = self._connect()
        retry_locked(lambda: db.execute(
            "CREATE TABLE IF NOT EXISTS results ("
            " key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,"
            " value BLOB NOT NULL, created REAL NOT NULL)"
        ), BUSY_TIMEOUT_S)

    def _damaged(self, exc: sqlite3.DatabaseError) -> bool:
        """Whether the file is damaged: SQLite said so, or its quick check finds fault
        (run only after an error: it reads the whole file)."""
        if is_damaged(exc):
            return True
        try:
            row = self._connect().execute("PRAGMA quick_check(1)").fetchone()
        except sqlite3.DatabaseError as again:
            return is_damaged(again)
        return row is not None and row[0] != "ok"

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Move a damaged database (and its WAL files) aside, keeping it for a post-mortem,
        so that the next connection starts an empty cache."""
        self.close()
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                os.replace(part, aside.with_name(aside.name + suffix))
        _notice(f"the result cache {self.path} was damaged ({exc}); it is kept as {aside.name} and rebuilt")

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
        try:
            row = self._connect().execute("SELECT kind, value FROM results WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        try:
            return decode(row[0], row[1])
        except (ValueError, TypeError, OSError, KeyError):
            return None

    def put_many(self, items: Iterable[tuple[str, str, Any]]) -> int:
        """Store ``(key, fingerprint, value)`` triples in one transaction; failures are skipped.
        Returns how many were stored (0 once the cache cannot be written)."""
        if not self.writable:
            return 0
        rows = []
        now = time.time()
        for key, fingerprint, value in items:
            if isinstance(value, QueryFailed):
                continue
            kind, data = encode(value)
            rows.append((key, fingerprint, kind, data, now))
        if not rows:
            return 0
        try:
            self._write(rows)
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            return 0
        return len(rows)

    def get_arrays(self, key: str, names: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The arrays stored together by :meth:`put_arrays` under ``key``, or ``None`` when
        any is absent or unreadable (the computation is then redone)."""
        out = {}
        for name in names:
            value = self.get(f"{key}/{name}")
            if not isinstance(value, np.ndarray):
                return None
            out[name] = value
        return out

    def put_arrays(self, key: str, label: str, arrays: dict[str, np.ndarray]) -> None:
        """Store a computation's arrays under ``key`` in one transaction (all or none);
        ``label`` (e.g. ``derived:probe``) fills the fingerprint column, for inspection."""
        self.put_many((f"{key}/{name}", label, np.asarray(value)) for name, value in arrays.items())

    def _write(self, rows: list[tuple[str, str, str, bytes, float]]) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def _failed(self, exc: sqlite3.DatabaseError) -> None:
        """A read or write failed mid-run: set a damaged file aside and go on with a
        fresh one, or stop writing (once, with one line) when the disk refuses."""
        if self._damaged(exc):
            try:
                self._set_aside(exc)
                self._create()
                return
            except (OSError, sqlite3.Error) as again:
                exc = again if isinstance(again, sqlite3.DatabaseError) else sqlite3.DatabaseError(str(again))
        if self.writable:
            self.writable = False
            _notice(f"the result cache {self.path} cannot be written ({exc}); going on without caching")

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
