"""What a finding shows besides its verdict: curves and tables for explore and steer claims.

Computed from a finished :class:`~msl.engines.finite.FiniteRun` (exhaustive or
statistical), from values the claim already evaluated (model results are in the planner's
memory, so nothing runs twice):

* a ``let`` bound to a per-layer series (``probe(…)``) → a curve, and a table per set of
  layers with a column per ``let``; the threshold an expectation compares it with
  (``max(acc) >= 0.9``, ``first(acc >= 0.9)``) is the curve's reference line;
* a per-instance series ``let`` (``let ranks = lm.lens_rank(f.prompt, f.answer)`` in a
  ``for`` claim) → its mean, median, min and max by layer over the instances, the median
  plotted;
* ``increasing(g(s) for s in scales)`` and its kin → the dose–response curve and a table
  of it, with a bootstrap interval for each point that is a mean over the instances;
* steer and explore claims → each instance's values (the per-prompt effect).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from msl import ast
from msl.evaluate import Aggregation, iterate
from msl.fmt import expr as show
from msl.ir import CheckedExpect
from msl.plan import PENDING
from msl.stats import clopper_pearson
from msl.values import Record, Series

if TYPE_CHECKING:
    from msl.engines.finite import FiniteRun, Instance

_MONOTONE = ("increasing", "decreasing", "nondecreasing", "nonincreasing")

#: Instances listed in a steer or explore claim's per-instance table.
MAX_TABLE_ROWS = 100

Report = dict[str, Any]


def claim_reports(run: FiniteRun) -> tuple[list[Report], list[Report]]:
    """The series and tables of a finished claim (see the module doc)."""
    series: list[Report] = []
    tables: list[Report] = []
    if run.base is None:
        return series, tables
    claim = run.claim
    by_layers: dict[tuple[int, ...], list[tuple[str, Series]]] = {}
    for name, value in run.base.bindings():
        if _numeric_series(value):
            label = value.label or name
            points = [(float(x), float(y)) for x, y in zip(value.layers, value.values, strict=True)]
            series.append({"name": name, "x_label": "layer", "y_label": _axis(label), "points": points,
                           "reference": _reference(name, claim.expects)})
            by_layers.setdefault(value.layers, []).append((name, value))
    level = f"{claim.confidence:.0%}"
    for layers, named in by_layers.items():  # one table per set of layers, a column per let
        title = ", ".join(f"{name}: {value.label}" if value.label else name for name, value in named)
        columns = ["layer"]
        for name, value in named:
            columns += [name, f"{name} {level} CI low", f"{name} {level} CI high"] if value.trials else [name]
        tables.append({"title": f"by layer — {title}", "columns": columns,
                       "rows": [[layer, *(c for _, v in named for c in _cells(v, j, claim.confidence))]
                                for j, layer in enumerate(layers)]})
    for name in sorted(claim.instance_lets):
        summary = series_summary(run, name)
        if summary is not None:
            series.append(summary[0])
            tables.append(summary[1])
    for ce in claim.expects:
        for call in _monotone_calls(ce.node.condition):
            curve = dose_response(run, call, ce)
            if curve is not None:
                series.append(curve[0])
                tables.append(curve[1])
    if claim.kind in ("steer", "explore"):
        table = instance_table(run)
        if table is not None:
            tables.append(table)
    return series, tables


def series_summary(run: FiniteRun, name: str) -> tuple[Report, Report] | None:
    """A per-instance series let by layer over the instances: mean, median, min and max;
    the median is plotted (robust to the few inputs whose rank is in the thousands)."""
    values = [env.find(name)[1] for env in run.envs()]
    if not values or not all(_numeric_series(v) for v in values):
        return None
    layers = values[0].layers
    if any(v.layers != layers for v in values):
        return None
    grid = np.array([[float(x) for x in v.values] for v in values])
    labels = {v.label for v in values}
    label = labels.pop() if len(labels) == 1 else _common_label(values[0].label) or name
    rows = [[layer, *(round(float(f(grid[:, j])), 6) for f in (np.mean, np.median, np.min, np.max))]
            for j, layer in enumerate(layers)]
    n = len(values)
    curve = {"name": f"median {name} over {n} inputs", "x_label": "layer", "y_label": label,
             "points": [(float(layer), float(np.median(grid[:, j]))) for j, layer in enumerate(layers)],
             "reference": _reference(name, run.claim.expects)}
    table = {"title": f"{name}: {label}, by layer over {n} inputs",
             "columns": ["layer", "mean", "median", "min", "max"], "rows": rows}
    return curve, table


def dose_response(run: FiniteRun, call: ast.Call, ce: CheckedExpect) -> tuple[Report, Report] | None:
    """The points of ``increasing(g(s) for s in scales)`` as a curve, and a table of them
    with the bootstrap interval of each point when it is a mean over the instances."""
    assert run.base is not None
    gen = call.args[0]
    if not isinstance(gen, ast.Comprehension) or gen.condition is not None:
        return None
    agg = Aggregation(run.envs()) if ce.shape == "aggregate" else None
    xs = run.ev.eval(gen.iterable, run.base, (), agg)
    if xs is PENDING:
        return None
    points, rows = [], []
    for x in iterate(xs):
        env = run.base.child(**{gen.var: x})
        y = run.ev.eval(gen.element, env, (), agg)
        if y is PENDING or not _is_number(y) or not _is_number(x):
            return None
        points.append((float(x), float(y)))
        interval = run.mean_interval(gen.element, env, agg) if agg is not None else None
        rows.append([float(x), float(y), *((interval.low, interval.high) if interval is not None else ())])
    y_label = shorten(show(gen.element), 200)
    columns = [gen.var, y_label]
    if rows and all(len(r) == 4 for r in rows):
        level = f"{run.claim.confidence:.0%}"
        columns += [f"{level} CI low", f"{level} CI high"]
    else:
        rows = [r[:2] for r in rows]
    curve = {"name": y_label, "x_label": gen.var, "y_label": y_label, "points": points}
    table = {"title": f"dose–response: {y_label} by {gen.var}", "columns": columns,
             "rows": [[round(v, 6) for v in r] for r in rows]}
    return curve, table


def instance_table(run: FiniteRun) -> Report | None:
    """Each instance's measured values: those its expectations compared, the values the
    aggregate expectations aggregate (a steer claim's per-prompt effect), and the claim's
    per-instance ``let`` values."""
    args: list[ast.Expr] = []
    for ce in run.other_expects:
        if ce.shape == "aggregate":
            args.extend(c.args[0] for c in run.aggregate_calls(ce) if len(c.args) == 1)
    columns: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    agg = Aggregation(run.envs())
    applicable = run.applicable()
    for inst in applicable[:MAX_TABLE_ROWS]:
        if inst.env is None:
            continue
        row = {k: v for k, v in inst.values.items() if isinstance(v, (int, float, bool))}
        for arg in args:
            value = run.ev.per_instance(arg, inst.env, (), agg)
            if isinstance(value, (int, float, bool, np.floating)):
                row[show(arg)] = value
        row.update({k: v for k, v in run.let_values(inst).items() if k not in row})
        columns.update(dict.fromkeys(row))
        rows.append({"input": _cell_input(inst), **row})
    if not columns:
        return None
    names = ["input", *columns]
    shown = len(rows) if len(rows) == len(applicable) else f"the first {len(rows)}"
    return {"title": f"per instance ({shown} of {len(applicable)})", "columns": names,
            "rows": [[_cell(r.get(c)) for c in names] for r in rows]}


# ── helpers ──────────────────────────────────────────────────────────────────────────────


def _cells(series: Series, j: int, confidence: float) -> list[float]:
    """A series' value at its ``j``-th layer, with its exact (Clopper–Pearson) interval when
    the value is a proportion of ``series.trials`` (a probe's accuracy on its test split)."""
    value = float(series.values[j])
    if not series.trials:
        return [round(value, 6)]
    low, high = clopper_pearson(round(value * series.trials), series.trials, confidence)
    return [round(value, 6), round(low, 6), round(high, 6)]


def _numeric_series(value: Any) -> bool:
    return isinstance(value, Series) and bool(value.values) and all(_is_number(v) for v in value.values)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


def _axis(label: str) -> str:
    """``probe accuracy (label)`` → ``probe accuracy``, so series of one kind share a plot."""
    return label.split(" (", 1)[0] if label.endswith(")") and " (" in label else label


def _common_label(label: str) -> str:
    """``logit lens rank of ' Paris'`` → ``logit lens rank``: what per-input labels share."""
    return label.split(" of ", 1)[0] if " of " in label else label


def _reference(name: str, expects: tuple[CheckedExpect, ...]) -> float | None:
    """The threshold an expectation compares a series let with (``max(acc) >= 0.85``,
    ``first(acc >= 0.8)``), to draw on its plot."""
    for ce in expects:
        for node in ast.walk(ce.node.condition):
            if isinstance(node, ast.Compare) and len(node.operands) == 2:
                a, b = node.operands
                for x, y in ((a, b), (b, a)):
                    if _reads_series(x, name) and isinstance(y, ast.Number):
                        return float(y.fraction if y.percent else y.value)
    return None


def _reads_series(node: ast.Node, name: str) -> bool:
    if isinstance(node, ast.Name):
        return node.id == name
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("max", "min", "mean", "median") and len(node.args) == 1
            and isinstance(node.args[0], ast.Name) and node.args[0].id == name)


def _cell(value: Any) -> Any:
    """A table cell: finite numbers rounded, flags and texts as they are, others as text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_number(value):
        return round(float(value), 6)
    if isinstance(value, (int, float, np.floating)):
        return str(float(value))  # inf: `first` found no layer
    return value if value is None or isinstance(value, str) else shorten(repr(value), 200)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell_input(inst: Instance) -> str:
    """An instance as one table cell: its text, or its record's fields."""
    parts = []
    for value in inst.item:
        if isinstance(value, Record) and not value.has("text"):
            parts.append(", ".join(f"{k}: {v}" for k, v in value.fields))
        else:
            parts.append(value.text if isinstance(value, Record) else str(value))
    return shorten(" | ".join(parts), 200)


def _monotone_calls(cond: ast.Node) -> list[ast.Call]:
    return [n for n in ast.walk(cond) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id in _MONOTONE and n.args]
