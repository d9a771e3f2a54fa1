"""Findings: what a checked claim produced, as validated, shareable JSON.

A :class:`Finding` records one claim's verdict with its evidence (statistics,
counterexamples, proof, tables, curves) and provenance (model fingerprints, hashes,
seeds, library versions). It is the sharing contract of the brief: ``msl check --format
json`` writes a :class:`FindingsDocument`, ``msl schema`` prints its JSON Schema, and
another lab loads it with :func:`load_findings`, which treats the file as hostile.

Design decisions, so that readers of a findings file can rely on them:

* **Honesty is enforced by the model.** A finding that claims success must carry its
  evidence (``proved`` a proof, ``holds`` statistics, ``refuted`` a counterexample), an
  ``error`` verdict must carry its error and only it may, and no float anywhere may be
  NaN or infinite (NaN from a model is an ``error``, never a pass).
* **Ids are content hashes**, ``sha256:`` + 64 hex digits (the same form as model
  fingerprints) over the canonical JSON of what decides the result: the claim (name,
  kind, file, text), each model's role and fingerprint, the data hash and seeds, the
  verdict, method and the discrete part of the evidence (counts, texts, the shape of
  tables and series, the solver and its answer, the labels of the steering vectors used,
  error); vectors given with ``--vectors`` are data, and their hashes enter the data hash. **No
  float is part of an id**: a model's outputs move in their last bits with the
  batch they ran in, the BLAS kernel and the CPU, and rounding them to any number of digits
  still flips some of them (measured: 10 of the 56 findings of ``specs/`` changed ids at 6
  significant digits between two batchings of the same queries). So a float counts only as
  "a number here", and a proof's sizes (branches, variables, constraints), which follow from
  the bounds' float arithmetic, are left out too. Durations, timestamps, hostnames, device,
  library versions and the baseline's ``accepted`` flag are left out, so the same claim on
  the same model, data, seed and vectors with the same verdict and discrete evidence has
  the same id on every machine.
* **Exit codes** (:func:`exit_code`): 1 beats 3 beats 0. A violated or refuted claim
  (or, with ``strict``, an inconclusive one) not accepted by the baseline makes the run
  fail with 1 even if another claim hit a model error, because the brief promises 1
  exactly when a claim is violated or refuted; otherwise any ``error`` finding gives 3.
  Usage and spec errors (2) are raised before any claim runs and never reach here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from msl import __version__
from msl.errors import ExitCode, UsageError
from msl.jsonio import MAX_JSON_BYTES, decode_text, parse_json, read_bounded, validation_message
from msl.source import Span

SHA256_PATTERN = r"^sha256:[0-9a-f]{64}$"

#: ``sha256:`` followed by 64 lowercase hex digits: finding ids, fingerprints, hashes.
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Label = Annotated[str, StringConstraints(max_length=1024)]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]


def _utc_representable(moment: datetime) -> datetime:
    """A time whose UTC equivalent exists: ``0001-01-01T00:00:00+01:00`` is in year 0 in
    UTC, which the catalogue (it stores UTC) and the reporters (they compare times) cannot
    hold; such a file is refused when it is read, not when it is used."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None
    return moment


#: A time with a zone, within the range of times in UTC.
Moment = Annotated[AwareDatetime, AfterValidator(_utc_representable)]

#: A measured value at a counterexample: a number, a flag, a token or text, a vector.
MeasureValue = bool | float | str | list[float]
#: A claim's input: a text, a numeric vector (network inputs), or a record of fields.
InputValue = str | float | list[float] | dict[Name, str | float]
#: A cell of an explore table.
Cell = bool | float | str | None


class Verdict(StrEnum):
    """The six verdicts of the brief's honesty contract."""

    PROVED = "proved"
    REFUTED = "refuted"
    HOLDS = "holds"
    VIOLATED = "violated"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Method(StrEnum):
    """How a verdict was reached; every verdict names one."""

    EXHAUSTIVE = "exhaustive"
    STATISTICAL = "statistical"
    PROPERTY_BASED = "property-based"
    SMT = "smt"


