"""Run: checked specs → models bound to roles → one engine per claim → findings.

All claims of a check are stepped together: each step evaluates what known results
allow and records the queries it still needs; the planner then runs every pending
query of every claim in one go. A claim's own time is what its steps took, plus its share
of binding its models (split among the claims using each), plus its share of the model
work that served its queries (split among the claims that asked for each query); flush
time served to no claim still waiting is split evenly among those waiting. So the claims'
times add up to the run's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msl.engines import ENGINES, ClaimRun, Outcome
from msl.engines.search import MAX_EXAMPLES
from msl.errors import MslError
from msl.evaluate import Evaluator, RunContext
from msl.findings import (
    ClaimRef,
    Counterexample,
    Finding,
    FindingError,
    FindingsDocument,
    ModelRef,
    Proof,
    Series,
    Statistics,
    Table,
    collect_provenance,
    make_finding,
)
from msl.ir import CheckedClaim, CheckedSpec
from msl.load import display_path
from msl.models.base import ModelLoadError
from msl.models.facts import spec_reference
from msl.plan import Planner
from msl.progress import RunProgress, for_stream
from msl.values import ModelHandle
from msl.vectors import VectorFile, claim_vectors


@dataclass
class RunOptions:
    """What ``msl check`` was asked to do."""

    seed: int = 0
    select: tuple[str, ...] = ()
    bindings: dict[str, str] = field(default_factory=dict)
    dtype: str = "float32"
    device: str = "cpu"
    cache: bool = True
    progress: bool = True
    #: With progress: a line per model batch group too (``msl check -v``).
    verbose: bool = False
    search_examples: int = MAX_EXAMPLES
    #: Saved vectors to use instead of computing them (``--vectors``; :mod:`msl.vectors`).
    vectors: VectorFile | None = None
    #: Model batches on this many Ray workers (``--workers``), on a cluster when
    #: ``ray_address`` is set (``--ray``); neither: in this process (:mod:`msl.distributed`).
    workers: int | None = None
    ray_address: str | None = None


def selected(claim: CheckedClaim, patterns: tuple[str, ...]) -> bool:
    """``--select`` by name (glob), ``kind:verify`` or ``tag:fairness``; any pattern matches."""
    if not patterns:
        return True
    for pattern in patterns:
        key, _, value = pattern.partition(":")
        if not value:
            key, value = "name", pattern
        if key == "name" and fnmatch.fnmatchcase(claim.name, value):
            return True
        if key == "kind" and claim.kind == value:
            return True
        if key == "tag" and value in claim.tags:
            return True
    return False


class _Failed:
    """A role whose model could not be loaded: every claim using it is an error."""

    def __init__(self, error: MslError) -> None:
        self.error = error


class Runner:
    def __init__(self, options: RunOptions, progress: RunProgress | None = None) -> None:
        """``progress`` defaults to what ``options`` ask for, on stderr (see :mod:`msl.progress`)."""
        from msl.cache import ResultCache

        self.options = options
        self.progress = progress if progress is not None else for_stream(
            quiet=not options.progress, verbose=options.verbose
        )
        cache = ResultCache.default() if options.cache else None
        if options.workers is not None or options.ray_address:
            from msl.distributed import RayPlanner

            self.planner: Planner = RayPlanner(
                cache,
                progress=self.progress,
                workers=options.workers,
                address=options.ray_address,
                device=options.device,
            )
        else:
            self.planner = Planner(cache, progress=self.progress)
        self._models: dict[tuple[str, str], Any] = {}
        #: (spec file, label, vector) of every vector the checked claims made or read.
        self.vectors: list[tuple[str, str, Any]] = []
        #: the proof certificates of the ``proved`` findings (msl.certify), saved beside them
        self.certificates: list[Any] = []

    # models

    def load(self, ref: str, kind: str) -> Any:
        key = (ref, kind)
        if key not in self._models:
            from msl.models import load_model

            self.progress.loading(ref)
            try:
                model = load_model(
                    ref, kind, dtype=self.options.dtype, device=self.options.device, progress=self.options.progress
                )
                model.fingerprint  # noqa: B018 - reads the weights unless memoised: a damaged file fails here
                self._models[key] = model
            except MslError as exc:
                self._models[key] = _Failed(exc)
            finally:
                self.progress.loading(None)
        return self._models[key]

    def handles(
        self, spec: CheckedSpec, roles: Iterable[str], rebind: dict[str, ModelHandle] | None = None
    ) -> dict[str, Any]:
        """The models of ``roles``: command-line bindings over the spec's defaults."""
        out: dict[str, Any] = {}
        for role in roles:
            if rebind and role in rebind:
                out[role] = rebind[role]
                continue
            decl = spec.roles[role]
            ref = self.options.bindings.get(role)
            if ref is None and decl.ref is not None:
                ref = spec_reference(decl.ref, spec.folder_of(decl))  # a path in a spec is relative to it
            if ref is None:
                out[role] = _Failed(MslError(
                    f"model role `{role}` has no model",
                    decl.name_span,
                    hint=f"bind it: msl check … --model {role}=REF",
                ))
                continue
            model = self.load(ref, decl.kind)
            if not isinstance(model, _Failed):
                try:
                    model.fingerprint  # noqa: B018 - loads the weights unless their fingerprint is known
                except ModelLoadError as exc:
                    model = _Failed(exc)
            if isinstance(model, _Failed):
                out[role] = _Failed(MslError(
                    f"model role `{role}` ({decl.kind}): {model.error.message}", decl.span, model.error.hint
                ))
            elif (
                decl.fingerprint is not None
                and model.fingerprint != decl.fingerprint
                and role not in self.options.bindings
            ):
                out[role] = _Failed(MslError(
                    f"model `{ref}` for role `{role}` has fingerprint {model.fingerprint}, "
                    f"but the spec pins {decl.fingerprint}",
                    decl.span,
                ))
            else:
                out[role] = ModelHandle(role, decl.kind, model, model.fingerprint)
        return out

    # engines

    def engine(self, claim: CheckedClaim, evaluator: Evaluator) -> ClaimRun:
        """The run of the engine the claim names (:data:`msl.engines.ENGINES`), given what
        its constructor asks for."""
        return ENGINES.call(claim.engine, claim=claim, evaluator=evaluator,
                            max_examples=self.options.search_examples, runs_for=self.runs_for)

    def runs_for(
        self, spec: CheckedSpec, claims: list[CheckedClaim], rebind: dict[str, ModelHandle] | None = None
    ) -> list[ClaimRun]:
        """One run per claim, with its models bound (a claim whose model failed is an error).
        Binding a role takes time (loading, fingerprinting): each claim using it is given
        an even share of it."""
        roles = sorted({r for c in claims for r in c.roles})
        handles: dict[str, Any] = {}
        binding: dict[str, float] = {}
        for role in roles:
            start = time.perf_counter()
            handles.update(self.handles(spec, [role], rebind))
            binding[role] = time.perf_counter() - start
        users = {role: sum(role in c.roles for c in claims) for role in roles}
        bound = {r: h for r, h in handles.items() if isinstance(h, ModelHandle)}
        spec_file = Path(display_path(spec.path)).as_posix()
        pins = self.options.vectors.pins(spec_file) if self.options.vectors is not None else {}
        ctx = RunContext(self.planner, self.options.seed, spec.path.parent, pins=pins)
        evaluator = Evaluator(spec, ctx, bound)
        runs: list[ClaimRun] = []
        for claim in claims:
            run = self.engine(claim, evaluator)
            run.seconds += sum(binding[role] / users[role] for role in claim.roles)
            failed = [h for r, h in handles.items() if r in claim.roles and isinstance(h, _Failed)]
            if failed:
                run.fail(failed[0].error.message, failed[0].error.span)
            runs.append(run)
        return runs

    def drive(self, runs: list[ClaimRun]) -> None:
        """Step every run until all are done, flushing the planner between rounds, and
        count each run's own time into ``run.seconds`` (see the module's docstring)."""
        self.progress.start(len(runs))
        try:
            self._drive(runs)
        finally:
            self.progress.close()

    def _drive(self, runs: list[ClaimRun]) -> None:
        by_id = {id(r): r for r in runs}
        reported: set[int] = set()
        stalled, waiting_before = 0, len(runs)
        self.planner.take_shares()  # model work done before this run is no claim's
        while True:
            for run in [r for r in runs if not r.done]:
                self.progress.working_on(f"checking {run.claim.name}")
                flushed, start = self.planner.stats.seconds, time.perf_counter()
                with self.planner.serving(run):
                    _step(run)
                inner = self.planner.stats.seconds - flushed  # a search flushes within its step
                run.seconds += time.perf_counter() - start - inner
                self._attribute(inner, [run], by_id, reported)
            self.progress.working_on(None)
            for run in runs:
                if run.done and id(run) not in reported:
                    reported.add(id(run))
                    self.progress.claim_done(run)
            waiting = [r for r in runs if not r.done]
            if not waiting:
                return
            start = time.perf_counter()
            executed = self.planner.flush()
            self._attribute(time.perf_counter() - start, waiting, by_id, reported)
            # A round that ran no query and finished no claim cannot be followed by one that does.
            stalled = stalled + 1 if executed == 0 and len(waiting) == waiting_before else 0
            waiting_before = len(waiting)
            if stalled >= 2:
                for run in waiting:
                    run.fail("the claim's measurements never became available", run.claim.claim.span)

    def _attribute(
        self, seconds: float, fallback: list[ClaimRun], by_id: dict[int, ClaimRun], reported: set[int]
    ) -> None:
        """Count ``seconds`` of flushing: each run not yet reported gets the share of the
        model work that served its queries; the rest (overhead, work for claims already
        reported or asked outside any claim) is split evenly among ``fallback``."""
        for owner, share in self.planner.take_shares().items():
            run = by_id.get(id(owner))
            if run is not None and id(run) not in reported:
                run.seconds += share
                seconds -= share
        for run in fallback:
            run.seconds += max(seconds, 0.0) / len(fallback)

    # findings

    def check(self, specs: list[CheckedSpec]) -> FindingsDocument:
        started = _now()
        chosen = [(spec, [c for c in spec.claims if selected(c, self.options.select)]) for spec in specs]
        self.progress.start(sum(len(claims) for _, claims in chosen))  # loading models can take minutes
        try:
            plans = [(spec, self.runs_for(spec, claims)) for spec, claims in chosen if claims]
            all_runs = [r for _, runs in plans for r in runs]
            self.drive(all_runs)
        finally:
            self.progress.close()
        findings = []
        for spec, runs in plans:
            for run in runs:
                findings.append(self.finding(spec, run, run.seconds, started))
        return FindingsDocument.of(findings)

    def finding(self, spec: CheckedSpec, run: ClaimRun, seconds: float, started: Any) -> Finding:
        outcome = run.outcome
        assert outcome is not None
        claim = run.claim
        evaluator: Evaluator | None = getattr(run, "ev", None)
        ctx = evaluator.ctx if evaluator is not None else None
        models = []
        for role in claim.roles:
            handle = evaluator.models.get(role) if evaluator is not None else None
            decl = spec.roles[role]
            models.append(ModelRef(
                role=role,
                ref=self.options.bindings.get(role, decl.ref or "") or "(unbound)",
                kind=decl.kind,
                fingerprint=handle.fingerprint if handle is not None else None,
            ))
        vectors = claim_vectors(spec.symbols, claim.claim, ctx.vectors) if ctx else {}
        # Vectors given with --vectors are data: their bytes count in the data hash (and so the
        # id); vectors computed in the run count by label only (see msl.findings.finding_id).
        pinned = [(f"vector {label}", d) for label, d in vectors.items() if ctx and label in ctx.pins]
        data = sorted((ctx.data_hashes if ctx else {}).items()) + pinned
        spec_file = Path(display_path(spec.path)).as_posix()
        self.vectors.extend((spec_file, label, ctx.vectors[label][1]) for label in vectors if ctx)
        if outcome.certificate is not None:
            self.certificates.append(outcome.certificate)
        provenance = collect_provenance(
            spec_hash=spec_hash(spec),
            data_hash=_sha256(repr(data)) if data else None,
            seeds={"run": self.options.seed},
            device=self.options.device,
            dtype=self.options.dtype,
            started_at=started,
        )
        return make_finding(
            claim=claim_ref(spec, claim),
            verdict=outcome.verdict,
            method=outcome.method,
            models=models,
            statistics=_statistics(outcome),
            counterexamples=[_counterexample(c) for c in outcome.counterexamples],
            proof=Proof(**outcome.proof) if outcome.proof else None,
            tables=[Table(**t) for t in outcome.tables],
            series=[Series(**s) for s in outcome.series],
            vectors=vectors,
            error=FindingError(message=outcome.error[0], location=str(outcome.error[1]) if outcome.error[1] else None)
            if outcome.error else None,
            message=outcome.message[:1000] or None,
            provenance=provenance,
            duration_s=round(seconds, 3),
        )


