"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

One rule per claim (id ``FILE:KIND/NAME``, with the claim's description, text, tags and
severity), and one result per claim that did not pass, located at the claim's line and
column in its ``.msl`` file (a URI relative to ``%SRCROOT%``):

* ``violated``/``refuted``: ``kind: fail``, ``level`` from the claim's severity
  (critical and high, or none declared: ``error``; medium: ``warning``; low: ``note``);
* ``inconclusive`` and ``error``: ``kind: open`` (the tool could not decide), whose level
  SARIF fixes to ``none``; an ``error`` also becomes an error notification of the run's
  invocation, which is then not ``executionSuccessful``;
* a violation accepted by the baseline keeps its result with an external, accepted
  suppression, so viewers hide it without losing it.

Each result carries a claim-level fingerprint (stable while the evidence changes, so an
alert is tracked across runs) and the finding id, verdict and evidence as properties.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from msl import __version__
from msl.baseline import DEFAULT_REASON
from msl.findings import ClaimSeverity, Finding, FindingsDocument, Verdict
from msl.reporters import ReportOptions, reporter
from msl.reporters.describe import verdict_line

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
LEVEL = {
    ClaimSeverity.CRITICAL: "error",
    ClaimSeverity.HIGH: "error",
    None: "error",
    ClaimSeverity.MEDIUM: "warning",
    ClaimSeverity.LOW: "note",
}
REPORTED = frozenset({Verdict.VIOLATED, Verdict.REFUTED, Verdict.INCONCLUSIVE, Verdict.ERROR})


@reporter("sarif", ".sarif")
def render_sarif(doc: FindingsDocument, options: ReportOptions) -> str:
    """SARIF 2.1.0 (for GitHub code scanning): a result per claim that did not pass."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for f in doc.findings:
        rid = rule_id(f)
        if rid not in index:
            index[rid] = len(rules)
            rules.append(_rule(f, rid))
    results = [_result(f, index[rule_id(f)]) for f in doc.findings if f.verdict in REPORTED]
    errors = [f for f in doc.findings if f.verdict is Verdict.ERROR]
    run = {
        "tool": {
            "driver": {
                "name": "msl",
                "fullName": "MSL, the Model Specification Language",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "invocations": [
            {
                "executionSuccessful": not errors,
                "toolExecutionNotifications": [
                    {
                        "level": "error",
                        "message": {"text": f"{f.claim.name}: {f.error.message if f.error else 'error'}"},
                        "locations": [_location(f)],
                        "associatedRule": {"id": rule_id(f), "index": index[rule_id(f)]},
                    }
                    for f in errors
                ],
            }
        ],
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "The directory msl check ran in."}}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    log = {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def rule_id(f: Finding) -> str:
    """``specs/fair.msl:verify/name_swap``: one rule per claim, stable across runs. The
    file is part of it, since two specs may each have a claim of that kind and name, and
    each claim has its own description."""
    return f"{f.claim.file}:{f.claim.kind.value}/{f.claim.name}"


def artifact_uri(file: str) -> tuple[str, str | None]:
    """The SARIF URI of a spec path and its base id: relative paths resolve against
    ``%SRCROOT%`` (what GitHub needs to place the alert); absolute ones become ``file:`` URIs."""
    for flavour in (PurePosixPath, PureWindowsPath):
        path = flavour(file)
        if path.is_absolute():
            return path.as_uri(), None
    return quote(file.replace("\\", "/"), safe="/"), SRCROOT


def _rule(f: Finding, rid: str) -> dict[str, Any]:
    claim = f.claim
    first_line = claim.text.strip().splitlines()[0] if claim.text.strip() else ""
    summary = claim.description or first_line or claim.name
    return {
        "id": rid,
        "name": claim.name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": claim.text or claim.name},
        "help": {"text": f"MSL {claim.kind.value} claim `{claim.name}` in {claim.file}:\n\n{claim.text}"},
        "defaultConfiguration": {"level": LEVEL[claim.severity]},
        "properties": {
            "tags": list(dict.fromkeys(["msl", claim.kind.value, *claim.tags])),
            **({"severity": claim.severity.value} if claim.severity else {}),
        },
    }


def _location(f: Finding) -> dict[str, Any]:
    uri, base = artifact_uri(f.claim.file)
    artifact = {"uri": uri, **({"uriBaseId": base} if base else {})}
    return {
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {"startLine": f.claim.line, "startColumn": f.claim.column},
        },
        "logicalLocations": [{"name": f.claim.name, "kind": "member"}],
    }


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    failed = f.verdict in (Verdict.VIOLATED, Verdict.REFUTED)
    claim_key = hashlib.sha256(f"{f.claim.file}\0{f.claim.kind.value}\0{f.claim.name}".encode()).hexdigest()
    result: dict[str, Any] = {
        "ruleId": rule_id(f),
        "ruleIndex": rule_index,
        "kind": "fail" if failed else "open",
        "level": LEVEL[f.claim.severity] if failed else "none",
        "message": {"text": f"Claim `{f.claim.name}` {verdict_line(f)}"},
        "locations": [_location(f)],
        "partialFingerprints": {"mslClaim/v1": claim_key[:32]},
        "properties": {
            "findingId": f.id,
            "verdict": f.verdict.value,
            "method": f.method.value,
            "accepted": f.accepted,
            "statistics": None if f.statistics is None else f.statistics.model_dump(mode="json"),
            "counterexamples": [cx.model_dump(mode="json") for cx in f.counterexamples],
        },
    }
    if f.accepted:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted",
             "justification": f"{f.accepted_reason or DEFAULT_REASON} (MSL baseline)"}
        ]
    return result
