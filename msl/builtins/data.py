"""Data sources: built-in lexicons, templates with slots, JSONL/CSV datasets, samples.

Specs are untrusted, so a dataset path must be relative and stay inside the directory of
the spec that names it, files are size-limited, and every value read is a plain string,
number or boolean.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msl import ast
from msl.builtins import builtin
from msl.source import confined
from msl.types import ANY, STR, Type, record, set_of
from msl.values import (
    MAX_ENUMERATION,
    Context,
    DataSet,
    EvalError,
    ListSet,
    Record,
    SampleSet,
    TemplateSet,
    sample_indices,
)

#: Datasets larger than this are refused.
MAX_DATASET_BYTES = 64 * 1024 * 1024

Report = Callable[..., None]

_SLOT = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_slots(pattern: str) -> list[str]:
    """The slot names of a template, in order; raises ValueError on a stray brace."""
    slots = []
    for m in _SLOT.finditer(pattern):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        if m.group(1) is None:
            raise ValueError(f"stray `{token}` (write `{token * 2}` for a literal brace)")
        name = m.group(1)
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ValueError(f"bad slot name `{{{name}}}`")
        if name not in slots:
            slots.append(name)
    return slots


def literal(node: ast.Expr | None) -> Any:
    """The Python value of a literal argument (string, number, list of them), else None."""
    if isinstance(node, ast.String):
        return node.value
    if isinstance(node, ast.Number):
        return node.fraction if node.percent else node.value
    if isinstance(node, ast.Unary) and node.op == "-" and isinstance(node.operand, ast.Number):
        return -node.operand.value
    if isinstance(node, ast.ListLit):
        items = [literal(i) for i in node.items]
        return None if any(i is None for i in items) else items
    return None


# ── Lexicons ─────────────────────────────────────────────────────────────────────────────


def _lexicon_type(args: dict[str, ast.Expr], types: dict[str, Type]) -> Type:
    from msl.lexicons import load_lexicon

    name = literal(args.get("name"))
    if not isinstance(name, str):
        return set_of(ANY)
    try:
        items = load_lexicon(name)
    except Exception:
        return set_of(ANY)
    if items and isinstance(items[0], dict):
        return set_of(record(frozenset(items[0])))
    return set_of(STR)


def _check_lexicon(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    from msl.lexicons import available

    node = args.get("name")
    name = literal(node)
    if node is None or name is None:
        return
    if name not in available():
        import difflib

        close = difflib.get_close_matches(str(name), available(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"built-in lexicons: {', '.join(available())}"
        report(f"no built-in lexicon {name!r}", node.span, hint)


@builtin("builtin(name: str) -> set[any]", validate=_check_lexicon, infer=_lexicon_type)
def builtin_lexicon(ctx: Context, name: str) -> ListSet:
    """A lexicon written for MSL: ``builtin("names.female")``, ``builtin("countries")``.

    Word lists give sets of strings; tables (``countries``: fields ``country``,
    ``capital``) give sets of records. See docs/lexicons.md.
    """
    from msl.lexicons import load_lexicon

    try:
        items = load_lexicon(name)
    except (KeyError, ValueError) as exc:
        raise EvalError(str(exc)) from None
    values = tuple(Record(tuple(i.items())) if isinstance(i, dict) else i for i in items)
    return ListSet(values, f"builtin({name!r})")


# ── Templates ────────────────────────────────────────────────────────────────────────────


def _template_type(args: dict[str, ast.Expr], types: dict[str, Type]) -> Type:
    pattern = literal(args.get("pattern"))
    fields: set[str] = {"text"}
    if isinstance(pattern, str):
        try:
            fields.update(template_slots(pattern))
        except ValueError:
            pass
    rows = types.get("rows")
    if rows is not None and rows.elem.fields is not None:
        fields.update(rows.elem.fields)
    elif rows is not None:
        return set_of(record(None))
    return set_of(record(frozenset(fields)))


def _check_template(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("pattern")
    pattern = literal(node)
    if node is None or not isinstance(pattern, str):
        return
    try:
        slots = template_slots(pattern)
    except ValueError as exc:
        report(f"bad template: {exc}", node.span)
        return
    given = {k: v for k, v in args.items() if k not in ("pattern", "rows")}
    rows_type = types.get("rows")
    row_fields = rows_type.elem.fields if rows_type is not None else frozenset()
    for name, value in given.items():
        if name not in slots:
            hint = f"its slots: {', '.join(f'`{s}`' for s in slots)}" if slots else "it has no `{slot}` in its text"
            report(f"the template has no slot `{name}`", value.span, hint)
        elif row_fields and name in row_fields:
            report(f"slot `{name}` is filled both by `rows` and by a keyword", value.span)
    if row_fields is None:
        return
    for slot in slots:
        if slot not in given and slot not in (row_fields or ()):
            where = f"; `rows` has {', '.join(sorted(row_fields))}" if row_fields else ""
            report(f"slot `{{{slot}}}` is not filled", node.span, f"add `{slot}: <set of words>`{where}")


@builtin(
    "template(pattern: str, rows: set[record] = None, **slots: set[str]) -> set[record]",
    validate=_check_template,
    infer=_template_type,
)
def template(
    ctx: Context, pattern: str, rows: DataSet | None = None, slots: dict[str, Any] | None = None
) -> TemplateSet:
    """Every fill of a template: ``template("{name} found it {adj}.", name: names, adj: adjs)``.

    Slots named by keywords take each value of their set (the cartesian product); with
    ``rows: table`` each row fills the slots named by its fields, and the row's other
    fields travel with the input (``x.capital``). Each element is a record with a
    ``text`` field and one field per slot.
    """
    try:
        template_slots(pattern)
    except ValueError as exc:
        raise EvalError(f"bad template: {exc}") from None
    slot_values = []
    for name, values in (slots or {}).items():
        items = tuple(str(v) for v in values)
        if not items:
            raise EvalError(f"slot `{name}` has no values")
        slot_values.append((name, items))
    row_records = None
    if rows is not None:
        row_records = tuple(r if isinstance(r, Record) else Record.of(value=r) for r in rows)
    return TemplateSet(pattern, tuple(slot_values), row_records)


# ── Datasets ─────────────────────────────────────────────────────────────────────────────


def spec_relative_file(spec_dir: Path, path: str, suffixes: tuple[str, ...], kind: str) -> Path:
    """A file a spec names: relative to the spec, inside its directory once links are
    resolved (specs are untrusted), with one of ``suffixes``. Raises ValueError saying
    which rule the path breaks."""
    candidate = Path(path)
    if candidate.is_absolute():
        raise ValueError(f"{kind} paths must be relative to the spec file")
    try:
        resolved = confined(spec_dir / candidate, spec_dir)
    except ValueError:
        raise ValueError(f"{kind} paths must stay inside the spec's directory") from None
    if resolved.suffix not in suffixes:
        raise ValueError(f"{kind}s are {' or '.join(suffixes)} files")
    return resolved


def resolve_data_path(spec_dir: Path, path: str) -> Path:
    """A dataset path: a .jsonl or .csv file inside the spec's directory."""
    return spec_relative_file(spec_dir, path, (".jsonl", ".csv"), "dataset")


