"""A self-contained HTML report: summary, every finding's evidence, tables and plots.

One file with no external CSS, JavaScript, fonts or images, so it can be attached to a
CI run or mailed to another lab. Plots (dose-response curves, probe accuracy by layer)
are inline SVG drawn from the findings' :class:`~msl.findings.Series`. Findings are
untrusted text: every string goes through :func:`_e` (non-printables made visible, then
HTML-escaped), and a Content-Security-Policy forbids scripts as a second line of defence.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from msl.findings import (
    Counterexample,
    Finding,
    FindingsDocument,
    InputValue,
    MeasureValue,
    Series,
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
    shorten,
    verdict_line,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}
h1{margin-bottom:.2rem}h2{margin:.2rem 0}h3{margin:1rem 0 .3rem;font-size:1rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.8rem;color:#fff;font-weight:600;font-size:.85em}
.proved,.holds{background:#2e7d32}.refuted,.violated{background:#c62828}.inconclusive{background:#b26a00}.error{background:#7b1fa2}
.accepted{background:#777}.finding{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:.6rem 1rem;margin:1rem 0}
.finding.fail{border-left-color:#c62828}.finding.pass{border-left-color:#2e7d32}.finding.open{border-left-color:#b26a00}
.where{color:#555;margin:.2rem 0}.plots{display:flex;flex-wrap:wrap;gap:1rem}svg{background:#fff;border:1px solid #eee}
"""


def _e(value: object) -> str:
    """Untrusted value → safe HTML text."""
    return html.escape(clean(str(value)), quote=True)


