"""The HTML report as a viewer: what its page holds (parsed as a browser would, with the
standard library's HTML parser), its plots' geometry, and — in a real browser, marked slow
— its filters.

``data/report_findings.json`` holds real findings: ``msl check specs/verify_relu.msl
specs/steer_lm.msl specs/explore_lm.msl --format json -o …`` on smollm2-135m (formal
proofs and a refutation, steer dose–response curves with bootstrap intervals, probe
accuracy by layer, logit-lens ranks).
"""

from __future__ import annotations

import base64
import hashlib
import math
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import findings_samples as samples
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from msl.findings import FindingsDocument, Series, Table, load_findings, make_finding
from msl.reporters import ReportOptions, render_report
from msl.reporters.describe import describe_proof
from msl.reporters.html import render_html
from msl.reporters.html_plot import band_for, layout, log_ticks

REAL = Path(__file__).parent / "data" / "report_findings.json"
EVIL = "<script>alert('x')</script>"
BREAKOUT = '" onmouseover="alert(1)'
#: Where the latest browser test's screenshot is copied for people to look at.
NOTES_SCREENSHOT = Path("/work/notes/report.png")


# ── A page parsed the way a browser reads it ──────────────────────────────────────────────


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self, tag: str | None = None) -> list[Element]:
        found = [self] if tag in (None, self.tag) else []
        for c in self.children:
            if isinstance(c, Element):
                found += c.iter(tag)
        return found


VOID = {"meta", "br", "input", "link", "img", "hr", "wbr", "col", "source"}
#: Elements an SVG writes as ``<x/>``: closed where they open.
SELF_CLOSING = {"line", "rect", "polygon", "polyline", "circle", "path"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, tag
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Element:
    """The page's element tree; every element must be closed where it should be."""
    builder = _Builder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], [e.tag for e in builder.stack]
    return builder.root


def findings_of(root: Element) -> list[Element]:
    return [s for s in root.iter("section") if "finding" in s.attrs.get("class", "").split()]


def real_document() -> FindingsDocument:
    return load_findings(REAL)


def html(*findings: Any) -> str:
    return render_report(FindingsDocument.of(list(findings)), "html")


# ── The page ──────────────────────────────────────────────────────────────────────────────


def test_the_same_findings_give_the_same_bytes() -> None:
    doc = real_document()
    page = render_report(doc, "html")
    again = render_report(FindingsDocument.model_validate_json(doc.model_dump_json()), "html")
    assert page == again
    assert "sha256:" in page and "random" not in page.lower()


def test_plurals() -> None:
    one = parse(html(samples.refuted()))
    assert one.iter("title")[0].text() == "MSL findings (1 claim)"
    assert one.iter("p")[0].text().startswith("1 claim ")
    assert "Counterexample (1)" in [h.text() for h in one.iter("h3")]
    two_cx = samples.violated(counterexamples=[{"input": "a"}, {"input": "b"}])
    page = parse(html(two_cx, samples.holds()))
    assert page.iter("title")[0].text() == "MSL findings (2 claims)"
    assert "Counterexamples (2)" in [h.text() for h in page.iter("h3")]
    empty = parse(html())
    assert empty.iter("title")[0].text() == "MSL findings (0 claims)" and not empty.iter("form")
    for root in (one, page, parse(render_report(real_document(), "html"))):
        assert "1 claims" not in root.text() and "1 counterexamples" not in root.text().lower()


def test_no_empty_heading_header_cell_or_section() -> None:
    no_statistics = make_finding(**{**samples.proved().model_dump(exclude={"id"}), "statistics": {}})
    unnamed = samples.violated(tables=[{"title": "t", "columns": ["", "b", ""], "rows": [[1.0, 2.0, None]]}])
    for doc in (real_document(), samples.sample_document(), FindingsDocument.of([no_statistics, unnamed])):
        root = parse(render_report(doc, "html"))
        for tag in ("h1", "h2", "h3", "th", "summary", "legend", "title", "option"):
            for element in root.iter(tag):
                assert element.text().strip(), f"empty <{tag}>"
        for section in findings_of(root):  # every heading of a finding is followed by what it heads
            details = section.iter("details")[0]
            kids = [c for c in details.children if isinstance(c, Element)]
            for h, after in zip(kids, kids[1:] + [None], strict=True):
                if h.tag == "h3":
                    assert after is not None and after.tag not in ("h3", "details"), h.text()
    root = parse(html(no_statistics))
    assert "Statistics" not in [h.text() for h in root.iter("h3")]


