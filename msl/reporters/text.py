"""The terminal report: problems first, with their evidence, then a table of all claims.

Rendered with rich; without a terminal (CI logs, pipes) it is plain text with no escape
codes. Every string from a finding is passed through :func:`~msl.reporters.describe.clean`
and put in a :class:`rich.text.Text`, so claim names can neither inject rich markup nor
terminal control sequences.
"""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from msl.agreement import Agreement, Comparison
from msl.catalog import DatasetRecord, Entry, ModelRecord
from msl.findings import Finding, FindingsDocument, Verdict, fails
from msl.findings import Table as FindingTable
from msl.reporters import ReportOptions, reporter
from msl.reporters.describe import (
    clean,
    describe_counterexample,
    describe_proof,
    describe_statistics,
    describe_value,
    key_statistic,
    location,
    shorten,
)

VERDICT_STYLE = {
    Verdict.PROVED: "bold green",
    Verdict.HOLDS: "green",
    Verdict.REFUTED: "bold red",
    Verdict.VIOLATED: "bold red",
    Verdict.INCONCLUSIVE: "yellow",
    Verdict.ERROR: "bold magenta",
}
MARK = {
    Verdict.PROVED: "✓",
    Verdict.HOLDS: "✓",
    Verdict.REFUTED: "✗",
    Verdict.VIOLATED: "✗",
    Verdict.INCONCLUSIVE: "?",
    Verdict.ERROR: "!",
}
#: Counterexamples shown per finding; the JSON and HTML reports carry all of them.
SHOWN_COUNTEREXAMPLES = 3
#: Rows shown per result table; the JSON and HTML reports carry all of them.
SHOWN_TABLE_ROWS = 40


@reporter("text", ".txt")
def render_text(doc: FindingsDocument, options: ReportOptions) -> str:
    """Human-readable summary: problems with evidence, then a table of every claim."""
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=options.color,
        no_color=not options.color,
        width=options.width,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    for finding in doc.findings:
        if finding.verdict not in (Verdict.PROVED, Verdict.HOLDS):
            console.print(finding_details(finding), soft_wrap=True)
        elif finding.tables:
            console.print(finding_heading(finding))
        for table in finding.tables:
            console.print(Padding(result_table(table), (0, 0, 0, 4)))
    if doc.findings:
        console.print(_table(doc))
    console.print(summary_text(doc, strict=options.strict))
    return out.getvalue()


def verdict_text(f: Finding) -> Text:
    """The coloured verdict word, marked when the baseline accepted it."""
    label = Text(f"{MARK[f.verdict]} {f.verdict.value}", style=VERDICT_STYLE[f.verdict])
    if f.accepted:
        label.append(" (accepted)", style="dim")
    return label


def finding_heading(f: Finding) -> Text:
    """``✓ holds  name  file:line:col  [method]``: the first line of a finding's block."""
    text = Text()
    text.append_text(verdict_text(f))
    text.append("  ")
    text.append(clean(f.claim.name, keep_newlines=False), style="bold")
    text.append(f"  {clean(location(f), keep_newlines=False)}  [{f.method.value}]", style="dim")
    return text


