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

The time a group takes belongs to the claims whose queries it served: while a claim is
evaluated (:meth:`Planner.serving`), every query it records — or finds already recorded by
another claim — names it as a requester, and a flush splits each group's time evenly over
its queries and each query's share evenly over its requesters (:meth:`Planner.take_shares`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from msl.cache import ResultCache, result_key
from msl.models.base import Model, ModelLoadError, describe
from msl.queries import Intervention, Query, QueryFailed

if TYPE_CHECKING:
    from msl.progress import RunProgress


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

    def __init__(self, cache: ResultCache | None = None, *, progress: RunProgress | None = None) -> None:
        self.cache = cache
        #: Told when model work starts, advances and ends (a progress bar, a CI log line).
        self.progress = progress
        self.stats = PlanStats()
        self._memory: dict[tuple[int, Query, Intervention | None], Any] = {}
        #: The queries the next flush runs, by group, each with the requesters that wait on it.
        self._pending: dict[GroupKey, dict[Query, set[object]]] = {}
        self._owner: object | None = None
        self._shares: dict[object, float] = {}
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
            self._request(group[query])
            return PENDING
        self.stats.unique += 1
        self._models.setdefault(mid, model)
        if self.cache is not None:
            cached = self.cache.get(self._disk_key(model, query, intervention))
            if cached is not None:
                self.stats.disk_hits += 1
                self._memory[key] = cached
                return cached
        self._request(self._pending.setdefault((mid, intervention), {}).setdefault(query, set()))
        return PENDING

    def _request(self, requesters: set[object]) -> None:
        if self._owner is not None:
            requesters.add(self._owner)

    @contextmanager
    def serving(self, owner: object) -> Iterator[None]:
        """Name ``owner`` (a claim's run) as the requester of every query asked meanwhile,
        so that the model time spent on those queries is counted as its own."""
        outer, self._owner = self._owner, owner
        try:
            yield
        finally:
            self._owner = outer

    def take_shares(self) -> dict[object, float]:
        """Model seconds per requester since the last call: each flushed group's time split
        evenly over its queries, each query's part split evenly over the requesters waiting
        on it. Time of queries asked outside :meth:`serving` is in no share."""
        shares, self._shares = self._shares, {}
        return shares

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
        ran = 0
        for (mid, intervention), queries, results, seconds in self._execute(groups):
            model = self._models[mid]
            batch = list(queries)
            for query, value in zip(batch, results, strict=True):
                self._memory[(mid, query, intervention)] = value
            if self.cache is not None:
                self.cache.put_many(
                    (self._disk_key(model, q, intervention), self._fingerprint(model), v)
                    for q, v in zip(batch, results, strict=True)
                )
            ran += len(batch)
            self._share(queries, seconds)
        self.stats.executed += ran
        self.stats.seconds += time.perf_counter() - start
        return ran

    def _execute(
        self, groups: dict[GroupKey, dict[Query, set[object]]]
    ) -> Iterator[tuple[GroupKey, dict[Query, set[object]], list[Any], float]]:
        """Run each group in this process, one after the other: ``(group key, its queries,
        one result per query in order, seconds it took)``. :mod:`msl.distributed`
        overrides this to run the groups' batches on Ray workers."""
        for (mid, intervention), queries in groups.items():
            model = self._models[mid]
            batch = list(queries)
            group_start = time.perf_counter()
            rows, batches = model.stats.rows, model.stats.batches
            if self.progress is not None:
                self.progress.work_started(model.ref, len(batch), intervention is not None)
            try:
                if mid in self._broken:
                    raise self._broken[mid]
                results = model.run(batch, intervention, progress=self.progress.advance if self.progress else None)
            except ModelLoadError as exc:
                self._broken[mid] = exc
                results = [QueryFailed(exc.message)] * len(batch)
            except Exception as exc:  # any failure of a group is reported per query, as an error verdict
                results = [QueryFailed(f"{model.ref}: {describe(exc)}")] * len(batch)
            self.stats.forward_passes += model.stats.rows - rows
            self.stats.batches += model.stats.batches - batches
            seconds = time.perf_counter() - group_start
            if self.progress is not None:
                self.progress.work_done(model.ref, len(batch), model.stats.batches - batches, seconds)
            yield (mid, intervention), queries, results, seconds

    def _share(self, queries: dict[Query, set[object]], seconds: float) -> None:
        """Split a group's ``seconds`` over its queries, and each query's over its requesters."""
        per_query = seconds / len(queries)
        for requesters in queries.values():
            for owner in requesters:
                self._shares[owner] = self._shares.get(owner, 0.0) + per_query / len(requesters)

    def _fingerprint(self, model: Model) -> str:
        mid = id(model)
        if mid not in self._fingerprints:
            self._fingerprints[mid] = model.fingerprint
        return self._fingerprints[mid]

    def _disk_key(self, model: Model, query: Query, intervention: Intervention | None) -> str:
        return result_key(self._fingerprint(model), model.dtype, query, intervention)
