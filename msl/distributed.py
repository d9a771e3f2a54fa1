"""Model batches on Ray workers: ``msl check --workers N`` and ``--ray ADDRESS``.

The planner (:mod:`msl.plan`) stays the one place that decides what runs: each flush
gives :meth:`RayPlanner._execute` its groups of (model, intervention) queries, exactly as
the single-process path runs them. A group goes to a worker, a Ray actor that holds one
replica of every model it has served; the worker asks the adapter how it would batch the
group (:meth:`msl.models.base.Model.batch_plan`) and, when that is more than one batch,
hands the parts back so that they are spread over all workers. A part is one batch of the
single-process run, and an adapter run on a part alone makes that very batch again, so
every result is computed at the batch composition the single-process run uses: findings,
verdicts and ids are the same with any number of workers.

Workers load models from the driver's resolved :class:`~msl.models.base.ModelSource` (a
path on a filesystem every node sees, or a hub id) and refuse a model whose fingerprint
differs from the driver's. Results come back to the driver, which alone writes the
result cache. A worker that dies is restarted by Ray and its batches re-run
(``max_restarts``, ``max_task_retries``); a part whose worker dies for good fails its
queries (an ``error`` verdict), and a fresh worker takes the dead one's place.

Ray is imported here only: the single-process path never imports it. Ray missing, or a
runtime that cannot be started or joined, is a :class:`~msl.errors.RuntimeFailure`
(exit code 3).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msl.errors import RuntimeFailure
from msl.models.base import Model, ModelLoadError, ModelSource, describe
from msl.plan import PENDING, GroupKey, Planner
from msl.queries import Intervention, Query, QueryFailed, Result

if TYPE_CHECKING:
    from msl.cache import ResultCache
    from msl.progress import RunProgress

#: Test hook: a file path; the first worker call that creates this file exits its process
#: at once (``os._exit``), as a worker killed mid-run would.
CRASH_ONCE_ENV = "MSL_RAY_CRASH_ONCE"

#: How often Ray restarts a dead worker, and re-runs a call that died with it.
MAX_RESTARTS = 4
MAX_TASK_RETRIES = 3

#: Calls queued per worker beyond the running one, so that a worker never waits on the driver.
QUEUED_PER_WORKER = 1


@dataclass(frozen=True)
class Recipe:
    """How a worker makes its own replica of a driver's model."""

    kind: str
    source: ModelSource
    dtype: str
    device: str
    fingerprint: str


def recipe_of(model: Model) -> Recipe | None:
    """The recipe of an adapter loaded from files (None for any other model: it runs
    in the driver)."""
    source = getattr(model, "source", None)
    if not isinstance(source, ModelSource):
        return None
    return Recipe(model.kind, source, model.dtype, model.device, model.fingerprint)


@dataclass(frozen=True)
class Failure:
    """A worker call that could not run its queries; ``load`` when the model cannot be loaded."""

    message: str
    load: bool = False


@dataclass(frozen=True)
class Ran:
    """What a worker call returns: one result per query, the model's rows and batches, seconds."""

    results: list[Result]
    rows: int
    batches: int
    seconds: float