@reporter("html", ".html")
def render_html(doc: FindingsDocument, options: ReportOptions) -> str:
    """A self-contained HTML report with statistics, counterexamples and plots."""
    s = doc.summary
    badges = " ".join(
        f'<span class="badge {v.value}">{getattr(s, v.value)} {v.value}</span>' for v in Verdict if getattr(s, v.value)
    )
    if s.accepted:
        badges += f' <span class="badge accepted">{s.accepted} accepted</span>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>MSL findings ({_claims(s.total)})</title><style>{STYLE}{_spec_style()}</style></head><body>",
        f"<h1>MSL findings</h1><p>{_claims(s.total)} {badges}</p>",
        f"<p class=\"where\">msl {_e(doc.msl_version)}</p>",
        _overview(doc),
        *(_finding(i, f, strict=options.strict) for i, f in enumerate(doc.findings)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _spec_style() -> str:
    """CSS for the highlighted spec text (Pygments' default colours, scoped to it)."""
    from pygments.formatters import HtmlFormatter

    return "\n".join(HtmlFormatter().get_token_style_defs("pre.msl"))


def _spec_html(text: str) -> str:
    """A claim's spec text, highlighted by MSL's Pygments lexer. The text is untrusted:
    made printable first (as every string of the report), then escaped by Pygments."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    from msl.highlight import MslLexer

    return highlight(clean(text), MslLexer(), HtmlFormatter(nowrap=True)).rstrip("\n")


def _claims(n: int) -> str:
    return f"{n} claim{'' if n == 1 else 's'}"


def _overview(doc: FindingsDocument) -> str:
    rows = "".join(
        f'<tr><td><a href="#finding-{i}">{_e(f.claim.name)}</a><br><span class="where">{_e(location(f))}</span></td>'
        f"<td>{_badge(f)}</td><td>{_e(f.method.value)}</td><td>{_e(key_statistic(f))}</td>"
        f"<td>{f.duration_s:.2f} s</td></tr>"
        for i, f in enumerate(doc.findings)
    )
    return f"<table><tr><th>claim</th><th>verdict</th><th>method</th><th>key statistic</th><th>time</th></tr>{rows}</table>"


def _badge(f: Finding) -> str:
    badge = f'<span class="badge {f.verdict.value}">{f.verdict.value}</span>'
    return badge + (' <span class="badge accepted">accepted</span>' if f.accepted else "")


def _finding(i: int, f: Finding, *, strict: bool) -> str:
    if fails(f, strict=strict):
        status = "fail"
    elif f.verdict in (Verdict.PROVED, Verdict.HOLDS):
        status = "pass"
    else:
        status = "open"
    claim = f.claim
    meta = [location(f), claim.kind.value, f.method.value]
    if claim.severity:
        meta.append(f"severity {claim.severity.value}")
    if claim.tags:
        meta.append("tags " + ", ".join(claim.tags))
    out = [
        f'<section class="finding {status}" id="finding-{i}">',
        f"<h2>{_e(claim.name)} {_badge(f)}</h2>",
        f'<p class="where">{_e(" · ".join(meta))}</p>',
    ]
    if claim.description:
        out.append(f"<p>{_e(claim.description)}</p>")
    if f.error is None:
        out.append(f"<p>{_e(verdict_line(f))}</p>")
    elif f.message and f.message != f.error.message:  # the error has its own section below: said once
        out.append(f"<p>{_e(f.message)}</p>")
    out.append(f'<pre class="msl">{_spec_html(claim.text)}</pre>')
    if f.error is not None:
        where = f" (at {f.error.location})" if f.error.location else ""
        out.append(f"<h3>Error</h3><pre>{_e(f.error.message + where)}</pre>")
    statistics = _statistics(f.statistics) if f.statistics is not None else ""
    if statistics:  # a formal finding's statistics may hold nothing to show
        out.append("<h3>Statistics</h3>" + statistics)
    if f.proof is not None:
        out.append(f"<h3>Proof</h3><p>{_e(describe_proof(f.proof))}</p>")
    if f.counterexamples:
        out.append(f"<h3>Counterexamples ({len(f.counterexamples)})</h3>" + _counterexamples(f.counterexamples))
    out.extend(_table(t) for t in f.tables)
    if f.series:
        out.append('<h3>Plots</h3><div class="plots">' + "".join(_plots(f.series)) + "</div>")
    out.append(_provenance(f))
    out.append("</section>")
    return "\n".join(out)


def _kv_table(rows: Iterable[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _statistics(s: Statistics) -> str:
    rows: list[tuple[str, object]] = []
    for name in ("n", "violations"):
        if getattr(s, name) is not None:
            rows.append((name, getattr(s, name)))
    if s.rate is not None:
        rows.append(("rate", pct(s.rate)))
    if s.interval is not None:
        lo, hi = s.interval
        level = f"{s.confidence * 100:g}% " if s.confidence is not None else ""
        shown = f"{pct(lo)} – {pct(hi)}" if s.rate is not None else f"{num(lo)} – {num(hi)}"
        rows.append((f"{level}interval", shown))
    if s.tolerance is not None:
        rows.append(("tolerance", pct(s.tolerance)))
    if s.seed is not None:
        rows.append(("seed", s.seed))
    rows.extend((k, num(v)) for k, v in s.values.items())
    return _kv_table(rows) if rows else ""


def _counterexamples(cxs: Sequence[Counterexample]) -> str:
    """The counterexamples in full (the HTML report is where nothing is cut); the columns
    "before shrinking" and "edit" only where some counterexample has them."""
    columns = ["input"]
    if any(cx.original is not None for cx in cxs):
        columns.append("before shrinking")
    if any(cx.edit for cx in cxs):
        columns.append("edit")
    head = "<tr><th>#</th>" + "".join(f"<th>{name}</th>" for name in columns) + "<th>values</th><th>replayed</th></tr>"
    rows = []
    for i, cx in enumerate(cxs, 1):
        cells = {
            "input": f'<td class="mono">{_e(_full(cx.input))}</td>',
            "before shrinking": f'<td class="mono">{"" if cx.original is None else _e(_full(cx.original))}</td>',
            "edit": f"<td>{_e(cx.edit or '')}</td>",
        }
        values = "<br>".join(f"{_e(k)} = {_e(_full(v))}" for k, v in cx.values.items())
        rows.append(
            f"<tr><td>{i}</td>" + "".join(cells[name] for name in columns)
            + f'<td>{values}</td><td>{"yes" if cx.replayed else "no"}</td></tr>'
        )
    return "<table>" + head + "".join(rows) + "</table>"


def _full(value: InputValue | MeasureValue) -> str:
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
    return ", ".join(f"{k}={_full(v)}" for k, v in value.items())


def _table(t: Table) -> str:
    head = "".join(f"<th>{_e(c) or f'column {i}'}</th>" for i, c in enumerate(t.columns, 1))
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(_cell(c))}</td>" for c in row) + "</tr>" for row in t.rows
    )
    return f"<h3>{_e(t.title)}</h3><table><tr>{head}</tr>{rows}</table>"


def _cell(value: bool | float | str | None) -> str:
    if value is None:
        return ""
    return describe_value(value) if not isinstance(value, str) else value


def _provenance(f: Finding) -> str:
    p = f.provenance
    rows: list[tuple[str, object]] = [("finding id", f.id)]
    rows += [(f"model {m.role}", f"{m.ref} ({m.kind or 'model'}) {m.fingerprint or 'no fingerprint'}") for m in f.models]
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
    rows += [(name, version) for name, version in p.libraries.items()]
    return "<details><summary>Provenance</summary>" + _kv_table(rows) + "</details>"


# ── Plots ──────────────────────────────────────────────────────────────────────────────


def _plots(series: Sequence[Series]) -> list[str]:
    """One SVG per pair of axis labels, with every series on those axes drawn in it."""
    groups: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        if s.points:
            groups.setdefault((s.x_label, s.y_label), []).append(s)
    return [svg_plot(group) for group in groups.values()]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]; needs hi > lo."""
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def _span(values: Sequence[float]) -> tuple[float, float]:
    """The axis range for ``values``, padded; a flat range is widened around its value."""
    lo, hi = min(values), max(values)
    if hi - lo <= max(abs(lo), abs(hi)) * 1e-9:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def svg_plot(series: Sequence[Series], width: int = 560, height: int = 320) -> str:
    """Series sharing their axes as an inline SVG line chart with points, ticks, legend
    and reference lines (e.g. the expected accuracy threshold)."""
    left, right, top, bottom = 64, 16, 12, 48
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [s.reference for s in series if s.reference is not None]
    x0, x1 = _span(xs)
    y0, y1 = _span(ys)
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    x_label, y_label = series[0].x_label, series[0].y_label
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="11" font-family="sans-serif">',
        f"<title>{_e(y_label)} by {_e(x_label)}</title>",
    ]
    for t in nice_ticks(x0, x1):
        out.append(f'<line x1="{px(t):.2f}" y1="{top}" x2="{px(t):.2f}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px(t):.2f}" y="{top + ph + 15}" text-anchor="middle">{_e(num(t))}</text>')
    for t in nice_ticks(y0, y1):
        out.append(f'<line x1="{left}" y1="{py(t):.2f}" x2="{left + pw}" y2="{py(t):.2f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{py(t) + 4:.2f}" text-anchor="end">{_e(num(t))}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{left + pw / 2:.2f}" y="{height - 8}" text-anchor="middle">{_e(x_label)}</text>')
    out.append(
        f'<text transform="translate(14 {top + ph / 2:.2f}) rotate(-90)" text-anchor="middle">{_e(y_label)}</text>'
    )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = sorted(s.points)
        path = " ".join(f"{px(x):.2f},{py(y):.2f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            out.append(
                f'<circle cx="{px(x):.2f}" cy="{py(y):.2f}" r="3" fill="{colour}">'
                f"<title>{_e(s.name)}: {_e(num(x))}, {_e(num(y))}</title></circle>"
            )
        if s.reference is not None:
            out.append(
                f'<line x1="{left}" y1="{py(s.reference):.2f}" x2="{left + pw}" y2="{py(s.reference):.2f}" '
                f'stroke="{colour}" stroke-dasharray="5 4"><title>{_e(s.name)}: reference {_e(num(s.reference))}</title></line>'
            )
        out.append(
            f'<text x="{left + 8}" y="{top + 14 + 14 * i}" fill="{colour}">■ {_e(shorten(s.name, 40))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
