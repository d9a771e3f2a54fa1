"""SQLite opened by several processes at once (the result cache, the catalogue).

Both databases run in WAL mode and take their write lock with ``BEGIN IMMEDIATE``, which
waits through SQLite's busy handler. Opening does not always: while another process opens
or closes the same database (switching it to WAL, recovering or removing the WAL index),
SQLite can answer "database is locked" at once. :func:`retry_locked` waits that out.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_locked(action: Callable[[], T], timeout_s: float) -> T:
    """``action()``, tried again after a short random pause while SQLite says the database
    is locked or busy, for up to ``timeout_s`` seconds; other errors pass through."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0.005, 0.05))


def use_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Give ``db`` a busy timeout of ``timeout_s`` and switch its database to WAL mode."""

    def prepare() -> None:
        db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")

    retry_locked(prepare, timeout_s)