def test_an_error_is_said_once_in_its_finding() -> None:
    error = make_finding(**{**samples.error().model_dump(exclude={"id"}), "message": "model returned NaN logits"})
    (section,) = findings_of(parse(html(error)))
    assert section.text().count("model returned NaN logits") == 1
    assert section.iter("details")[0].attrs.get("open") is not None  # errors and failures start open


def test_the_evidence_is_said_once() -> None:
    doc = real_document()
    root = parse(render_report(doc, "html"))
    for f, section in zip(doc.findings, findings_of(root), strict=True):
        details = section.iter("details")[0]  # below its summary line (name, verdict, key statistic)
        text = "".join(c if isinstance(c, str) else c.text() for c in details.children
                       if not (isinstance(c, Element) and c.tag == "summary"))
        if f.proof is not None:
            assert text.count(describe_proof(f.proof)) == 1, f.claim.name
        if f.message:
            assert text.count(f.message) == 1, f.claim.name
        for key in (f.statistics.values if f.statistics else {}):
            assert f"{key}=" not in text, (f.claim.name, key)  # in the statistics table, not a run-on line


def test_counterexamples_are_whole_and_wrap() -> None:
    text = "word " * 500 + "the end"
    vector = [i / 7 for i in range(40)]
    f = make_finding(**{
        **samples.refuted().model_dump(exclude={"id"}),
        "counterexamples": [{"input": vector, "values": {"top": text}, "replayed": True}],
    })
    root = parse(html(f))
    (table,) = [t for t in root.iter("table") if "cx" in t.attrs.get("class", "")]
    cells = table.iter("td")
    assert "top = " + repr(text) in [c.text() for c in cells]  # the whole text, quoted
    assert "[" + ", ".join(f"{v:.9g}" for v in vector) + "]" in [c.text() for c in cells]
    style = root.iter("style")[0].text()
    rule = style.split("td.mono{", 1)[1].split("}", 1)[0]
    assert "white-space:pre-wrap" in rule and "overflow-wrap:anywhere" in rule


def test_an_aggregate_is_shown_with_its_interval() -> None:
    doc = real_document()
    (gap,) = [f for f in doc.findings if f.claim.name == "ablation_removes_gap"]
    root = parse(html(gap))
    table = [t for t in root.iter("table") if "kv" in t.attrs.get("class", "")][0]
    rows = {r.iter("th")[0].text(): r.iter("td")[0].text() for r in table.iter("tr")}
    values = gap.statistics.values  # type: ignore[union-attr]
    for key in ("mean(gap(t))", "mean(gap(t) with ablate)"):
        low, high = values[f"{key} ci_low"], values[f"{key} ci_high"]
        assert low <= values[key] <= high
        assert rows[key] == f"{values[key]:.4g} (95% interval {low:.4g} – {high:.4g}, bootstrap-bca)"
        assert f"{key} ci_low" not in rows and f"{key} ci_high" not in rows
    lone = samples.violated(statistics={"n": 3, "values": {"x ci_low": 0.5}})
    table = [t for t in parse(html(lone)).iter("table") if "kv" in t.attrs.get("class", "")][0]
    assert "x ci_low" in [th.text() for th in table.iter("th")]  # a bound without its value is kept