class Worker:
    """The body of a Ray actor: the models it serves, loaded on first use and kept."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, ModelSource, str, str], Model] = {}
        import msl.models.text  # noqa: F401 - torch and transformers load while the driver binds its models

    def _model(self, recipe: Recipe) -> Model:
        key = (recipe.kind, recipe.source, recipe.dtype, recipe.device)
        if key not in self._models:
            from msl.models import open_model

            # A worker placed on a GPU sees it as its only one (Ray sets CUDA_VISIBLE_DEVICES).
            device = "cuda" if recipe.device.startswith("cuda") else recipe.device
            model = open_model(recipe.source, recipe.kind, dtype=recipe.dtype, device=device)
            if model.fingerprint != recipe.fingerprint:
                raise ModelLoadError(
                    f"the worker's copy of '{recipe.source.ref}' has fingerprint {model.fingerprint}, "
                    f"the driver's {recipe.fingerprint}",
                    hint="every node must see the same model files (a shared model cache, MSL_CACHE_DIR)",
                )
            self._models[key] = model
        return self._models[key]

    def preload(self, recipe: Recipe) -> None:
        """Load a model ahead of its first batch (a failure is reported by that batch)."""
        try:
            self._model(recipe)
        except Exception:  # noqa: BLE001 - the batch that needs the model says why it failed
            pass

    def plan_or_run(
        self, recipe: Recipe, queries: Sequence[Query], intervention: Intervention | None
    ) -> Ran | Failure | list[list[int]]:
        """Run the group when the adapter makes one batch of it; else return its parts."""
        _crash_once()
        try:
            model = self._model(recipe)
            parts = model.batch_plan(queries, intervention)
        except ModelLoadError as exc:
            return Failure(exc.message, load=True)
        except Exception as exc:
            return Failure(f"{recipe.source.ref}: {describe(exc)}")
        if len(parts) > 1:
            return parts
        return self.run(recipe, queries, intervention)

    def run(self, recipe: Recipe, queries: Sequence[Query], intervention: Intervention | None) -> Ran | Failure:
        """Run ``queries`` as one call of the adapter (the same failure rules as :meth:`Planner.flush`)."""
        _crash_once()
        start = time.perf_counter()
        try:
            model = self._model(recipe)
            rows, batches = model.stats.rows, model.stats.batches
            results = model.run(list(queries), intervention)
        except ModelLoadError as exc:
            return Failure(exc.message, load=True)
        except Exception as exc:
            return Failure(f"{recipe.source.ref}: {describe(exc)}")
        return Ran(results, model.stats.rows - rows, model.stats.batches - batches, time.perf_counter() - start)


def _crash_once() -> None:
    path = os.environ.get(CRASH_ONCE_ENV)
    if not path:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(1)


class Session:
    """A Ray runtime (started here, or an existing cluster joined) and its workers."""

    def __init__(self, workers: int | None, address: str | None, gpus: bool) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeFailure(
                "--workers and --ray need Ray, which is not installed",
                hint="pip install 'msl[ray]'; or leave out --workers/--ray (and RAY_ADDRESS) to run in one process",
            ) from None
        self.ray = ray
        self.key = (workers, address, gpus)
        self.owned = not ray.is_initialized()
        if self.owned:
            import logging

            try:
                if address:
                    _probe(address)
                    # The model cache (and its fingerprint memo) where the driver has it: a shared folder.
                    shared = {k: os.environ[k] for k in ("MSL_CACHE_DIR",) if os.environ.get(k)}
                    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                             runtime_env={"env_vars": shared} if shared else None)
                else:
                    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR)
            except Exception as exc:
                where = (
                    f"join the Ray cluster at {address}"
                    if address
                    else f"start a local Ray runtime with {workers} workers"
                )
                raise RuntimeFailure(
                    f"cannot {where}: {describe(exc)}",
                    hint="check the address (ray status on the head node), or leave out --workers/--ray",
                ) from None
        resources = ray.cluster_resources()
        self.gpus = gpus and resources.get("GPU", 0) >= 1
        # More workers than GPUs (or CPUs) would wait for ever for their place.
        available = max(1, int(resources.get("GPU", 0) if self.gpus else resources.get("CPU", 1)))
        self.size = min(workers or available, available)
        self._actor: Any = ray.remote(
            num_cpus=0 if self.gpus else 1, num_gpus=1 if self.gpus else 0,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
        )(Worker)
        self.workers: list[Any] = [self._actor.remote() for _ in range(self.size)]  # actor handles

    def replace(self, dead: Any) -> None:
        """A fresh worker in place of ``dead``, which died for good (once: the other calls
        it was running fail too, after it has been replaced)."""
        for index, worker in enumerate(self.workers):
            if worker is dead:
                with contextlib.suppress(Exception):
                    self.ray.kill(dead, no_restart=True)
                self.workers[index] = self._actor.remote()

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker, no_restart=True)
        self.workers = []
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


#: Seconds to wait for a cluster's head to accept a connection (Ray itself retries for ever).
PROBE_TIMEOUT_S = 5.0


def _probe(address: str) -> None:
    """Fail fast where nothing listens at ``address`` (``host:port`` or ``ray://host:port``);
    ``auto`` and other forms are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc})") from None


_SESSION: Session | None = None


def session(workers: int | None, address: str | None, gpus: bool) -> Session:
    """The process's Ray session for these settings (started once, kept for later runs)."""
    global _SESSION
    if _SESSION is not None and _SESSION.key != (workers, address, gpus):
        shutdown()
    if _SESSION is None:
        _SESSION = Session(workers, address, gpus)
    return _SESSION


def shutdown() -> None:
    """Stop the workers, and the Ray runtime where this process started it."""
    global _SESSION
    if _SESSION is not None:
        _SESSION.close()
        _SESSION = None


@dataclass
class _Call:
    """One worker call in flight: the group it serves, the query indices it runs (None:
    the whole group, planning first), the worker's index."""

    key: GroupKey
    part: list[int] | None
    worker: int
    handle: Any


