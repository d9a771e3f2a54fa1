"""Plot geometry for the HTML report: series → axes, ticks, curves, interval bands, legend.

The report draws its plots as inline SVG (no plotting library is available offline, and a
hand-drawn chart stays byte-identical from run to run). This module only computes
*where* things go, as plain data; the template ``templates/plot.svg.j2`` turns it into
markup, so every text in a plot is escaped by the template engine like the rest of the page.

Choices a reader of the plots relies on:

* **Intervals** come from the finding itself, never made up here: a table of the same
  finding whose first column is the plot's x, with the curve's column and interval columns
  ``95% CI low`` / ``95% CI high`` (what a dose–response table carries) or, in a table of
  several curves, ``NAME 95% CI low`` / ``NAME 95% CI high``, becomes a shaded band; a table of a
  per-instance series summary (``min`` and ``max`` by layer next to the
  plotted ``median``) becomes a lighter band labelled as the range over the inputs.
* **Ranks are drawn on a log axis** (a rank of 1 and one of 30,000 on one linear axis
  leaves the interesting end flat), and so is any positive series spanning three decades
  or more.
* **The legend sits below the plot area**, one entry per line, so it never covers a curve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from msl.findings import Series, Table
from msl.reporters.describe import num, shorten

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: Margins of the plot area, in pixels: left (tick labels), right, top, bottom (ticks, x label).
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 48
#: Height of one legend line.
LEGEND_LINE = 16
#: A generous width of one character of the plots' 11 px sans-serif text, to keep texts inside.
CHAR_WIDTH = 6.5
#: An interval column: ``95% CI low`` (of the table's one curve) or ``acc 95% CI high`` (of ``acc``).
_CI_COLUMN = re.compile(r"^(?:(?P<of>.+?) )??(?:(?P<level>\d+(?:\.\d+)?%) )?CI (?P<side>low|high)$")


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded area around a curve: ``(x, low, high)`` per point, and what it is."""

    points: tuple[tuple[float, float, float], ...]
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Curve:
    """One series in pixel coordinates: its line, markers, band and reference line."""

    colour: str
    line: str
    markers: tuple[Marker, ...]
    band: str | None
    reference: float | None
    reference_title: str


@dataclass(frozen=True, slots=True)
class LegendEntry:
    y: float
    colour: str
    text: str
    style: str  # "line", "band" or "reference"


@dataclass(frozen=True, slots=True)
class Plot:
    """Everything the SVG template needs, in pixels."""

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    title: str
    x_label: str
    y_label: str
    log_y: bool
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    curves: tuple[Curve, ...]
    legend: tuple[LegendEntry, ...]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]; needs hi > lo."""
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over [lo, hi] (0 < lo < hi): powers of ten (every k-th
    one over many decades, so at most about ten), with 2× and 5× added when it spans less
    than two decades, and round linear steps when it is too narrow to hold two of those."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    every = max(1, math.ceil((last - first) / 10))
    multiples = (1,) if last - first > 2 else (1, 2, 5)
    ticks = [m * 10.0**d for d in range(first, last + 1, every) for m in multiples]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside if len(inside) >= 2 else nice_ticks(lo, hi)


def _span(values: Sequence[float]) -> tuple[float, float]:
    """The axis range for ``values``, padded; a flat range is widened around its value."""
    lo, hi = min(values), max(values)
    # (1e-300: a range of subnormals, e.g. 0 and 5e-324, is flat too — its fifths underflow to 0)
    if hi - lo <= max(abs(lo), abs(hi), 1e-300) * 1e-9:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def wants_log(y_label: str, values: Sequence[float]) -> bool:
    """A log y axis for ranks and for positive values spanning three decades or more
    (values near the ends of float's range stay linear: their padded logs would not be)."""
    if not values or min(values) < 1e-200 or max(values) > 1e200:  # zero, negative, or past float's log range
        return False
    return "rank" in y_label.lower() or max(values) / min(values) >= 1e3


def band_for(series: Series, tables: Sequence[Table]) -> Band | None:
    """The interval around ``series`` that a table of its finding carries (module doc)."""
    for table in tables:
        columns = table.columns
        if len(columns) < 3 or columns[0] != series.x_label:
            continue
        ci = {}
        for i, column in enumerate(columns):
            m = _CI_COLUMN.match(column)
            # an unnamed interval belongs to the table's curve only when it has one
            if m and (m["of"] == series.name or (m["of"] is None and len(columns) == 4)):
                ci[m["side"]] = (i, m["level"])
        if "low" in ci and "high" in ci and series.name in columns:
            level = ci["low"][1]
            return _band(table, ci["low"][0], ci["high"][0], f"{level} interval" if level else "interval")
        if series.name.startswith("median ") and {"median", "min", "max"} <= set(columns):
            return _band(table, columns.index("min"), columns.index("max"), "min–max over the inputs")
    return None


def _band(table: Table, low: int, high: int, label: str) -> Band | None:
    points = []
    for row in table.rows:
        x, lo, hi = row[0], row[low], row[high]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, lo, hi)):
            return None  # a cell that is not a number (``inf`` as text): no band rather than a wrong one
        points.append((float(x), float(lo), float(hi)))  # type: ignore[arg-type]
    return Band(tuple(sorted(points)), label) if points else None


