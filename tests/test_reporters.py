"""Reporters: the registry, and each format checked against what it promises."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import findings_samples as samples
import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from msl.baseline import apply_baseline, update_baseline
from msl.cli import cli
from msl.errors import UsageError
from msl.findings import Finding, FindingsDocument, Verdict, parse_findings
from msl.reporters import REPORTERS, ReportOptions, description, formats, render_report, reporter, write_report
from msl.reporters.html import nice_ticks, svg_plot
from msl.reporters.sarif import artifact_uri

SARIF_SCHEMA = Path("/work/shared/schemas/sarif-schema-2.1.0.json")
EVIL = "<script>alert('x')</script>"


def accepted_document() -> FindingsDocument:
    doc = samples.sample_document()
    return apply_baseline(doc, update_baseline(doc))


# ── Registry ───────────────────────────────────────────────────────────────────────────


def test_every_format_is_registered_and_unknown_ones_are_usage_errors() -> None:
    assert {"text", "json", "junit", "sarif", "html"} <= set(formats())
    with pytest.raises(UsageError, match="unknown report format"):
        render_report(samples.sample_document(), "pdf")


def test_adding_a_format_is_one_decorated_function() -> None:
    @reporter("count", ".txt")
    def render_count(doc: FindingsDocument, options: ReportOptions) -> str:
        """How many findings."""
        return str(len(doc.findings))

    try:
        assert render_report(samples.sample_document(), "count") == "7"
        assert description("count") == "How many findings." and REPORTERS.entry("count").meta["suffix"] == ".txt"
        with pytest.raises(ValueError):
            reporter("count", ".txt")(render_count)
    finally:
        REPORTERS.remove("count")


def test_write_report_to_a_file_and_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "findings.json"
    write_report(samples.sample_document(), "json", out)
    assert parse_findings(out.read_bytes()) == samples.sample_document()
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
    write_report(samples.sample_document(), "junit", "-")
    assert capsys.readouterr().out.startswith("<?xml")
    write_report(samples.sample_document(), "text", stream=sys.stderr)
    captured = capsys.readouterr()
    assert captured.out == "" and "name_swap_invariance" in captured.err and "\x1b" not in captured.err


def test_write_report_to_an_unwritable_place_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot write"):
        write_report(samples.sample_document(), "json", blocker / "out.json")


# ── Text ───────────────────────────────────────────────────────────────────────────────


def test_text_report_lists_every_claim_and_details_the_problems() -> None:
    out = render_report(accepted_document(), "text")
    assert "\x1b" not in out  # no escape codes without a terminal
    for f in samples.all_findings():
        assert f.claim.name in out
    assert "12/200 violations" in out
    assert "'Mary is a nurse' from 'John is a nurse'" in out
    assert "(accepted)" in out
    assert "model returned NaN logits" in out
    assert out.rstrip().endswith("— ERRORS")  # accepted failures leave the error


def test_text_report_colours_only_when_asked() -> None:
    coloured = render_report(samples.sample_document(), "text", ReportOptions(color=True))
    assert "\x1b[" in coloured
    assert "FAILED" in coloured


def test_text_report_neutralises_markup_and_control_sequences() -> None:
    hostile = samples.violated(
        claim=samples.claim("[bold red]x[/] \x1b]0;pwned\x07 \u202eevil", 4),
        counterexamples=[{"input": "\x1b[2J clear screen", "values": {"v": "[link=http://x]y[/link]"}}],
    )
    out = render_report(FindingsDocument.of([hostile]), "text", ReportOptions(color=True))
    assert "\x1b]" not in out and "\x07" not in out and "\x1b[2J" not in out and "\u202e" not in out
    assert "[bold red]x[/]" in out
    assert "\\x1b" in out and "\\u202e" in out


# ── JSON ───────────────────────────────────────────────────────────────────────────────


def test_json_report_is_the_document() -> None:
    doc = accepted_document()
    assert parse_findings(render_report(doc, "json").encode()) == doc


# ── JUnit ──────────────────────────────────────────────────────────────────────────────


def _junit(doc: FindingsDocument, strict: bool = False) -> ET.Element:
    return ET.fromstring(render_report(doc, "junit", ReportOptions(strict=strict)))


def _outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def test_junit_has_one_testcase_per_claim_with_the_right_outcome() -> None:
    doc = samples.sample_document()
    root = _junit(doc)
    cases = root.findall("./testsuite/testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == sorted(
        (f.claim.file, f.claim.name) for f in doc.findings
    )
    expected = {
        Verdict.PROVED: "passed",
        Verdict.HOLDS: "passed",
        Verdict.VIOLATED: "failure",
        Verdict.REFUTED: "failure",
        Verdict.INCONCLUSIVE: "skipped",
        Verdict.ERROR: "error",
    }
    by_name = {c.get("name"): c for c in cases}
    for f in doc.findings:
        assert _outcome(by_name[f.claim.name]) == expected[f.verdict], f.claim.name
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("7", "2", "1", "1")
    assert {s.get("name") for s in root.findall("testsuite")} == {"specs/fairness.msl", "specs/acas.msl"}
    assert {s.get("timestamp") for s in root.findall("testsuite")} == {"2025-03-01T12:00:00", "2025-03-02T12:00:00"}


def test_junit_failure_carries_the_finding() -> None:
    root = _junit(samples.sample_document())
    case = next(c for c in root.iter("testcase") if c.get("name") == "name_swap_invariance")
    failure = case.find("failure")
    assert failure is not None
    assert "12/200 violations" in failure.get("message", "")
    body = json.loads(failure.text or "")
    assert body["id"] == samples.violated().id
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["finding_id"] == samples.violated().id


def test_junit_strict_fails_inconclusive_and_baseline_skips_accepted() -> None:
    strict = _junit(samples.sample_document(), strict=True)
    case = next(c for c in strict.iter("testcase") if c.get("name") == "negation_lowers_sentiment")
    assert _outcome(case) == "failure"
    accepted = _junit(accepted_document())
    outcomes = {c.get("name"): _outcome(c) for c in accepted.iter("testcase")}
    assert outcomes["name_swap_invariance"] == outcomes["clear_of_conflict"] == "skipped"
    assert accepted.get("failures") == "0"


def test_junit_stays_well_formed_with_hostile_names() -> None:
    hostile = samples.violated(claim=samples.claim('a"<&>\x00\x1b]]>', 2, file='x"&<.msl'))
    root = _junit(FindingsDocument.of([hostile]))
    case = root.find("./testsuite/testcase")
    assert case is not None and case.get("name") == 'a"<&>\\x00\\x1b]]>'


# ── SARIF ──────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft7Validator:
    if not SARIF_SCHEMA.exists():
        pytest.skip(f"the shared SARIF schema is not at {SARIF_SCHEMA}")
    return jsonschema.Draft7Validator(json.loads(SARIF_SCHEMA.read_text()))


def _sarif(doc: FindingsDocument) -> dict[str, Any]:
    return json.loads(render_report(doc, "sarif"))


def test_sarif_validates_and_places_results_at_the_claims(sarif_validator: jsonschema.Draft7Validator) -> None:
    doc = accepted_document()
    log = _sarif(doc)
    sarif_validator.validate(log)
    results = log["runs"][0]["results"]
    reported = [f for f in doc.findings if f.verdict not in (Verdict.PROVED, Verdict.HOLDS)]
    assert len(results) == len(reported) == 4
    for result, f in zip(results, reported, strict=True):
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"] == {"uri": f.claim.file, "uriBaseId": "%SRCROOT%"}
        assert location["region"]["startLine"] == f.claim.line
        assert result["properties"]["findingId"] == f.id
        rule = log["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]
        assert rule["id"] == result["ruleId"] == f"{f.claim.file}:{f.claim.kind.value}/{f.claim.name}"


def test_sarif_levels_kinds_and_suppressions() -> None:
    results = {r["ruleId"].split(":", 1)[1]: r for r in _sarif(accepted_document())["runs"][0]["results"]}
    violated = results["verify/name_swap_invariance"]  # severity high
    assert (violated["kind"], violated["level"]) == ("fail", "error")
    assert violated["suppressions"][0]["kind"] == "external"
    inconclusive = results["verify/negation_lowers_sentiment"]
    assert (inconclusive["kind"], inconclusive["level"]) == ("open", "none")
    assert "suppressions" not in inconclusive
    medium = samples.violated(claim=samples.claim("m", 2, severity="medium"))
    low = samples.violated(claim=samples.claim("l", 3, severity="low"))
    levels = {
        r["ruleId"].split(":", 1)[1]: r["level"]
        for r in _sarif(FindingsDocument.of([medium, low]))["runs"][0]["results"]
    }
    assert levels == {"verify/m": "warning", "verify/l": "note"}


def test_sarif_errors_become_notifications() -> None:
    invocation = _sarif(samples.sample_document())["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert "NaN logits" in note["message"]["text"]
    clean_run = _sarif(FindingsDocument.of([samples.holds()]))["runs"][0]
    assert clean_run["invocations"][0]["executionSuccessful"] is True and clean_run["results"] == []


def test_sarif_with_odd_paths_and_tags_validates(sarif_validator: jsonschema.Draft7Validator) -> None:
    findings = [
        samples.violated(claim=samples.claim("a", 1, file="/abs/path with space/x.msl", tags=["msl", "verify", "msl"])),
        samples.violated(claim=samples.claim("b", 2, file="C:\\specs\\y.msl")),
        samples.violated(claim=samples.claim("c", 3, file="specs/ü#?.msl")),
    ]
    log = _sarif(FindingsDocument.of(findings))
    sarif_validator.validate(log)
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]]
    assert uris == ["file:///abs/path%20with%20space/x.msl", "file:///C:/specs/y.msl", "specs/%C3%BC%23%3F.msl"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("specs/a.msl", ("specs/a.msl", "%SRCROOT%")),
        ("specs\\win.msl", ("specs/win.msl", "%SRCROOT%")),
        ("/x/a.msl", ("file:///x/a.msl", None)),
    ],
)
def test_artifact_uri(path: str, expected: tuple[str, str | None]) -> None:
    assert artifact_uri(path) == expected


# ── HTML ───────────────────────────────────────────────────────────────────────────────


def _evil_finding() -> Finding:
    return samples.violated(
        claim=samples.claim(EVIL, 3, description=EVIL, tags=[EVIL]) | {"text": f"verify x {{ {EVIL} }}"},
        counterexamples=[{"input": EVIL, "original": {EVIL: EVIL}, "edit": EVIL, "values": {EVIL: EVIL}}],
        tables=[{"title": EVIL, "columns": [EVIL], "rows": [[EVIL]]}],
        series=[{"name": EVIL, "x_label": EVIL, "y_label": EVIL, "points": [(0, 1), (1, 2)]}],
        message=EVIL,
        models=[{"role": "lm", "ref": EVIL, "kind": "causal_lm", "fingerprint": None}],
    )


def test_html_escapes_everything_from_a_finding() -> None:
    page = render_report(FindingsDocument.of([_evil_finding()]), "html")
    assert page.lower().count("<script") == 1  # the report's own script, and no other
    assert "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;") >= 10


def test_html_is_self_contained() -> None:
    page = render_report(accepted_document(), "html")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None and "default-src &#39;none&#39;" in csp.group(1)
    assert page.lower().count("<script") == 1  # inline, allowed by its hash (tests/test_html_report.py)
    for forbidden in ("<link", "src=", "@import", "url("):
        assert forbidden not in page.lower().replace("script-src", ""), forbidden
    external = re.findall(r"https?://[^\"' ]+", page)
    assert set(external) <= {"http://www.w3.org/2000/svg"}


def test_html_shows_statistics_counterexamples_tables_and_plots() -> None:
    page = render_report(accepted_document(), "html")
    for f in samples.all_findings():
        assert f.claim.name in page
    assert "Mary is a nurse" in page and "swap &#39;John&#39; → &#39;Mary&#39;" in page
    assert "probe accuracy" in page  # the explore table
    assert page.count("<svg") == 1 and "<polyline" in page
    assert "3.10% – 10.30%" in page  # the rate interval
    assert "z3: unsat" in page
    assert page.count('class="badge accepted"') >= 2


def test_svg_plot_keeps_points_inside_the_plot_area() -> None:
    from msl.findings import Series

    series = [
        Series(
            name="dose", x_label="scale", y_label="logit diff", points=[(0, 0.1), (2, 1.4), (1, 0.7)], reference=1.0
        ),
        Series(name="control KL", x_label="scale", y_label="logit diff", points=[(0, 0.0), (2, 0.2)]),
    ]
    svg = svg_plot(series, width=400, height=300)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    circles = [c for c in root.findall(f"{ns}circle") if c.get("class") == "point"]
    assert len(circles) == 5
    for c in circles:
        assert 0 < float(c.get("cx", "-1")) < 400 and 0 < float(c.get("cy", "-1")) < 300
    # Points of a curve are drawn in order of x, whatever order they came in.
    first = root.find(f"{ns}polyline")
    assert first is not None
    xs = [float(p.split(",")[0]) for p in first.get("points", "").split()]
    assert xs == sorted(xs)


def test_svg_plot_of_a_single_point_and_a_flat_line() -> None:
    from msl.findings import Series

    for points in ([(3.0, 5.0)], [(0.0, 2.0), (1.0, 2.0)]):
        svg = svg_plot([Series(name="s", x_label="x", y_label="y", points=points)])
        ET.fromstring(svg)
        assert "nan" not in svg.lower() and "inf" not in svg.lower()


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-1e9, 1e9, allow_nan=False),
    st.floats(1e-8, 1e9, allow_nan=False),
)
def test_nice_ticks_are_few_ordered_and_in_range(lo: float, relative: float) -> None:
    """Axis ranges reach nice_ticks padded by _span: never narrower than 1e-9 of their magnitude."""
    width = max(relative * max(abs(lo), 1.0), 1e-12)
    hi = lo + width
    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 11
    assert ticks == sorted(ticks)
    step = width * 1e-6
    assert all(lo - step <= t <= hi + step for t in ticks)


# ── msl report ─────────────────────────────────────────────────────────────────────────


def test_msl_report_converts_a_findings_file(tmp_path: Path) -> None:
    findings = tmp_path / "findings.json"
    findings.write_text(samples.sample_document().model_dump_json())
    out = tmp_path / "msl.sarif"
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(findings), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["version"] == "2.1.0"
    result = runner.invoke(cli, ["report", str(findings)])
    assert result.exit_code == 0 and "name_swap_invariance" in result.output