class RayPlanner(Planner):
    """A :class:`~msl.plan.Planner` whose model batches run on Ray workers."""

    def __init__(
        self,
        cache: ResultCache | None = None,
        *,
        progress: RunProgress | None = None,
        workers: int | None = None,
        address: str | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(cache, progress=progress)
        self.session = session(workers, address, device != "cpu")
        self._preloaded: set[int] = set()

    def get(self, model: Model, query: Query, intervention: Intervention | None = None) -> Any:
        """As :meth:`Planner.get`; the first query a model cannot answer from the caches
        has every worker load it, while the claims' round goes on in the driver."""
        result = super().get(model, query, intervention)
        if result is PENDING and id(model) not in self._preloaded:
            self._preloaded.add(id(model))
            recipe = recipe_of(model)
            if recipe is not None:
                for worker in self.session.workers:
                    worker.preload.remote(recipe)
        return result

    def _execute(
        self, groups: dict[GroupKey, dict[Query, set[object]]]
    ) -> Iterator[tuple[GroupKey, dict[Query, set[object]], list[Any], float]]:
        recipes = {}
        for key in groups:
            mid = key[0]
            recipe = None if mid in self._broken else recipe_of(self._models[mid])
            if recipe is not None:
                recipes[key] = recipe
        local = {k: q for k, q in groups.items() if k not in recipes}
        yield from super()._execute(local)
        remote = {k: list(q) for k, q in groups.items() if k in recipes}
        if not remote:
            return
        start = time.perf_counter()
        results, seconds = self._spread(remote, recipes)
        # Workers run side by side: the flush's wall time is shared out in proportion to
        # the work each group took, so that claims' times still add up to the run's.
        scale = (time.perf_counter() - start) / max(sum(seconds.values()), 1e-9)
        for key in remote:
            yield key, groups[key], results[key], seconds[key] * scale

    def _spread(
        self, remote: dict[GroupKey, list[Query]], recipes: dict[GroupKey, Recipe]
    ) -> tuple[dict[GroupKey, list[Any]], dict[GroupKey, float]]:
        """Run every group on the workers: each first as a whole (the worker plans it),
        then the parts of those that are more than one batch, each on a free worker."""
        ray = self.session.ray
        size = len(self.session.workers)
        results: dict[GroupKey, list[Any]] = {k: [None] * len(b) for k, b in remote.items()}
        seconds = dict.fromkeys(remote, 0.0)
        todo: deque[tuple[GroupKey, list[int] | None]] = deque((k, None) for k in remote)
        flying: dict[Any, _Call] = {}
        load = [0] * size
        total = sum(len(b) for b in remote.values())
        batches = 0
        refs = sorted({self._models[k[0]].ref for k in remote})
        label = f"{', '.join(refs)} on {size} worker{'s' if size > 1 else ''}"
        if self.progress is not None:
            self.progress.work_started(label, total, any(k[1] is not None for k in remote))
        while todo or flying:
            while todo and min(load) <= QUEUED_PER_WORKER:
                key, part = todo.popleft()
                index = load.index(min(load))
                worker = self.session.workers[index]
                batch = remote[key] if part is None else [remote[key][i] for i in part]
                ref = (worker.plan_or_run if part is None else worker.run).remote(recipes[key], batch, key[1])
                flying[ref] = _Call(key, part, index, worker)
                load[index] += 1
            [done], _ = ray.wait(list(flying), num_returns=1)
            call = flying.pop(done)
            load[call.worker] -= 1
            part = call.part if call.part is not None else list(range(len(remote[call.key])))
            try:
                answer = ray.get(done)
            except ray.exceptions.RayError as exc:
                if isinstance(exc, ray.exceptions.RayActorError):  # dead after every restart Ray allows
                    self.session.replace(call.handle)
                answer = Failure(f"{self._models[call.key[0]].ref}: the Ray worker failed: {describe(exc)}")
            if isinstance(answer, list):
                todo.extend((call.key, [part[i] for i in sub]) for sub in answer)
                continue
            if isinstance(answer, Failure):
                if answer.load:
                    self._broken[call.key[0]] = ModelLoadError(answer.message)
                values: Sequence[Any] = [QueryFailed(answer.message)] * len(part)
            else:
                values = answer.results
                self.stats.forward_passes += answer.rows
                self.stats.batches += answer.batches
                batches += answer.batches
                seconds[call.key] += answer.seconds
            for i, value in zip(part, values, strict=True):
                results[call.key][i] = value
            if self.progress is not None:
                self.progress.advance(len(part))
        if self.progress is not None:
            self.progress.work_done(label, total, batches, sum(seconds.values()))
        return results, seconds