def _dataset_type(args: dict[str, ast.Expr], types: dict[str, Type]) -> Type:
    mapped = [k for k in args if k != "path"]
    return set_of(record(frozenset(mapped) if mapped else None))


def _check_dataset(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("path")
    path = literal(node)
    if node is None or not isinstance(path, str):
        return
    spec_dir = Path(node.span.file).parent
    try:
        resolved = resolve_data_path(spec_dir, path)
    except ValueError as exc:
        report(str(exc), node.span)
        return
    if not resolved.is_file():
        report(f"no dataset file {path!r} next to this spec", node.span)
    for key, value in args.items():
        if key != "path" and not isinstance(literal(value), str):
            report(f"field `{key}` must name a column with a string", value.span, f'e.g. {key}: "{key}"')


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise EvalError(f"{where}: values must be strings, numbers or booleans")


def read_rows(resolved: Path) -> tuple[list[dict[str, Any]], str]:
    """The rows of a JSONL or CSV file and the sha256 of its bytes."""
    size = resolved.stat().st_size
    if size > MAX_DATASET_BYTES:
        raise EvalError(f"{resolved.name} is too large ({size // 2**20} MB; limit {MAX_DATASET_BYTES // 2**20} MB)")
    data = resolved.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")  # spreadsheets save CSV with a byte-order mark
    except UnicodeDecodeError:
        raise EvalError(f"{resolved.name} is not UTF-8 text") from None
    rows: list[dict[str, Any]] = []
    if resolved.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_reject_constant)
            except ValueError as exc:
                raise EvalError(f"{resolved.name}:{number}: not a JSON object ({exc})") from None
            except RecursionError:
                raise EvalError(f"{resolved.name}:{number}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise EvalError(f"{resolved.name}:{number}: each line must be a JSON object")
            rows.append({str(k): _scalar(v, f"{resolved.name}:{number}") for k, v in row.items()})
    else:
        rows = _csv_rows(text, resolved.name)
    return rows, digest


def _csv_rows(text: str, name: str) -> list[dict[str, Any]]:
    """The rows of a CSV text as dicts keyed by its header. A field may be as long as a
    dataset may be (the csv module's default limit is 131,072 characters)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, MAX_DATASET_BYTES))
    rows: list[dict[str, Any]] = []
    try:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            if None in row:
                raise EvalError(f"{name}:{reader.line_num}: more fields than the header has columns")
            if None in row.values():
                raise EvalError(f"{name}:{reader.line_num}: fewer fields than the header has columns")
            rows.append(dict(row))
    except csv.Error as exc:
        raise EvalError(f"{name}: not a valid CSV file ({exc})") from None
    finally:
        csv.field_size_limit(limit)
    return rows


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


@builtin("dataset(path: str, **fields: str) -> set[record]", validate=_check_dataset, infer=_dataset_type)
def dataset(ctx: Context, path: str, fields: dict[str, str] | None = None) -> ListSet:
    """Rows of a JSONL or CSV file next to the spec, with fields renamed:
    ``dataset("data/reviews.jsonl", text: "sentence", label: "label")``.

    Each keyword maps an MSL field to a column; without keywords every column is kept.
    """
    try:
        resolved = resolve_data_path(ctx.spec_dir, path)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    if not resolved.is_file():
        raise EvalError(f"no dataset file {path!r}")
    rows, digest = read_rows(resolved)
    ctx.note_data(path, digest)
    records = []
    for number, row in enumerate(rows, 1):
        if fields:
            missing = [column for column in fields.values() if column not in row]
            if missing:
                raise EvalError(f"{path}: row {number} has no column {missing[0]!r}")
            records.append(Record(tuple((name, row[column]) for name, column in fields.items())))
        else:
            records.append(Record(tuple(row.items())))
    return ListSet(tuple(records), f"dataset({path!r})")


# ── Samples ──────────────────────────────────────────────────────────────────────────────


def _check_sample(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("n")
    n = literal(node)
    if node is None or n is None:
        return
    if not isinstance(n, (int, float)) or n <= 0 or (n >= 1 and n != int(n)):
        report("sample size must be a whole number, or a fraction like 10%", node.span)
    elif n > MAX_ENUMERATION:
        report(f"a sample has at most {MAX_ENUMERATION:,} elements", node.span)


@builtin("sample(data: set, n: number, seed: number = None) -> $data", validate=_check_sample)
def sample(ctx: Context, data: DataSet, n: float, seed: float | None = None) -> SampleSet:
    """A seeded sample of ``n`` elements without replacement (``n`` may be a fraction).

    Without ``seed`` the run's ``--seed`` decides, so another seed draws another sample;
    a claim over a sample is checked statistically, and may stop early once its verdict
    is clear.
    """
    size = len(data)
    count = int(n) if n >= 1 else max(1, round(n * size))
    if min(count, size) > MAX_ENUMERATION:
        raise EvalError(f"a sample has at most {MAX_ENUMERATION:,} elements, not {min(count, size):,}")
    key = int(seed) if seed is not None else ctx.rng("sample", data.describe(), count).getrandbits(31)
    return SampleSet(data, sample_indices(size, count, key), key)