def _evil() -> list[Any]:
    claim = samples.claim(EVIL, 3, description=EVIL, tags=[EVIL, BREAKOUT], file=f"specs/{BREAKOUT}.msl")
    return [
        samples.violated(
            claim=claim | {"text": f"verify x {{ {EVIL} }}"},
            counterexamples=[{"input": EVIL, "original": {EVIL: EVIL}, "edit": EVIL, "values": {EVIL: BREAKOUT}}],
            tables=[{"title": EVIL, "columns": [EVIL, BREAKOUT], "rows": [[EVIL, BREAKOUT]]}],
            series=[{"name": EVIL, "x_label": BREAKOUT, "y_label": EVIL, "points": [(0, 1), (1, 2)], "reference": 1.5}],
            message=EVIL + BREAKOUT,
            models=[{"role": "lm", "ref": EVIL, "kind": "causal_lm", "fingerprint": None}],
        ),
        make_finding(**{**samples.error().model_dump(exclude={"id"}),
                        "error": {"message": EVIL, "location": BREAKOUT}, "message": BREAKOUT}),
    ]


def test_findings_cannot_inject_markup_or_script() -> None:
    page = html(*_evil())
    root = parse(page)
    (script,) = root.iter("script")  # the report's own, and no other
    assert script.attrs == {} and "alert" not in script.text()
    assert not [e for e in root.iter() if any(name.startswith("on") for name in e.attrs)]
    assert page.count("&lt;script&gt;") >= 10
    # what the reader sees is the text as written, not markup
    (section, _) = findings_of(root)
    assert section.iter("h2")[0].text().startswith(EVIL)
    assert section.attrs["data-file"] == f"specs/{BREAKOUT}.msl"
    assert EVIL in [o.text().rsplit(" (", 1)[0] for o in root.iter("option")]


