"""A self-contained HTML report that works as a viewer: summary, filters, every finding's
evidence, tables and plots.

One file with no external CSS, JavaScript, fonts or images, so it can be attached to a
CI run or mailed to another lab. The page is a Jinja2 template
(``templates/report.html.j2``) with autoescaping on; findings are untrusted text (they
come from other labs), so every string also goes through :func:`clean` (non-printables
made visible) on its way into the page — a template cannot forget either step. A small
inline script filters the findings by verdict, kind, tag and file, and by a search box;
the Content-Security-Policy allows exactly that script (by its hash) and nothing else,
so markup smuggled into a finding could not run even if escaping failed. Without the
script every finding is shown.

Plots (dose–response curves with their intervals, probe accuracy and logit-lens ranks by
layer) are inline SVG laid out by :mod:`msl.reporters.html_plot`. The same findings give
the same bytes: no timestamps, random ids or set orders enter the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from msl.findings import (
    ClaimKind,
    Counterexample,
    Finding,
    FindingsDocument,
    InputValue,
    MeasureValue,
    Statistics,
    Table,
    Verdict,
    fails,
)
from msl.reporters import ReportOptions, reporter
from msl.reporters.describe import (
    clean,
    describe_proof,
    describe_value,
    key_statistic,
    location,
    num,
    pct,
)
from msl.reporters.html_plot import Plot, layout, nice_ticks, plots

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["nice_ticks", "render_html", "svg_plot"]


def claims(n: int) -> str:
    """``1 claim``, ``2 claims``."""
    return f"{n} claim{'' if n == 1 else 's'}"


def _finalize(value: Any) -> Any:
    """Every ``{{ … }}`` of the templates: untrusted text made printable (the template
    engine then escapes it); markup this module built (highlighted spec text, the
    script) passes as it is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return clean(value)


