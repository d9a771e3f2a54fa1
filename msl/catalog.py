"""The catalogue: a local SQLite database of findings, the models they were about and the
datasets they used, so a lab can ask "what do we know about this checkpoint?".

Where it lives: the ``path`` given (``--catalog``), else ``$MSL_CATALOG``, else
``.msl/catalog.sqlite`` under the current directory.

Findings are content-addressed, so adding the same finding twice stores it once (the
first copy's provenance is kept). Several processes may add at once (parallel CI jobs):
the database runs in WAL mode with a busy timeout, and each document is added in one
``BEGIN IMMEDIATE`` transaction, so writers queue instead of failing and a document is
stored entirely or not at all. Every finding is stored as its JSON and re-validated when
read, so a hand-edited database cannot smuggle in a finding the model would refuse.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from msl.defaults import DEFAULT_CATALOG as DEFAULT_PATH  # defined there for a fast `msl --help`
from msl.defaults import ENV_VAR
from msl.errors import UsageError
from msl.findings import ClaimKind, Finding, FindingsDocument, Verdict, short_id
from msl.sqlite import retry_locked, use_wal

#: How long a writer waits for another before giving up (parallel CI jobs finish quickly).
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
    id TEXT PRIMARY KEY,
    claim_name TEXT NOT NULL,
    claim_kind TEXT NOT NULL,
    claim_file TEXT NOT NULL,
    claim_line INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    method TEXT NOT NULL,
    started_at TEXT NOT NULL,   -- UTC ISO 8601, so text order is time order
    recorded_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    data_hash TEXT,
    spec_hash TEXT,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_started ON findings (started_at);
CREATE INDEX IF NOT EXISTS findings_claim ON findings (claim_name);
CREATE TABLE IF NOT EXISTS finding_models (
    finding_id TEXT NOT NULL REFERENCES findings (id),
    role TEXT NOT NULL,
    ref TEXT NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (finding_id, role)
);
CREATE INDEX IF NOT EXISTS finding_models_ref ON finding_models (ref);
CREATE INDEX IF NOT EXISTS finding_models_fp ON finding_models (fingerprint);
CREATE TABLE IF NOT EXISTS finding_tags (
    finding_id TEXT NOT NULL REFERENCES findings (id),
    tag TEXT NOT NULL,
    PRIMARY KEY (finding_id, tag)
);
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT NOT NULL,
    ref TEXT NOT NULL,
    kind TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (fingerprint, ref)
);
CREATE TABLE IF NOT EXISTS datasets (
    hash TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
"""


def catalog_path(path: str | Path | None = None) -> Path:
    """The catalogue to use: ``path`` if given, else ``$MSL_CATALOG``, else the default."""
    if path is not None and str(path):
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