def test_only_the_reports_own_script_may_run() -> None:
    root = parse(render_report(real_document(), "html"))
    (meta,) = [m for m in root.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(rule.strip().split(" ", 1) for rule in meta.attrs["content"].split(";"))
    assert policy["default-src"] == "'none'"
    script = root.iter("script")[0].text()
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    for element in root.iter():  # nothing is fetched, and links stay in the page
        assert "src" not in element.attrs and element.attrs.get("href", "#").startswith("#")


def test_filters_offer_what_the_findings_hold() -> None:
    doc = real_document()
    root = parse(render_report(doc, "html"))
    sections = findings_of(root)
    assert [s.attrs["data-verdict"] for s in sections] == [f.verdict.value for f in doc.findings]
    assert [s.attrs["data-kind"] for s in sections] == [f.claim.kind.value for f in doc.findings]
    form = root.iter("form")[0]
    assert "hidden" in form.attrs  # shown by the script; without it every finding is simply listed
    facets = {(e.attrs["data-facet"], e.attrs["data-value"]): e.text() for e in form.iter() if "data-facet" in e.attrs}
    assert facets[("verdict", "holds")] == f"holds ({doc.summary.holds})"
    assert facets[("kind", "steer")] == f"steer ({sum(f.claim.kind.value == 'steer' for f in doc.findings)})"
    tags = {t for f in doc.findings for t in f.claim.tags}
    assert {v for k, v in facets if k == "tag"} == tags
    assert {v for k, v in facets if k == "file"} == {f.claim.file for f in doc.findings}
    rows = root.iter("tbody")[0].iter("tr")
    assert [r.attrs["data-finding"] for r in rows] == [s.attrs["id"] for s in sections]


# ── Plots ─────────────────────────────────────────────────────────────────────────────────


def _svg_numbers(svg: Element, tag: str, cls: str) -> list[Element]:
    return [e for e in svg.iter(tag) if e.attrs.get("class") == cls]


def test_dose_response_curves_carry_their_intervals() -> None:
    doc = real_document()
    (dose,) = [f for f in doc.findings if f.claim.name == "dose_response"]
    (table,) = dose.tables
    root = parse(html(dose))
    (svg,) = root.iter("svg")
    (band,) = _svg_numbers(svg, "polygon", "band")
    corners = [tuple(map(float, p.split(","))) for p in band.attrs["points"].split()]
    markers = [(float(c.attrs["cx"]), float(c.attrs["cy"])) for c in _svg_numbers(svg, "circle", "point")]
    assert len(corners) == 2 * len(markers) == 2 * len(table.rows)
    upper, lower = corners[: len(markers)], corners[len(markers):][::-1]
    # pixels ← values, from two of the curve's own points; the band must be the table's interval
    y0, y1 = markers[1][1], markers[-1][1]
    m0, m1 = (float(table.rows[i][1]) for i in (1, -1))  # type: ignore[arg-type]
    scale = (y1 - y0) / (m1 - m0)
    for (x, y), (ux, uy), (lx, ly), row in zip(markers, upper, lower, table.rows, strict=True):
        mean, lo, hi = (float(v) for v in row[1:4])  # type: ignore[arg-type]
        assert x == ux == lx and uy <= y <= ly
        assert uy == pytest.approx(y0 + (hi - m0) * scale, abs=0.02)
        assert ly == pytest.approx(y0 + (lo - m0) * scale, abs=0.02)
    legend = [t.text() for t in svg.iter("text") if t.attrs.get("class") == "legend"]
    assert any("95% interval" in t for t in legend)


def test_probe_accuracy_draws_the_interval_its_table_carries() -> None:
    acc = Series(name="acc", x_label="layer", y_label="probe accuracy", points=[(0, 0.5), (6, 0.8), (12, 0.9)])
    table = Table(title="by layer", columns=["layer", "acc", "acc 95% CI low", "acc 95% CI high", "control"],
                  rows=[[0, 0.5, 0.3, 0.7, 0.5], [6, 0.8, 0.6, 0.92, 0.5], [12, 0.9, 0.74, 0.97, 0.5]])
    band = band_for(acc, [table])
    assert band is not None and band.label == "95% interval"
    assert band.points == ((0, 0.3, 0.7), (6, 0.6, 0.92), (12, 0.74, 0.97))
    control = Series(name="control", x_label="layer", y_label="probe accuracy", points=[(0, 0.5)])
    assert band_for(control, [table]) is None  # the interval columns are acc's, not control's
    no_interval = Table(title="t", columns=["layer", "acc", "control"], rows=[[0, 0.5, 0.5]])
    assert band_for(acc, [no_interval]) is None  # none in the finding: none drawn


def test_ranks_are_drawn_on_a_log_axis() -> None:
    ranks = Series(name="median ranks", x_label="layer", y_label="logit lens rank", points=[(0, 1), (1, 10), (2, 100)])
    plot = layout([ranks])
    assert plot.log_y and "log scale" in plot.y_label
    ys = [m.y for m in plot.curves[0].markers]
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.02)  # equal steps per decade
    assert [t.label for t in plot.y_ticks] == ["1", "10", "100"]
    linear = layout([Series(name="acc", x_label="layer", y_label="probe accuracy", points=[(0, 0.5), (1, 0.9)])])
    assert not linear.log_y
    lens = parse(render_report(real_document(), "html"))
    titles = [t.text() for t in lens.iter("title")]
    assert "logit lens rank by layer (log scale)" in titles


@pytest.mark.parametrize(("lo", "hi"), [(1, 30000), (0.5, 7), (3, 4), (1e-3, 1e3), (1e-300, 1e3)])
def test_log_ticks_are_few_and_inside_the_range(lo: float, hi: float) -> None:
    ticks = log_ticks(lo, hi)
    assert 2 <= len(ticks) <= 12 and ticks == sorted(ticks)
    assert all(lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9) for t in ticks)
    if hi / lo >= 100:  # over two decades and more: powers of ten
        assert all(math.log10(t) == pytest.approx(round(math.log10(t))) for t in ticks)


points = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@example(curves=[[(0.0, 1.0), (0.0, 2.225073858507203e-309)]], names=["0"] * 4, reference=None)  # a subnormal
@example(curves=[[(0.0, 0.0), (0.0, 5e-324)]], names=["0"] * 4, reference=None)  # a range that underflows
@given(st.lists(points, min_size=1, max_size=4), st.lists(st.text(min_size=1, max_size=90), min_size=4, max_size=4),
       st.one_of(st.none(), st.floats(-1e3, 1e3)))