class ClaimKind(StrEnum):
    """The four perspectives of model science."""

    VERIFY = "verify"
    EXPLORE = "explore"
    STEER = "steer"
    REFINE = "refine"


class ClaimSeverity(StrEnum):
    """A claim's declared severity, used for CI selection and SARIF levels."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


#: Verdicts that make a run fail (``inconclusive`` only under ``strict``).
FAILING = frozenset({Verdict.VIOLATED, Verdict.REFUTED})
#: Verdicts a baseline may accept: known violations, and inconclusive ones for strict runs.
ACCEPTABLE = frozenset({Verdict.VIOLATED, Verdict.REFUTED, Verdict.INCONCLUSIVE})


class _Model(BaseModel):
    """Frozen, closed (unknown fields are errors) and finite (no NaN or inf anywhere)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ClaimRef(_Model):
    """Which claim a finding is about, and where it is written.

    ``file`` should be the spec's path relative to the project (POSIX separators): it is
    part of the finding id and becomes a relative URI in SARIF.
    """

    name: Name
    kind: ClaimKind
    file: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    line: Annotated[int, Field(ge=1)]
    column: Annotated[int, Field(ge=1)] = 1
    text: Text = Field(description="the claim's source text")
    description: Text | None = None
    tags: list[Name] = []
    severity: ClaimSeverity | None = None


class ModelRef(_Model):
    """A model role bound for the run: its reference and its fingerprint (weights, config,
    tokenizer and adapter version: everything that decides its outputs)."""

    role: Name
    ref: Label = Field(description="registry name, local path, Hugging Face id or GGUF file")
    kind: Name | None = Field(None, description="causal_lm, classifier, encoder or network")
    fingerprint: Sha256 | None = Field(
        None,
        description="sha256 of everything that decides the model's outputs: "
                    "weights, config, tokenizer, adapter version",
    )