def claim_ref(spec: CheckedSpec, claim: CheckedClaim) -> ClaimRef:
    node = claim.claim
    lines = spec.parsed.source.lines[node.span.line - 1 : node.span.end_line]
    return ClaimRef(
        name=claim.name,
        kind=claim.kind,
        file=Path(display_path(spec.path)).as_posix(),
        line=node.span.line,
        column=node.span.column,
        text="\n".join(lines),
        description=claim.description or None,
        tags=list(claim.tags),
        severity=claim.severity,
    )


def spec_hash(spec: CheckedSpec) -> str:
    """sha256 over the text of the spec and of every file it imports."""
    digest = hashlib.sha256()
    for parsed in spec.modules.values():
        digest.update(parsed.source.text.encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _step(run: ClaimRun) -> None:
    """Step one claim; a bug met by one claim ends that claim as an error, so the other
    claims of the run still finish and their findings are written (``MSL_DEBUG=1`` raises)."""
    try:
        run.step()
    except MslError:
        raise
    except Exception as exc:
        if os.environ.get("MSL_DEBUG"):
            raise
        run.fail(f"internal error (a bug in MSL, please report it): {type(exc).__name__}: {exc}", run.claim.claim.span)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _name(key: str) -> str:
    return key if len(key) <= 256 else key[:255] + "…"


def _statistics(outcome: Outcome) -> Statistics | None:
    stats = dict(outcome.statistics)
    if outcome.verdict == "error" and not stats:
        return None
    # Statistics hold finite numbers only ("never" is infinity: the message says it).
    values = {_name(k): float(v) for k, v in stats.pop("values", {}).items() if math.isfinite(float(v))}
    return Statistics(values=values, **stats)


def _counterexample(example: dict[str, Any]) -> Counterexample:
    values: dict[str, Any] = {}
    for key, value in example.get("values", {}).items():
        finite = not isinstance(value, float) or math.isfinite(value)
        values[_name(key)] = value if finite else str(value)
    return Counterexample(
        input=example["input"],
        values=values,
        original=example.get("original"),
        edit=example.get("edit"),
        replayed=bool(example.get("replayed")),
    )
