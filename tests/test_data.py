"""Data sources: templates (cartesian and rows), datasets with field mapping, samples,
and the limits that keep untrusted specs harmless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msl.builtins import data
from msl.evaluate import RunContext
from msl.plan import Planner
from msl.values import EvalError, ListSet, Record, TemplateSet


def ctx(tmp_path: Path, seed: int = 0) -> RunContext:
    return RunContext(Planner(), seed, tmp_path)


def test_template_is_the_cartesian_product_in_a_stable_order(tmp_path: Path) -> None:
    t = data.template(ctx(tmp_path), "{a} {b}", slots={"a": ListSet(("x", "y")), "b": ListSet(("1", "2", "3"))})
    assert isinstance(t, TemplateSet) and len(t) == 6
    assert [r.text for r in t] == ["x 1", "x 2", "x 3", "y 1", "y 2", "y 3"]
    assert t.item(4).get("a") == "y" and t.item(4).get("b") == "2"


def test_template_rows_fill_jointly_and_travel(tmp_path: Path) -> None:
    rows = ListSet((Record.of(country="France", capital="Paris"), Record.of(country="Japan", capital="Tokyo")))
    t = data.template(ctx(tmp_path), "Capital of {country}", rows=rows)
    assert [r.text for r in t] == ["Capital of France", "Capital of Japan"]
    assert t.item(1).get("capital") == "Tokyo"


def test_dataset_maps_fields_and_hashes_the_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"sentence": s, "y": y}) for s, y in [("a", 1), ("b", 0)]))
    c = ctx(tmp_path)
    rows = data.dataset(c, "d.jsonl", {"text": "sentence", "label": "y"})
    assert [r.to_json() for r in rows] == [{"text": "a", "label": 1}, {"text": "b", "label": 0}]
    assert c.data_hashes["d.jsonl"].startswith("sha256:")
    (tmp_path / "d.csv").write_text("sentence,y\nc,1\n")
    assert data.dataset(c, "d.csv", {"text": "sentence"}).items[0].text == "c"


@pytest.mark.parametrize("path", ["/etc/passwd.jsonl", "../outside.jsonl", "sub/../../x.csv", "d.txt"])
def test_dataset_paths_stay_inside_the_spec_directory(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError):
        data.resolve_data_path(tmp_path, path)


def test_dataset_rejects_non_scalar_and_non_finite_values(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "x": NaN}\n')
    with pytest.raises(EvalError):
        data.dataset(ctx(tmp_path), "bad.jsonl", None)
    (tmp_path / "nested.jsonl").write_text('{"text": {"a": 1}}\n')
    with pytest.raises(EvalError):
        data.dataset(ctx(tmp_path), "nested.jsonl", None)


def test_samples_are_seeded_distinct_and_prefix_uniform(tmp_path: Path) -> None:
    base = ListSet(tuple(range(1000)))
    a = data.sample(ctx(tmp_path, 0), base, 50)
    again = data.sample(ctx(tmp_path, 0), base, 50)
    other = data.sample(ctx(tmp_path, 1), base, 50)
    assert list(a) == list(again) and list(a) != list(other)
    assert len(set(a)) == 50
    fixed = data.sample(ctx(tmp_path, 0), base, 50, 7)
    assert list(fixed) == list(data.sample(ctx(tmp_path, 1), base, 50, 7))  # an explicit seed wins
    assert len(data.sample(ctx(tmp_path), base, 0.1)) == 100  # a fraction of the set