@dataclass(frozen=True, slots=True)
class Entry:
    """A row of a catalogue listing: enough to choose a finding to ``show``."""

    id: str
    claim: str
    kind: ClaimKind
    file: str
    line: int
    verdict: Verdict
    method: str
    started_at: datetime
    models: tuple[str, ...]

    @property
    def short_id(self) -> str:
        return short_id(self.id)


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`Catalog.add` did."""

    added: int
    already_present: int


@dataclass(frozen=True, slots=True)
class ModelRecord:
    fingerprint: str
    ref: str
    kind: str | None
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    hash: str
    first_seen: datetime
    last_seen: datetime


class Catalog:
    """A connection to one catalogue database; use it as a context manager.

    Every error the user can cause (an unwritable path, a file that is not a database,
    an unknown id) is a :class:`~msl.errors.UsageError`.
    """

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = catalog_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise UsageError(f"cannot open catalogue {str(self.path)!r}: {exc}") from None
        try:
            use_wal(self._db, timeout_s)
            version = retry_locked(self._prepare, timeout_s)
        except sqlite3.Error as exc:
            self._db.close()
            raise UsageError(f"cannot use catalogue {str(self.path)!r}: {exc}") from None
        if version != str(SCHEMA_VERSION):
            self._db.close()
            raise UsageError(
                f"catalogue {str(self.path)!r} has schema version {version}, this MSL reads {SCHEMA_VERSION}"
            )

    def _prepare(self) -> str | None:
        """The schema on a new catalogue; the schema version it has."""
        version = self._schema_version()
        if version is None:  # a new catalogue: create it (readers of an existing one take no lock)
            with self._write() as db:
                # executescript would commit the transaction, so one statement at a time.
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = self._schema_version()
        return version

    def _schema_version(self) -> str | None:
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else str(row[0])

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: take the write lock up front (waiting up
        to the busy timeout), commit on success, roll back on any error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn what a hand-edited or damaged database can raise into a usage error."""
        try:
            yield
        except (ValueError, sqlite3.Error) as exc:
            raise UsageError(f"catalogue {str(self.path)!r} is damaged: {exc}") from None

    # ── Writing ──────────────────────────────────────────────────────────────────────

    def add(self, doc: FindingsDocument | Sequence[Finding]) -> Added:
        """Store the findings of ``doc`` with their models and datasets, in one transaction."""
        findings = doc.findings if isinstance(doc, FindingsDocument) else list(doc)
        now = _iso(datetime.now(UTC))
        added = 0
        try:
            with self._write() as db:
                for f in findings:
                    added += self._add_one(db, f, now)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot write to catalogue {str(self.path)!r}: {exc}") from None
        return Added(added=added, already_present=len(findings) - added)

    @staticmethod
    def _add_one(db: sqlite3.Connection, f: Finding, now: str) -> int:
        started = _iso(f.provenance.started_at)
        cursor = db.execute(
            "INSERT OR IGNORE INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f.id, f.claim.name, f.claim.kind.value, f.claim.file, f.claim.line, f.verdict.value,
                f.method.value, started, now, f.duration_s, f.provenance.data_hash,
                f.provenance.spec_hash, f.model_dump_json(),
            ),
        )
        if cursor.rowcount == 0:
            return 0
        for m in f.models:
            db.execute("INSERT OR IGNORE INTO finding_models VALUES (?, ?, ?, ?)", (f.id, m.role, m.ref, m.fingerprint))
            if m.fingerprint is not None:
                db.execute(
                    "INSERT INTO models VALUES (?, ?, ?, ?, ?) ON CONFLICT (fingerprint, ref) DO UPDATE SET "
                    "first_seen = min(first_seen, excluded.first_seen), "
                    "last_seen = max(last_seen, excluded.last_seen), "
                    "kind = coalesce(kind, excluded.kind)",
                    (m.fingerprint, m.ref, m.kind, started, started),
                )
        for tag in f.claim.tags:
            db.execute("INSERT OR IGNORE INTO finding_tags VALUES (?, ?)", (f.id, tag))
        if f.provenance.data_hash is not None:
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET "
                "first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
                (f.provenance.data_hash, started, started),
            )
        return 1

    # ── Reading ──────────────────────────────────────────────────────────────────────

    def show(self, id_or_prefix: str) -> Finding:
        """The finding with this id, or the only one whose id starts with this prefix
        (with or without ``sha256:``; at least 6 hex digits)."""
        prefix = id_or_prefix.strip().removeprefix("sha256:").lower()
        if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
            raise UsageError(f"{id_or_prefix!r} is not a finding id", hint="give at least 6 hex digits of the id")
        key = "sha256:" + prefix
        with self._reading():
            rows = self._db.execute(
                "SELECT id, json FROM findings WHERE substr(id, 1, ?) = ? LIMIT 2", (len(key), key)
            ).fetchall()
        if not rows:
            raise UsageError(f"no finding {id_or_prefix!r} in catalogue {str(self.path)!r}")
        if len(rows) > 1:
            raise UsageError(f"{id_or_prefix!r} matches several findings", hint="give more digits of the id")
        return self._finding(rows[0][1])

    def _finding(self, text: str) -> Finding:
        try:
            return Finding.model_validate_json(text, strict=True)
        except (ValidationError, TypeError, RecursionError):  # TypeError: not text at all
            raise UsageError(f"catalogue {str(self.path)!r} holds a finding that is no longer valid") from None

    def latest(self, limit: int | None = 50) -> list[Entry]:
        """The most recent findings first."""
        return self.search(limit=limit)

    def search(
        self,
        *,
        model: str | None = None,
        kinds: Sequence[ClaimKind | str] = (),
        verdicts: Sequence[Verdict | str] = (),
        tags: Sequence[str] = (),
        claim: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Findings matching every filter given, most recent first.

        ``model`` matches a model reference exactly, or a fingerprint exactly or by a
        prefix of at least 8 hex digits after ``sha256:``; ``kinds``, ``verdicts`` and
        ``tags`` match any of their values; ``since`` is inclusive and ``until``
        exclusive, on the time the run started (naive times are taken as UTC).
        """
        where: list[str] = []
        params: list[object] = []
        if model is not None:
            clause = "m.ref = ? OR m.fingerprint = ?"
            params += [model, model]
            if model.startswith("sha256:") and len(model) >= len("sha256:") + 8:
                clause += " OR substr(m.fingerprint, 1, ?) = ?"
                params += [len(model), model.lower()]
            where.append(f"EXISTS (SELECT 1 FROM finding_models m WHERE m.finding_id = f.id AND ({clause}))")
        for column, values in (("claim_kind", kinds), ("verdict", verdicts)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params += [str(getattr(v, "value", v)) for v in values]
        if tags:
            where.append(
                "EXISTS (SELECT 1 FROM finding_tags t WHERE t.finding_id = f.id "
                f"AND t.tag IN ({', '.join('?' * len(tags))}))"
            )
            params += list(tags)
        if claim is not None:
            where.append("claim_name = ?")
            params.append(claim)
        if since is not None:
            where.append("started_at >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("started_at < ?")
            params.append(_iso(until))
        sql = (
            "SELECT id, claim_name, claim_kind, claim_file, claim_line, verdict, method, started_at, "
            "(SELECT group_concat(role || '=' || ref, char(31)) FROM finding_models m WHERE m.finding_id = f.id) "
            "FROM findings f"
            + (" WHERE " + " AND ".join(f"({w})" for w in where) if where else "")
            + " ORDER BY started_at DESC, id"
            + (" LIMIT ?" if limit is not None else "")
        )
        if limit is not None:
            params.append(limit)
        with self._reading():
            return [
                Entry(
                    id=row[0], claim=row[1], kind=ClaimKind(row[2]), file=row[3], line=row[4], verdict=Verdict(row[5]),
                    method=row[6], started_at=datetime.fromisoformat(row[7]),
                    models=tuple(sorted(row[8].split("\x1f"))) if row[8] else (),
                )
                for row in self._db.execute(sql, params)
            ]

    def models(self) -> list[ModelRecord]:
        """Every model (fingerprint and reference) a stored finding was about."""
        with self._reading():
            rows = self._db.execute(
                "SELECT fingerprint, ref, kind, first_seen, last_seen FROM models ORDER BY last_seen DESC"
            )
            return [
                ModelRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), datetime.fromisoformat(r[4])) for r in rows
            ]

    def datasets(self) -> list[DatasetRecord]:
        """Every dataset hash a stored finding used."""
        with self._reading():
            rows = self._db.execute("SELECT hash, first_seen, last_seen FROM datasets ORDER BY last_seen DESC")
            return [DatasetRecord(r[0], datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2])) for r in rows]

    def count(self) -> int:
        with self._reading():
            (n,) = self._db.execute("SELECT count(*) FROM findings").fetchone()
        return int(n)


def _iso(moment: datetime) -> str:
    """UTC, fixed width, so that comparing the text compares the times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