def result_table(t: FindingTable) -> Group:
    """An explore or steer result (probe accuracy by layer, a dose–response, per-prompt
    effects) as its title over a terminal table; long ones are cut to
    :data:`SHOWN_TABLE_ROWS` rows."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in t.columns:
        table.add_column(clean(shorten(column, 60), keep_newlines=False), overflow="fold",
                         justify="left" if column == "input" else "right")
    for row in t.rows[:SHOWN_TABLE_ROWS]:
        table.add_row(*(Text(clean(shorten(_cell(c), 80), keep_newlines=False)) for c in row))
    parts: list[Text | Table] = [Text(clean(shorten(t.title, 300), keep_newlines=False), style="bold"), table]
    if len(t.rows) > SHOWN_TABLE_ROWS:
        parts.append(Text(f"… and {len(t.rows) - SHOWN_TABLE_ROWS} more rows in the JSON and HTML reports",
                          style="dim"))
    return Group(*parts)


def _cell(value: bool | float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and 1e4 <= abs(value) < 1e15:
        return f"{value:.0f}"  # a mean rank of 10020.5, not 1.002e+04
    return value if isinstance(value, str) else describe_value(value)


#: Characters of an error message shown in the terminal (other evidence lines show 400).
ERROR_CHARS = 2000


def finding_details(f: Finding) -> Text:
    """A few lines of evidence for one finding that is not a plain pass."""
    text = finding_heading(f)
    lines = []
    error = ""
    if f.error is not None:
        where = f" (at {f.error.location})" if f.error.location else ""
        error = f"error: {f.error.message}{where}"
        lines.append(error)
    if f.proof is not None:
        lines.append(f"proof: {describe_proof(f.proof)}")
    if f.statistics is not None and (stats := describe_statistics(f.statistics)):
        lines.append(stats)
    for cx in f.counterexamples[:SHOWN_COUNTEREXAMPLES]:
        lines.append(f"counterexample: {describe_counterexample(cx)}")
    if len(f.counterexamples) > SHOWN_COUNTEREXAMPLES:
        lines.append(f"… and {len(f.counterexamples) - SHOWN_COUNTEREXAMPLES} more counterexamples")
    if f.message and (f.error is None or f.message != f.error.message):  # an error is said once
        lines.append(f.message)
    for line in lines:
        # an error is shown whole (its cause sits after a path that can be long); evidence is cut
        text.append("\n    " + shorten(clean(line, keep_newlines=False), ERROR_CHARS if line is error else 400))
    return text


def _table(doc: FindingsDocument) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("claim", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("key statistic", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    for f in doc.findings:
        claim = Text(clean(f.claim.name, keep_newlines=False))
        claim.append(f" {clean(f.claim.file, keep_newlines=False)}:{f.claim.line}", style="dim")
        table.add_row(
            claim,
            verdict_text(f),
            f.method.value,
            Text(clean(key_statistic(f), keep_newlines=False)),
            f"{f.duration_s:.2f} s",
        )
    return table


def summary_text(doc: FindingsDocument, *, strict: bool = False) -> Text:
    """``7 claims: 4 holds, 1 proved, 2 violated (1 accepted) — FAILED``."""
    s = doc.summary
    counts = [(getattr(s, v.value), v) for v in Verdict if getattr(s, v.value)]
    text = Text(f"{s.total} claim{'s' if s.total != 1 else ''}")
    for i, (count, verdict) in enumerate(counts):
        text.append(": " if i == 0 else ", ")
        text.append(f"{count} {verdict.value}", style=VERDICT_STYLE[verdict])
    if s.accepted:
        text.append(f" ({s.accepted} accepted by the baseline)", style="dim")
    failed = any(fails(f, strict=strict) for f in doc.findings)
    if failed:
        text.append(" — FAILED", style="bold red")
    elif s.error:
        text.append(" — ERRORS", style="bold magenta")
    else:
        text.append(" — OK", style="bold green")
    return text


# ── Tables for ``msl catalog`` ─────────────────────────────────────────────────────────


def _folding_table(*headers: str) -> Table:
    """A table whose cells wrap instead of being cut: ids and names must stay whole, and
    hashes stay on one line so they can be copied."""
    table = Table(box=box.SIMPLE_HEAD)
    for header in headers:
        if header in ("fingerprint", "hash"):
            table.add_column(header, no_wrap=True, min_width=len("sha256:") + 64)
        else:
            table.add_column(header, overflow="fold")
    return table


def _plain(value: str) -> Text:
    return Text(clean(value, keep_newlines=False))


def catalog_table(entries: list[Entry]) -> Table:
    """Catalogue entries: short id, start time, claim and location, verdict, models."""
    table = _folding_table("id", "started", "claim", "kind", "verdict", "method", "models")
    for e in entries:
        claim = _plain(e.claim)
        claim.append(f" {clean(e.file, keep_newlines=False)}:{e.line}", style="dim")
        verdict = Text(f"{MARK[e.verdict]} {e.verdict.value}", style=VERDICT_STYLE[e.verdict])
        table.add_row(
            e.short_id,
            f"{e.started_at:%Y-%m-%d %H:%M}",
            claim,
            e.kind.value,
            verdict,
            e.method,
            _plain(", ".join(e.models)),
        )
    return table


def finding_table(f: Finding) -> Table:
    """One finding's identity and provenance as a two-column table (``msl catalog show``)."""
    p = f.provenance
    table = Table(show_header=False, box=box.SIMPLE)
    rows: list[tuple[str, str | Text]] = [
        ("id", f.id),
        ("claim", _plain(f"{f.claim.name} ({f.claim.kind.value})")),
        ("location", _plain(location(f))),
        ("verdict", verdict_text(f)),
        ("method", f.method.value),
        *((f"model {m.role}", _plain(f"{m.ref} {m.fingerprint or '(no fingerprint)'}")) for m in f.models),
        ("data hash", p.data_hash or "—"),
        ("seeds", _plain(", ".join(f"{k}={v}" for k, v in p.seeds.items()) or "—")),
        ("started", p.started_at.isoformat()),
        ("duration", f"{f.duration_s:.3f} s"),
        ("msl", _plain(p.msl_version)),
        ("libraries", _plain(", ".join(f"{k} {v}" for k, v in p.libraries.items()) or "—")),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def models_table(records: list[ModelRecord]) -> Table:
    table = _folding_table("fingerprint", "ref", "kind", "first seen", "last seen")
    for r in records:
        table.add_row(
            r.fingerprint,
            _plain(r.ref),
            _plain(r.kind or ""),
            f"{r.first_seen:%Y-%m-%d %H:%M}",
            f"{r.last_seen:%Y-%m-%d %H:%M}",
        )
    return table


def datasets_table(records: list[DatasetRecord]) -> Table:
    table = _folding_table("hash", "first seen", "last seen")
    for r in records:
        table.add_row(r.hash, f"{r.first_seen:%Y-%m-%d %H:%M}", f"{r.last_seen:%Y-%m-%d %H:%M}")
    return table


# ── ``msl replay`` ─────────────────────────────────────────────────────────────────────

AGREEMENT_STYLE = {
    Agreement.REPRODUCED: "green",
    Agreement.NOT_REPRODUCED: "bold red",
    Agreement.NOT_COMPARABLE: "yellow",
}


def comparisons_table(comparisons: list[Comparison]) -> Table:
    """One row per shared finding: claim, agreement, why, and warnings (other weights…)."""
    table = _folding_table("claim", "agreement", "why", "warnings")
    for c in comparisons:
        claim = _plain(c.shared.claim.name)
        claim.append(f" {clean(c.shared.claim.file, keep_newlines=False)}:{c.shared.claim.line}", style="dim")
        table.add_row(
            claim,
            Text(c.agreement.value, style=AGREEMENT_STYLE[c.agreement]),
            _plain(c.reason),
            Text(clean("\n".join(c.warnings)), style="yellow"),
        )
    return table