class Statistics(_Model):
    """Sampled or exhaustive evidence; every field is optional because claims differ."""

    n: Count | None = None
    violations: Count | None = None
    rate: Probability | None = None
    interval: tuple[float, float] | None = Field(None, description="confidence interval (lo, hi) of the rate")
    confidence: Annotated[float, Field(gt=0, lt=1)] | None = None
    tolerance: Probability | None = None
    seed: int | None = None
    values: dict[Name, float] = Field({}, description="named aggregates: a mean effect, its interval, an accuracy")
    interval_method: dict[Name, Name] = Field(
        {},
        description="how each interval was made, by what it bounds: `rate` (the `interval` field; "
        "clopper-pearson) or an aggregate named in `values` (bootstrap-bca, bootstrap-percentile, constant)",
    )

    @model_serializer(mode="wrap")
    def _without_empty_methods(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``interval_method`` out when no interval was made, so that findings
        without intervals keep the ids (and JSON) they had before the field existed."""
        data = handler(self)
        if not data.get("interval_method"):
            data.pop("interval_method", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.n is not None and self.violations is not None and self.violations > self.n:
            raise ValueError(f"violations ({self.violations}) exceed n ({self.n})")
        if self.interval is not None and self.interval[0] > self.interval[1]:
            raise ValueError("interval lower bound exceeds its upper bound")
        return self


class Counterexample(_Model):
    """An input on which the claim fails, with the measurements that show it."""

    input: InputValue
    values: dict[Name, MeasureValue] = Field({}, description="measurements at the input")
    original: InputValue | None = Field(None, description="the input before shrinking")
    edit: Text | None = Field(None, description="the perturbation that made it, e.g. swap 'John' -> 'Mary'")
    replayed: bool = Field(False, description="re-checked through the real model")


class Proof(_Model):
    """What the solver did for a ``proved`` (or timed-out) symbolic claim."""

    solver: Name
    result: Name = Field(description="the solver's answer, e.g. unsat")
    variables: Count | None = None
    constraints: Count | None = None
    branches: Count | None = None
    time_s: NonNegative | None = None
    certificate: Sha256 | None = Field(
        None, description="sha256 of the proof certificate (msl/certify.py), stored gzip-compressed as HEX.json.gz in "
        "the folder STEM.certificates/ beside the findings file STEM.json; `msl certify` checks it")


class Table(_Model):
    """An explore result (probe accuracy per layer, logit-lens ranks) for reports."""

    title: Label
    columns: list[Label]
    rows: list[list[Cell]]

    @model_validator(mode="after")
    def _rectangular(self) -> Self:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells for {len(self.columns)} columns")
        return self


class Series(_Model):
    """A curve to plot: a dose-response, accuracy by layer."""

    name: Label
    x_label: Label
    y_label: Label
    points: list[tuple[float, float]]
    reference: float | None = Field(None, description="a horizontal line to draw, e.g. the expected threshold")


class Provenance(_Model):
    """Where and how a finding was produced; mostly left out of the id (see the module doc)."""

    msl_version: Name
    spec_hash: Sha256 | None = None
    data_hash: Sha256 | None = None
    seeds: dict[Name, int] = {}
    libraries: dict[Name, Name] = {}
    device: Name | None = None
    dtype: Name | None = None
    started_at: Moment
    hostname: Name | None = None


class FindingError(_Model):
    """Why a claim could not be evaluated (verdict ``error``)."""

    message: Text
    location: Label | None = Field(None, description="file:line:col of the failing construct")


def _required(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {field: schema}, "required": [field]}


def _when(verdicts: Iterable[Verdict], then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"if": {"properties": {"verdict": {"enum": [v.value for v in verdicts]}}}, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


#: The honesty contract of :meth:`Finding._evidence`, added to the published JSON Schema
#: so that tools reading findings without MSL can rely on it too.
_EVIDENCE_SCHEMA = [
    _when([Verdict.PROVED], _required("proof", {"$ref": "#/$defs/Proof"})),
    _when([Verdict.REFUTED], _required("counterexamples", {"minItems": 1})),
    _when([Verdict.HOLDS], _required("statistics", {"$ref": "#/$defs/Statistics"})),
    _when(
        [Verdict.VIOLATED],
        {
            "anyOf": [
                _required("statistics", {"$ref": "#/$defs/Statistics"}),
                _required("counterexamples", {"minItems": 1}),
            ]
        },
    ),
    _when(
        [Verdict.ERROR],
        _required("error", {"$ref": "#/$defs/FindingError"}),
        {"properties": {"error": {"type": "null"}}},
    ),
    {
        "if": _required("accepted", {"const": True}),
        "then": {"properties": {"verdict": {"enum": [v.value for v in Verdict if v in ACCEPTABLE]}}},
    },
]


class Finding(_Model):
    """One claim's verdict, evidence and provenance."""

    id: Sha256
    claim: ClaimRef
    verdict: Verdict
    method: Method
    models: list[ModelRef] = []
    statistics: Statistics | None = None
    counterexamples: list[Counterexample] = []
    proof: Proof | None = None
    tables: list[Table] = []
    series: list[Series] = []
    vectors: dict[Label, Sha256] = Field(
        {},
        description="steering vectors the claim used, by label (the declaration or claim@line:col that made "
        "them) → sha256 of their little-endian float32 bytes; `msl check -o FILE` saves them beside FILE",
    )
    error: FindingError | None = None
    message: Text | None = Field(None, description="a one-line explanation of the verdict, for people")
    provenance: Provenance
    duration_s: NonNegative
    accepted: bool = Field(False, description="a known violation accepted by the baseline")
    accepted_reason: Text | None = Field(None, description="why the baseline accepts it (`msl baseline --reason`)")

    @model_validator(mode="after")
    def _evidence(self) -> Self:
        """The honesty contract: no verdict without the evidence the brief requires."""
        v = self.verdict
        if (v is Verdict.ERROR) != (self.error is not None):
            raise ValueError("an error verdict carries an error, and only an error verdict does")
        if v is Verdict.PROVED and self.proof is None:
            raise ValueError("a proved finding must carry its proof")
        if v is Verdict.REFUTED and not self.counterexamples:
            raise ValueError("a refuted finding must carry a counterexample")
        if v is Verdict.HOLDS and self.statistics is None:
            raise ValueError("a holds finding must carry its statistics")
        if v is Verdict.VIOLATED and self.statistics is None and not self.counterexamples:
            raise ValueError("a violated finding must carry statistics or counterexamples")
        if self.accepted_reason is not None and not self.accepted:
            raise ValueError("only an accepted finding has a reason for being accepted")
        if self.accepted and v not in ACCEPTABLE:
            raise ValueError(f"only violated, refuted or inconclusive findings can be accepted, not {v.value}")
        return self

    @property
    def short_id(self) -> str:
        return short_id(self.id)


class Summary(_Model):
    """Counts by verdict, so a reader need not tally the findings."""

    total: Count
    proved: Count
    refuted: Count
    holds: Count
    violated: Count
    inconclusive: Count
    error: Count
    accepted: Count

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> Summary:
        findings = list(findings)
        counts = Counter(f.verdict.value for f in findings)
        return cls(
            total=len(findings),
            accepted=sum(f.accepted for f in findings),
            **{v.value: counts.get(v.value, 0) for v in Verdict},
        )


class FindingsDocument(_Model):
    """What ``msl check --format json`` writes and ``msl replay`` reads.

    Build one with :meth:`of`, which computes the summary; a document read from a file
    must carry a summary that matches its findings.
    """

    schema_version: Literal[1] = 1
    msl_version: Name
    findings: list[Finding]
    summary: Summary

    @model_validator(mode="after")
    def _summary_matches(self) -> Self:
        if self.summary != Summary.of(self.findings):
            raise ValueError("summary does not match the findings")
        return self

    @classmethod
    def of(cls, findings: Iterable[Finding], msl_version: str = __version__) -> FindingsDocument:
        """A document over ``findings`` with its summary computed."""
        findings = list(findings)
        return cls(msl_version=msl_version, findings=findings, summary=Summary.of(findings))


# ── Content-addressed ids ────────────────────────────────────────────────────────────────


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, shortest round-trip floats: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(data: bytes) -> str:
    """``sha256:`` + hex digest, the form of every hash in a finding."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def finding_id(finding: Finding) -> str:
    """The content hash of ``finding`` (its own ``id`` field is ignored; see the module doc)."""
    f = finding.model_dump(mode="json")
    identity = {
        "claim": {k: f["claim"][k] for k in ("name", "kind", "file", "text")},
        "models": sorted(([m["role"], m["fingerprint"]] for m in f["models"]), key=lambda m: (m[0], m[1] or "")),
        "data_hash": f["provenance"]["data_hash"],
        "seeds": f["provenance"]["seeds"],
        "verdict": f["verdict"],
        "method": f["method"],
        "statistics": f["statistics"],
        "counterexamples": f["counterexamples"],
        # sizes, time and certificate follow the search's float arithmetic, not the claim
        "proof": None if f["proof"] is None else {k: f["proof"][k] for k in ("solver", "result")},
        "tables": f["tables"],
        "series": f["series"],
        "vectors": sorted(f["vectors"]),  # labels: a computed vector's bytes vary as model outputs do
        "error": f["error"],
    }
    return sha256_of(canonical_json(_discrete(identity)).encode("utf-8"))


#: What a float becomes in the text an id is computed over.
FLOAT_MARK = "<float>"


def _discrete(value: Any) -> Any:
    """Every float replaced by :data:`FLOAT_MARK`, inside lists and dicts (see the module
    doc: float32 results differ in their last bits between batchings and machines, and no
    rounding keeps all of them on one side of a digit). Integers, texts, booleans and the
    shapes of lists and dicts stay."""
    if isinstance(value, float):
        return FLOAT_MARK
    if isinstance(value, list):
        return [_discrete(v) for v in value]
    if isinstance(value, dict):
        return {k: _discrete(v) for k, v in value.items()}
    return value


def short_id(full_id: str) -> str:
    """The first 12 hex digits of an id, for tables and messages (``msl catalog show`` takes it)."""
    return full_id.removeprefix("sha256:")[:12]


_PLACEHOLDER_ID = "sha256:" + "0" * 64


def make_finding(**fields: Any) -> Finding:
    """Build and validate a :class:`Finding` from its fields, filling ``id`` with its content hash.

    Takes the same keyword arguments as :class:`Finding` except ``id``; raises
    ``pydantic.ValidationError`` when the fields break the model (a programming error in
    an engine, not a user error).
    """
    if "id" in fields:
        raise TypeError("make_finding computes the id; do not pass one")
    draft = Finding(id=_PLACEHOLDER_ID, **fields)
    return draft.model_copy(update={"id": finding_id(draft)})


#: Libraries whose versions are recorded in provenance when installed.
RECORDED_LIBRARIES = ("torch", "transformers", "numpy", "scipy", "z3-solver", "onnxruntime", "hypothesis", "pydantic")


def collect_provenance(
    *,
    spec_hash: str | None = None,
    data_hash: str | None = None,
    seeds: Mapping[str, int] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    started_at: datetime | None = None,
    include_hostname: bool = False,
) -> Provenance:
    """Provenance for a run on this machine: MSL and library versions, start time (UTC).

    The hostname is left out unless asked for, because findings travel to other labs.
    """
    libraries = {}
    for name in RECORDED_LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return Provenance(
        msl_version=__version__,
        spec_hash=spec_hash,
        data_hash=data_hash,
        seeds=dict(seeds or {}),
        libraries=libraries,
        device=device,
        dtype=dtype,
        started_at=started_at or datetime.now(UTC),
        hostname=socket.gethostname() if include_hostname else None,
    )


# ── Schema, loading and exit codes ───────────────────────────────────────────────────────


def findings_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a findings document, as ``msl schema`` prints it."""
    schema = FindingsDocument.model_json_schema()
    schema["$defs"]["Finding"]["allOf"] = copy.deepcopy(_EVIDENCE_SCHEMA)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MSL findings",
        "description": "Findings of `msl check`: each claim's verdict, evidence and provenance.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def parse_findings(data: bytes, name: str = "<findings>", *, verify_ids: bool = True) -> FindingsDocument:
    """Validate findings from bytes; see :func:`load_findings`."""
    text = decode_text(data, name, "findings file")
    if not isinstance(parse_json(text, name, "findings file"), dict):
        raise UsageError("findings file must hold a JSON object (a findings document)", Span.point(name))
    try:
        doc = FindingsDocument.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise UsageError(f"invalid findings file: {validation_message(exc)}", Span.point(name)) from None
    if verify_ids:
        for i, finding in enumerate(doc.findings):
            if finding_id(finding) != finding.id:
                raise UsageError(
                    f"findings[{i}] ({finding.short_id}): the id does not match the finding's content",
                    Span.point(name),
                    hint="the finding was edited after it was written, or by another MSL version",
                )
    return doc


def load_findings(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, verify_ids: bool = True) -> FindingsDocument:
    """Load an untrusted findings file: size-limited, strict JSON, bounded, validated.

    Every problem (unreadable, too large, not UTF-8, not strict JSON, too deep, wrong
    shape, an id that does not match its content) is a one-line
    :class:`~msl.errors.UsageError` (exit code 2).
    """
    path = Path(path)
    return parse_findings(read_bounded(path, "findings file", max_bytes), str(path), verify_ids=verify_ids)


def fails(finding: Finding, *, strict: bool = False) -> bool:
    """Does this finding make the run fail (exit 1)? Accepted findings never do."""
    if finding.accepted:
        return False
    return finding.verdict in FAILING or (strict and finding.verdict is Verdict.INCONCLUSIVE)


def exit_code(findings: FindingsDocument | Iterable[Finding], *, strict: bool = False) -> ExitCode:
    """The exit code of ``msl check`` for these results: 1 beats 3 beats 0 (see the module doc)."""
    items = findings.findings if isinstance(findings, FindingsDocument) else list(findings)
    if any(fails(f, strict=strict) for f in items):
        return ExitCode.FAILED
    if any(f.verdict is Verdict.ERROR for f in items):
        return ExitCode.RUNTIME
    return ExitCode.OK
