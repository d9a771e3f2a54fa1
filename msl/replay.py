"""Replay: re-check another lab's findings on the local models instead of trusting them.

A findings file is untrusted input: it is validated and size-limited on loading, and
nothing in it is executed. Its claims are not taken from the file either — each finding
names a spec (a relative ``.msl`` path inside the current directory) and a claim; that
local spec is checked and the claim re-run with the seed the finding records. The shared
counterexamples are replayed first, through the local model, so a reader learns at once
whether the very inputs that failed there fail here. Then the local finding is compared
with the shared one (:mod:`msl.agreement`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from msl.agreement import Comparison, compare_all
from msl.check import check_file
from msl.engines.finite import FiniteRun, Probe
from msl.errors import MslError, SpecErrors
from msl.findings import Finding, FindingsDocument
from msl.ir import CheckedSpec
from msl.run import Runner, RunOptions
from msl.values import EvalError, Record


@dataclass(frozen=True)
class Replayed:
    """The comparisons, and per shared finding how many of its counterexamples fail here."""

    comparisons: list[Comparison]
    counterexamples: dict[str, tuple[int, int]]  # finding id → (reproduced, replayed)
    problems: list[str]


def local_spec(file: str, root: Path) -> Path:
    """The local spec a finding names: a relative .msl path inside ``root``."""
    path = Path(file)
    resolved = (root / path).resolve()
    if path.is_absolute() or path.suffix != ".msl" or (root.resolve() not in resolved.parents):
        raise ValueError(f"{file!r} is not a .msl file inside {root}")
    if not resolved.is_file():
        raise ValueError(f"no local spec {file!r}")
    return resolved


def replay(doc: FindingsDocument, options: RunOptions, root: Path | None = None) -> Replayed:
    root = root or Path.cwd()
    problems: list[str] = []
    by_seed: dict[int, dict[Path, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    specs: dict[Path, CheckedSpec] = {}
    for finding in doc.findings:
        try:
            path = local_spec(finding.claim.file, root)
            if path not in specs:
                specs[path] = check_file(path)
        except (ValueError, SpecErrors) as exc:
            problems.append(f"{finding.claim.file}:{finding.claim.name}: {_reason(exc)}")
            continue
        by_seed[finding.provenance.seeds.get("run", 0)][path].append(finding)
    local: list[Finding] = []
    counterexamples: dict[str, tuple[int, int]] = {}
    for seed, groups in sorted(by_seed.items()):
        runner = Runner(replace(options, seed=seed))
        for path, findings in groups.items():
            spec = specs[path]
            names = {f.claim.name for f in findings}
            claims = [c for c in spec.claims if c.name in names]
            runs = runner.runs_for(spec, claims)
            for finding in findings:
                run = next((r for r in runs if r.claim.name == finding.claim.name), None)
                if isinstance(run, FiniteRun) and finding.counterexamples:
                    counterexamples[finding.id] = replay_counterexamples(run, finding)
            runner.drive(runs)
            started = _now()
            local.extend(runner.finding(spec, run, run.seconds, started) for run in runs)
    return Replayed(compare_all(doc.findings, local), counterexamples, problems)


def replay_counterexamples(run: FiniteRun, finding: Finding) -> tuple[int, int]:
    """How many of a finding's counterexamples violate the claim here too."""
    probe = Probe(run)
    reproduced = tried = 0
    while not run.resolve():
        run.ev.ctx.planner.flush()
    for example in finding.counterexamples:
        item = _item(example.input)
        if item is None or len(run.fors) != 1:
            continue
        tried += 1
        try:
            inst = probe.settle((item,))
        except EvalError:
            continue
        reproduced += inst is not None and inst.status == "violated"
    return reproduced, tried


def _item(value: Any) -> Any:
    """A counterexample's input as the evaluator reads it (only data: text, number, record, vector)."""
    if isinstance(value, (str, float)):
        return value
    if isinstance(value, dict) and "text" in value:
        return Record(tuple((str(k), v) for k, v in value.items()))
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, SpecErrors):
        first = exc.errors[0]
        return f"the local spec has errors ({first})"
    if isinstance(exc, MslError):
        return exc.message
    return str(exc)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
