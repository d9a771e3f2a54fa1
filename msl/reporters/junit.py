"""JUnit XML: one test case per claim, so any CI shows MSL claims as tests.

One ``<testsuite>`` per spec file; each test case has ``classname`` = the spec file and
``name`` = the claim. ``violated``/``refuted`` become ``<failure>``, ``error`` becomes
``<error>``, ``inconclusive`` becomes ``<skipped>`` (a ``<failure>`` under ``strict``),
and a violation accepted by the baseline becomes ``<skipped>`` saying so. The message
attribute holds the evidence in one line, the element's text the whole finding as JSON.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC

from msl.findings import Finding, FindingsDocument, Verdict, fails
from msl.reporters import ReportOptions, reporter
from msl.reporters.describe import clean, shorten, verdict_line

#: JUnit viewers show the message attribute on one line; the full finding is in the body.
MESSAGE_LIMIT = 1000


@reporter("junit", ".xml")
def render_junit(doc: FindingsDocument, options: ReportOptions) -> str:
    """JUnit XML, one test case per claim (for CI test reports)."""
    suites: dict[str, list[Finding]] = {}
    for f in doc.findings:
        suites.setdefault(f.claim.file, []).append(f)
    root = ET.Element("testsuites", name="msl")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for file, findings in suites.items():
        suite = ET.SubElement(root, "testsuite", name=clean(file, keep_newlines=False))
        counts = {"tests": len(findings), "failures": 0, "errors": 0, "skipped": 0}
        for f in findings:
            outcome = _testcase(suite, f, strict=options.strict)
            if outcome:
                counts[outcome] += 1
        time = sum(f.duration_s for f in findings)
        started = min(f.provenance.started_at for f in findings)
        # UTC without an offset: the form strict JUnit schemas (Jenkins) accept.
        suite.set("timestamp", started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        suite.set("time", f"{time:.3f}")
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        total_time += time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, f: Finding, *, strict: bool) -> str | None:
    """Add one test case; return the counter it adds to (failures, errors, skipped) or None."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=clean(f.claim.file, keep_newlines=False),
        name=clean(f.claim.name, keep_newlines=False),
        time=f"{f.duration_s:.3f}",
        file=clean(f.claim.file, keep_newlines=False),
        line=str(f.claim.line),
    )
    props = ET.SubElement(case, "properties")
    for name, value in (("finding_id", f.id), ("verdict", f.verdict.value), ("method", f.method.value)):
        ET.SubElement(props, "property", name=name, value=value)
    message = shorten(clean(verdict_line(f), keep_newlines=False), MESSAGE_LIMIT)
    body = clean(f.model_dump_json(indent=2))
    if f.accepted:
        ET.SubElement(case, "skipped", message=message)
        return "skipped"
    if fails(f, strict=strict):
        ET.SubElement(case, "failure", message=message, type=f.verdict.value).text = body
        return "failures"
    if f.verdict is Verdict.ERROR:
        ET.SubElement(case, "error", message=message, type="error").text = body
        return "errors"
    if f.verdict is Verdict.INCONCLUSIVE:
        ET.SubElement(case, "skipped", message=message)
        return "skipped"
    return None
