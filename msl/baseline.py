"""Baselines: known violations a project has accepted, recorded by finding id.

A team adopting MSL on an existing model usually starts with some claims already
violated. A baseline lists those findings' ids (with the claim name, file and a reason,
for people); a finding whose id is listed is marked ``accepted`` and does not fail the
run. Because ids are content hashes, the acceptance is for *that* evidence: if the
violation changes (new model weights, different counterexamples), the id changes and the
run fails again until someone looks at it. Error findings are never accepted: an error
says nothing about the model.

The file is JSON::

    {"msl_baseline": 1,
     "accepted": [{"id": "sha256:…", "claim": "name_swap", "file": "specs/fair.msl",
                   "verdict": "violated", "reason": "known; tracked in #12"}]}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from msl.defaults import DEFAULT_BASELINE, DEFAULT_REASON  # noqa: F401  (defined there for a fast `msl --help`)
from msl.errors import UsageError
from msl.findings import ACCEPTABLE, Finding, FindingsDocument, Name, Sha256, Text, Verdict
from msl.jsonio import MAX_JSON_BYTES, decode_text, parse_json, read_bounded, validation_message, write_text_atomic
from msl.source import Span


class BaselineEntry(BaseModel):
    """One accepted finding; only ``id`` decides, the rest is for people reading the file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Sha256
    claim: Name
    file: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    verdict: Verdict
    reason: Text = DEFAULT_REASON


class Baseline(BaseModel):
    """The accepted findings of a project."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    msl_baseline: Literal[1] = 1
    accepted: list[BaselineEntry] = []

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(e.id for e in self.accepted)


def load_baseline(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES) -> Baseline:
    """Read a baseline file with the same care as a findings file (it may come from a PR)."""
    path = Path(path)
    name = str(path)
    data = read_bounded(path, "baseline file", max_bytes)
    text = decode_text(data, name, "baseline file")
    if not isinstance(parse_json(text, name, "baseline file"), dict):
        raise UsageError("baseline file must hold a JSON object", Span.point(name))
    try:
        return Baseline.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise UsageError(f"invalid baseline file: {validation_message(exc)}", Span.point(name)) from None


def apply_baseline(doc: FindingsDocument, baseline: Baseline) -> FindingsDocument:
    """Mark the findings listed in ``baseline`` as accepted (only violated, refuted and
    inconclusive ones can be); the summary is recomputed."""
    reasons = {e.id: e.reason for e in baseline.accepted}
    marked = [
        f.model_copy(update={"accepted": True, "accepted_reason": reasons[f.id]})
        if f.id in reasons and f.verdict in ACCEPTABLE else f
        for f in doc.findings
    ]
    return FindingsDocument.of(marked, msl_version=doc.msl_version)


def update_baseline(
    doc: FindingsDocument,
    baseline: Baseline | None = None,
    *,
    reason: str = DEFAULT_REASON,
    strict: bool = False,
    prune: bool = False,
) -> Baseline:
    """The baseline that accepts every currently failing finding of ``doc``.

    Violated and refuted findings are added (inconclusive ones too when ``strict``), with
    ``reason``; entries already in ``baseline`` keep their own reason. With ``prune``,
    entries whose id does not occur in ``doc`` are dropped (only do that after a run
    over all specs, or entries for unselected claims are lost).
    """
    wanted = {Verdict.VIOLATED, Verdict.REFUTED} | ({Verdict.INCONCLUSIVE} if strict else set())
    old = {e.id: e for e in (baseline.accepted if baseline else [])}
    seen = {f.id for f in doc.findings}
    entries = [e for e in old.values() if not prune or e.id in seen]
    entries += [_entry(f, reason) for f in _unique(doc.findings) if f.verdict in wanted and f.id not in old]
    return Baseline(accepted=sorted(entries, key=lambda e: (e.file, e.claim, e.id)))


def write_baseline(baseline: Baseline, path: str | Path) -> None:
    """Write ``baseline`` atomically (a crash never leaves half a file)."""
    write_text_atomic(Path(path), baseline.model_dump_json(indent=2) + "\n")


def _entry(f: Finding, reason: str) -> BaselineEntry:
    return BaselineEntry(id=f.id, claim=f.claim.name, file=f.claim.file, verdict=f.verdict, reason=reason)


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    return list({f.id: f for f in findings}.values())