def layout(series: Sequence[Series], bands: Sequence[Band | None] = (), width: int = 560, height: int = 320) -> Plot:
    """The geometry of one plot of ``series`` sharing their axes; ``bands[i]`` (optional)
    is the interval drawn around ``series[i]``. ``height`` is the plot without its legend;
    the legend adds a line per entry below it."""
    bands = list(bands) + [None] * (len(series) - len(bands))
    xs = [x for s in series for x, _ in s.points] + [x for b in bands if b for x, _, _ in b.points]
    ys = [y for s in series for _, y in s.points] + [s.reference for s in series if s.reference is not None]
    ys += [v for b in bands if b for _, lo, hi in b.points for v in (lo, hi)]
    x_label, y_label = series[0].x_label, series[0].y_label
    log_y = wants_log(y_label, ys)
    fy = math.log10 if log_y else float
    x0, x1 = _span(xs)
    y0, y1 = _span([fy(y) for y in ys])
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM

    def px(x: float) -> float:
        return round(LEFT + (x - x0) / (x1 - x0) * pw, 2)

    def py(y: float) -> float:
        return round(TOP + ph - (fy(y) - y0) / (y1 - y0) * ph, 2)

    y_values = log_ticks(10**y0, 10**y1) if log_y else nice_ticks(y0, y1)
    curves, legend = [], []
    line_y = height + 4
    for i, (s, band) in enumerate(zip(series, bands, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        points = sorted(s.points)
        polygon = None
        if band is not None:
            upper = [f"{px(x)},{py(hi)}" for x, _, hi in band.points]
            lower = [f"{px(x)},{py(lo)}" for x, lo, _ in reversed(band.points)]
            polygon = " ".join(upper + lower)
        curves.append(Curve(
            colour=colour,
            line=" ".join(f"{px(x)},{py(y)}" for x, y in points),
            markers=tuple(Marker(px(x), py(y), f"{s.name}: {num(x)}, {num(y)}") for x, y in points),
            band=polygon,
            reference=None if s.reference is None else py(s.reference),
            reference_title="" if s.reference is None else f"{s.name}: threshold {num(s.reference)}",
        ))
        entries = [(_fit(s.name, "", width), "line")]
        if band is not None:
            entries.append((_fit(s.name, f": {band.label} (shaded)", width), "band"))
        if s.reference is not None:
            entries.append((_fit(s.name, f": threshold {num(s.reference)}", width), "reference"))
        for text, style in entries:
            line_y += LEGEND_LINE
            legend.append(LegendEntry(line_y, colour, text, style))
    return Plot(
        width=width,
        height=line_y + 8,
        left=LEFT,
        top=TOP,
        plot_width=pw,
        plot_height=ph,
        title=f"{y_label} by {x_label}" + (" (log scale)" if log_y else ""),
        x_label=shorten(x_label, int(pw / CHAR_WIDTH)),
        y_label=shorten(y_label + (" (log scale)" if log_y else ""), int(ph / CHAR_WIDTH)),
        log_y=log_y,
        x_ticks=tuple(Tick(px(t), num(t)) for t in nice_ticks(x0, x1)),
        y_ticks=tuple(Tick(py(t), num(t)) for t in y_values),
        curves=tuple(curves),
        legend=tuple(legend),
    )


def _fit(name: str, suffix: str, width: int) -> str:
    """A legend entry that fits beside its swatch: the name cut, never what follows it
    (the full name is in each point's tooltip and the plot's tables)."""
    room = int((width - LEFT - 28 - RIGHT) / CHAR_WIDTH)
    return shorten(name, max(8, room - len(suffix))) + suffix


def plots(series: Sequence[Series], tables: Sequence[Table]) -> list[Plot]:
    """One plot per pair of axis labels, with every series on those axes (and the
    interval bands its finding's tables carry) drawn in it."""
    groups: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        if s.points:
            groups.setdefault((s.x_label, s.y_label), []).append(s)
    return [layout(group, [band_for(s, tables) for s in group]) for group in groups.values()]