@cache
def _environment() -> Environment:
    """The templates' environment (Jinja2 is imported only when a page is rendered:
    every other report format and command starts without it)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("msl.reporters", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _asset(name: str) -> str:
    """A file of ``templates/`` as text (the page's CSS and script, inlined)."""
    env = _environment()
    assert env.loader is not None
    return env.loader.get_source(env, name)[0]


@cache
def _style() -> str:
    """The page's CSS, with Pygments' colours for the highlighted spec text."""
    from pygments.formatters import HtmlFormatter

    return _asset("report.css") + "\n".join(HtmlFormatter().get_token_style_defs("pre.msl")) + "\n"


def content_security_policy(script: str) -> str:
    """Nothing from outside; inline styles and ``data:`` images; only ``script`` runs."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"


# ── The view of a finding ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class CounterexampleRow:
    cells: tuple[str, ...]
    values: tuple[tuple[str, str], ...]
    replayed: str


@dataclass(frozen=True, slots=True)
class Counterexamples:
    title: str
    columns: tuple[str, ...]
    rows: tuple[CounterexampleRow, ...]


@dataclass(frozen=True, slots=True)
class TableView:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class FindingView:
    """What the template shows of one finding, every text still raw (the template escapes)."""

    anchor: str
    name: str
    verdict: str
    accepted: bool
    status: str
    open: bool
    kind: str
    method: str
    file: str
    location: str
    meta: str
    tags_json: str
    search: str
    key_statistic: str
    duration: str
    description: str | None
    headline: str
    spec: Markup
    error: str | None
    statistics: tuple[tuple[str, str], ...]
    proof: str | None
    counterexamples: Counterexamples | None
    tables: tuple[TableView, ...]
    plots: tuple[Plot, ...]
    plots_title: str
    provenance: tuple[tuple[str, str], ...]


def _view(i: int, f: Finding, *, strict: bool) -> FindingView:
    claim = f.claim
    if fails(f, strict=strict):
        status = "fail"
    elif f.verdict in (Verdict.PROVED, Verdict.HOLDS):
        status = "pass"
    else:
        status = "open"
    meta = [location(f), claim.kind.value, f.method.value]
    if claim.severity:
        meta.append(f"severity {claim.severity.value}")
    if claim.tags:
        meta.append("tags " + ", ".join(claim.tags))
    # The verdict and the finding's own explanation; the evidence has its sections below
    # (statistics, proof, counterexamples, error), each said once.
    message = f.message if f.message and (f.error is None or f.message != f.error.message) else None
    accepted = " (accepted by the baseline)" if f.accepted else ""
    headline = f"{f.verdict.value} by {f.method.value}{accepted}" + (f": {message}" if message else "")
    error = None if f.error is None else f.error.message + (f" (at {f.error.location})" if f.error.location else "")
    searchable = [claim.name, claim.file, claim.kind.value, f.verdict.value, f.method.value, *claim.tags,
                  claim.description or "", headline, key_statistic(f), error or "", claim.text]
    shown_plots = plots(f.series, f.tables)
    return FindingView(
        anchor=f"finding-{i}",
        name=claim.name,
        verdict=f.verdict.value,
        accepted=f.accepted,
        status=status,
        open=status == "fail" or f.verdict is Verdict.ERROR,
        kind=claim.kind.value,
        method=f.method.value,
        file=claim.file,
        location=location(f),
        meta=" · ".join(meta),
        tags_json=json.dumps([clean(t) for t in claim.tags], ensure_ascii=True),
        search=clean("\n".join(searchable)).lower(),
        key_statistic=key_statistic(f),
        duration=f"{f.duration_s:.2f} s",
        description=claim.description,
        headline=headline,
        spec=_spec_html(claim.text),
        error=error,
        statistics=statistics_rows(f.statistics) if f.statistics is not None else (),
        proof=None if f.proof is None else describe_proof(f.proof),
        counterexamples=_counterexamples(f.counterexamples) if f.counterexamples else None,
        tables=tuple(_table(t) for t in f.tables),
        plots=tuple(shown_plots),
        plots_title="Plot" if len(shown_plots) == 1 else "Plots",
        provenance=_provenance(f),
    )


def _spec_html(text: str) -> Markup:
    """A claim's spec text, highlighted by MSL's Pygments lexer. The text is untrusted:
    made printable first (as every string of the report), then escaped by Pygments."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    from msl.highlight import MslLexer

    return Markup(highlight(clean(text), MslLexer(), HtmlFormatter(nowrap=True)).rstrip("\n"))


def statistics_rows(s: Statistics) -> tuple[tuple[str, str], ...]:
    """The statistics worth a row each, an aggregate's interval (``K ci_low``, ``K ci_high``)
    beside the aggregate ``K``; empty when a (formal) finding's statistics hold nothing to
    show, and then the report has no "Statistics" heading either."""
    rows: list[tuple[str, str]] = []
    for name in ("n", "violations"):
        value = getattr(s, name)
        if value is not None:
            rows.append((name, str(value)))
    if s.rate is not None:
        rows.append(("rate", pct(s.rate)))
    if s.interval is not None:
        lo, hi = s.interval
        level = f"{s.confidence * 100:g}% " if s.confidence is not None else ""
        shown = f"{pct(lo)} – {pct(hi)}" if s.rate is not None else f"{num(lo)} – {num(hi)}"
        method = s.interval_method.get("rate")
        rows.append((f"{level}interval", shown + (f" ({method})" if method else "")))
    if s.tolerance is not None:
        rows.append(("tolerance", pct(s.tolerance)))
    if s.seed is not None:
        rows.append(("seed", str(s.seed)))
    for key, value in s.values.items():
        low, high = s.values.get(f"{key} ci_low"), s.values.get(f"{key} ci_high")
        base = key.removesuffix(" ci_low").removesuffix(" ci_high")
        if base != key and f"{base} ci_low" in s.values and f"{base} ci_high" in s.values and base in s.values:
            continue  # shown with the value it bounds
        shown = num(value)
        if low is not None and high is not None:
            method = s.interval_method.get(key)
            level = f"{s.confidence * 100:g}% " if s.confidence is not None else ""
            shown += f" ({level}interval {num(low)} – {num(high)}{f', {method}' if method else ''})"
        rows.append((key, shown))
    return tuple(rows)


def _counterexamples(cxs: Sequence[Counterexample]) -> Counterexamples:
    """The counterexamples in full (the HTML report is where nothing is cut; long texts
    wrap); the columns "before shrinking" and "edit" only where some counterexample has them."""
    columns = ["input"]
    if any(cx.original is not None for cx in cxs):
        columns.append("before shrinking")
    if any(cx.edit for cx in cxs):
        columns.append("edit")
    rows = []
    for cx in cxs:
        cells = {
            "input": full(cx.input),
            "before shrinking": "" if cx.original is None else full(cx.original),
            "edit": cx.edit or "",
        }
        rows.append(CounterexampleRow(
            cells=tuple(cells[c] for c in columns),
            values=tuple((k, full(v)) for k, v in cx.values.items()),
            replayed="yes" if cx.replayed else "no",
        ))
    n = len(cxs)
    return Counterexamples(f"Counterexample{'s' if n != 1 else ''} ({n})", tuple(columns), tuple(rows))


def full(value: InputValue | MeasureValue) -> str:
    """An input or a measured value, uncut: texts whole, vectors with every coordinate to
    float32 precision, records with every field."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)):
        return num(value)
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.9g}" for v in value) + "]"
    return ", ".join(f"{k}={full(v)}" for k, v in value.items())


def _table(t: Table) -> TableView:
    """An explore or steer table; a column without a name is called by its number, so no
    header cell is empty, and a table without columns has no header row."""
    columns = tuple(c or f"column {i}" for i, c in enumerate(t.columns, 1))
    rows = tuple(tuple("" if c is None else c if isinstance(c, str) else describe_value(c) for c in row)
                 for row in t.rows)
    return TableView(t.title, columns, rows)


def _provenance(f: Finding) -> tuple[tuple[str, str], ...]:
    p = f.provenance
    rows: list[tuple[str, str]] = [("finding id", f.id)]
    rows += [
        (f"model {m.role}", f"{m.ref} ({m.kind or 'model'}) {m.fingerprint or 'no fingerprint'}") for m in f.models
    ]
    rows += [(f"vector {label}", digest) for label, digest in f.vectors.items()]
    rows += [
        ("msl", p.msl_version),
        ("spec hash", p.spec_hash or "—"),
        ("data hash", p.data_hash or "—"),
        ("seeds", ", ".join(f"{k}={v}" for k, v in p.seeds.items()) or "—"),
        ("device", p.device or "—"),
        ("dtype", p.dtype or "—"),
        ("started", p.started_at.isoformat()),
        ("duration", f"{f.duration_s:.3f} s"),
    ]
    if p.hostname:
        rows.append(("host", p.hostname))
    rows += list(p.libraries.items())
    if f.accepted_reason:
        rows.append(("accepted because", f.accepted_reason))
    return tuple(rows)


# ── The page ──────────────────────────────────────────────────────────────────────────────


def _counts(values: Sequence[str], order: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """``(value, count)`` for the filters, in ``order`` when given, else sorted."""
    counted = Counter(values)
    keys = [v for v in order if v in counted] if order is not None else sorted(counted)
    return [(k, counted[k]) for k in keys]


@reporter("html", ".html")
def render_html(doc: FindingsDocument, options: ReportOptions) -> str:
    """A self-contained HTML viewer: filters, search, statistics, counterexamples and plots."""
    findings = doc.findings
    script = _asset("report.js")
    page = _environment().get_template("report.html.j2").render(
        csp=content_security_policy(script),
        script=Markup(script),
        style=Markup(_style()),
        claims=claims(len(findings)),
        msl_version=doc.msl_version,
        verdict_counts=_counts([f.verdict.value for f in findings], [v.value for v in Verdict]),
        accepted=doc.summary.accepted,
        kind_counts=_counts([f.claim.kind.value for f in findings], [k.value for k in ClaimKind]),
        tag_counts=_counts([clean(t) for f in findings for t in dict.fromkeys(f.claim.tags)]),
        file_counts=_counts([clean(f.claim.file) for f in findings]),
        findings=[_view(i, f, strict=options.strict) for i, f in enumerate(findings)],
    )
    return page


def svg_plot(series: Sequence[Any], width: int = 560, height: int = 320) -> str:
    """Series sharing their axes as an inline SVG chart (no interval bands), e.g. for docs."""
    template = _environment().get_template("plot.svg.j2")
    return str(template.module.svg(layout(series, width=width, height=height)))  # type: ignore[attr-defined]