def test_legend_is_clear_of_the_curves(curves: list[list[tuple[float, float]]], names: list[str],
                                       reference: float | None) -> None:
    series = [
        Series(name=n, x_label="x", y_label="y", points=p, reference=reference)
        for p, n in zip(curves, names, strict=False)
    ]
    plot = layout(series)
    bottom = plot.top + plot.plot_height
    for curve in plot.curves:
        for m in curve.markers:
            assert plot.left - 0.01 <= m.x <= plot.left + plot.plot_width + 0.01
            assert plot.top - 0.01 <= m.y <= bottom + 0.01
        if curve.reference is not None:
            assert plot.top <= curve.reference <= bottom
    ys = [e.y for e in plot.legend]
    assert len(ys) == len(series) * (2 if reference is not None else 1)
    assert min(ys) > bottom + 36 and ys == sorted(set(ys)) and max(ys) < plot.height  # below the x label
    for entry in plot.legend:  # inside the picture, at a generous 6.5 px a character
        assert plot.left + 28 + len(entry.text) * 6.5 <= plot.width


# ── In a browser ──────────────────────────────────────────────────────────────────────────

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.mark.slow
def test_the_viewer_filters_in_a_real_browser(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}")
    doc = real_document()
    report = tmp_path / "report.html"
    report.write_text(render_html(doc, ReportOptions()), encoding="utf-8")
    total = len(doc.findings)
    violated = sum(f.verdict.value == "violated" for f in doc.findings)
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(report.as_uri())
            findings = page.locator("section.finding")

            def visible() -> list[str]:
                return [findings.nth(i).get_attribute("data-verdict") or "" for i in range(findings.count())
                        if findings.nth(i).is_visible()]

            assert page.locator("#filters").is_visible()  # the script ran: the CSP let it
            assert len(visible()) == total
            page.get_by_role("checkbox", name="violated").uncheck()
            assert len(visible()) == total - violated and "violated" not in visible()
            assert page.locator("#shown").inner_text() == f"Showing {total - violated} of {total} claims."
            assert page.locator('[data-facet="kind"][data-value="steer"]').inner_text() == (
                f"steer ({sum(f.claim.kind.value == 'steer' and f.verdict.value != 'violated' for f in doc.findings)})")
            page.get_by_role("checkbox", name="violated").check()
            assert len(visible()) == total
            page.get_by_role("searchbox").fill("dose")
            expected = [
                f.verdict.value
                for f in doc.findings
                if "dose" in (f.claim.name + f.claim.text + " ".join(f.claim.tags)).lower()
            ]
            assert visible() == expected and expected
            page.locator("#expand").click()
            assert page.locator("section.finding:visible svg").count() == len(expected)  # the dose–response plots
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            page.get_by_role("searchbox").fill("no claim has this text")
            assert visible() == [] and page.locator("#none").is_visible()
            page.get_by_role("searchbox").fill("")
            page.locator('select[name="tag"]').select_option("ablation")
            assert len(visible()) == sum("ablation" in f.claim.tags for f in doc.findings)
            page.get_by_role("button", name="clear filters").click()
            assert len(visible()) == total and page.locator('select[name="tag"]').input_value() == ""
            page.locator("#collapse").click()
            assert not page.locator("section.finding svg").first.is_visible()
            # hostile findings: nothing of theirs runs, and the viewer still works on them
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            evil = tmp_path / "evil.html"
            evil.write_text(html(*_evil()), encoding="utf-8")
            page.goto(evil.as_uri())
            assert page.locator("#filters").is_visible() and page.locator("section.finding").count() == 2
            page.locator('select[name="tag"]').select_option(BREAKOUT)
            assert page.locator("section.finding:visible").count() == 1
            page.locator("#expand").click()
            assert EVIL in page.locator("section.finding h2").first.inner_text()
            assert dialogs == []
        finally:
            browser.close()
    assert problems == []
    print(f"screenshot: {tmp_path / 'report.png'}")
    if NOTES_SCREENSHOT.parent.is_dir():
        shutil.copyfile(tmp_path / "report.png", NOTES_SCREENSHOT)
