"""The planner: every model query of a run, deduplicated, batched, cached, routed back.

The evaluator works in rounds. It evaluates every claim, and each model value it needs it
asks of :meth:`Planner.get`, which answers from memory or the disk cache, or records the
query and returns :data:`PENDING`. After a round the evaluator calls :meth:`Planner.flush`,
which runs everything recorded at once, and evaluates again until nothing is pending. So
the queries of all claims are batched together: the same prompt asked by three claims runs
once, and a round's prompts fill batches that a per-claim loop would leave nearly empty.

Queries are grouped by (model, intervention), since one forward pass carries one
intervention; each group goes to :meth:`msl.models.Model.run` whole, and the adapter
buckets it by length into batches sized for its kind.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from msl.cache import ResultCache, result_key
from msl.models.base import Model, ModelLoadError, describe
from msl.queries import Intervention, Query, QueryFailed


class _Pending:
    """The type of :data:`PENDING`; there is exactly one instance."""

    _instance: _Pending | None = None

    def __new__(cls) -> _Pending:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PENDING"

    def __bool__(self) -> bool:
        raise TypeError("PENDING has no truth value; compare it with `is PENDING`")


#: What :meth:`Planner.get` returns for a query whose result is not known yet.
PENDING: Final = _Pending()

_MISSING = object()


@dataclass
class PlanStats:
    """Counts of a planner's life: ``requested`` get calls for ``unique`` (model, query,
    intervention) triples, of which ``memory_hits`` and ``disk_hits`` were known and
    ``executed`` were run, in ``forward_passes`` model inputs over ``batches`` forward
    calls, taking ``seconds`` inside :meth:`Planner.flush`."""

    requested: int = 0
    unique: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    executed: int = 0
    forward_passes: int = 0
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


GroupKey = tuple[int, Intervention | None]


class Planner:
    """Collects model queries across claims, runs them batched, and remembers the results."""

    def __init__(self, cache: ResultCache | None = None, *, progress: bool = False) -> None:
        self.cache = cache
        self.progress = progress
        self.stats = PlanStats()
        self._memory: dict[tuple[int, Query, Intervention | None], Any] = {}
        self._pending: dict[GroupKey, dict[Query, None]] = {}
        self._models: dict[int, Model] = {}  # keeps every model alive, so its id stays unique
        self._fingerprints: dict[int, str] = {}
        self._broken: dict[int, ModelLoadError] = {}  # models whose load failed, by id

    def get(self, model: Model, query: Query, intervention: Intervention | None = None) -> Any:
        """The result if known (memory, then disk cache); otherwise record it and return
        :data:`PENDING`. A failed query's result is a :class:`~msl.queries.QueryFailed`."""
        self.stats.requested += 1
        if intervention is not None and not intervention.ops:
            intervention = None
        mid = id(model)
        key = (mid, query, intervention)
        known = self._memory.get(key, _MISSING)
        if known is not _MISSING:
            self.stats.memory_hits += 1
            return known
        group = self._pending.get((mid, intervention))
        if group is not None and query in group:
            return PENDING
        self.stats.unique += 1
        self._models.setdefault(mid, model)
        if self.cache is not None:
            cached = self.cache.get(self._disk_key(model, query, intervention))
            if cached is not None:
                self.stats.disk_hits += 1
                self._memory[key] = cached
                return cached
        self._pending.setdefault((mid, intervention), {})[query] = None
        return PENDING

    @property
    def pending(self) -> int:
        """How many queries the next :meth:`flush` will run."""
        return sum(len(g) for g in self._pending.values())

    def flush(self) -> int:
        """Run every pending query and return how many ran.

        Per (model, intervention) group, the queries go to the model in one call (the adapter
        deduplicates token sequences and batches them by length); results go to memory and
        to the disk cache. A group that fails yields a :class:`~msl.queries.QueryFailed` for
        each of its queries; so does every group of a model that cannot be loaded at all
        (its load is not tried again), and only the claims that use it end in `error`.
        """
        if not self._pending:
            return 0
        start = time.perf_counter()
        groups, self._pending = self._pending, {}
        total = sum(len(g) for g in groups.values())
        ran = 0
        with _progress_bar(total, self.progress) as advance:
            for (mid, intervention), queries in groups.items():
                model = self._models[mid]
                batch = list(queries)
                rows, batches = model.stats.rows, model.stats.batches
                try:
                    if mid in self._broken:
                        raise self._broken[mid]
                    results = model.run(batch, intervention, progress=advance)
                except ModelLoadError as exc:
                    self._broken[mid] = exc
                    results = [QueryFailed(exc.message)] * len(batch)
                except Exception as exc:  # any failure of a group is reported per query, as an error verdict
                    results = [QueryFailed(f"{model.ref}: {describe(exc)}")] * len(batch)
                self.stats.forward_passes += model.stats.rows - rows
                self.stats.batches += model.stats.batches - batches
                for query, value in zip(batch, results, strict=True):
                    self._memory[(mid, query, intervention)] = value
                if self.cache is not None:
                    self.cache.put_many(
                        (self._disk_key(model, q, intervention), self._fingerprint(model), v)
                        for q, v in zip(batch, results, strict=True)
                    )
                ran += len(batch)
        self.stats.executed += ran
        self.stats.seconds += time.perf_counter() - start
        return ran

    def _fingerprint(self, model: Model) -> str:
        mid = id(model)
        if mid not in self._fingerprints:
            self._fingerprints[mid] = model.fingerprint
        return self._fingerprints[mid]

    def _disk_key(self, model: Model, query: Query, intervention: Intervention | None) -> str:
        return result_key(self._fingerprint(model), model.dtype, query, intervention)


class _progress_bar:
    """A rich progress bar over the queries of a flush (or nothing)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        import sys

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("running model queries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(file=sys.stderr), transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task("queries", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
