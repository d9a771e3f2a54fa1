"""The evaluator's per-run memos (template pieces and sizes, finiteness checks) change
nothing but speed: each is checked against the computation it replaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from msl.evaluate import RunContext
from msl.plan import Planner
from msl.values import EvalError, ModelHandle, TemplateSet, fill_template


def reference_fill(template: str, values: dict[str, str]) -> str:
    """The character-by-character filling the piece cache replaced."""
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            out.append(ch)
            i += 2
        elif ch == "{":
            end = template.index("}", i)
            out.append(str(values[template[i + 1 : end]]))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


SLOTS = ["a", "b", "name"]


@given(
    st.lists(
        st.one_of(st.text(alphabet="xy {}", max_size=4), st.sampled_from([f"{{{s}}}" for s in SLOTS])), max_size=8
    ),
    st.fixed_dictionaries({s: st.text(max_size=3) for s in SLOTS}),
)
def test_filling_a_template_is_unchanged(parts: list[str], values: dict[str, str]) -> None:
    template = "".join(parts)
    try:
        expected: str | type[Exception] = reference_fill(template, values)
    except (ValueError, KeyError) as exc:
        expected = type(exc)
    if isinstance(expected, str):
        assert fill_template(template, values) == expected
    else:
        with pytest.raises(expected):
            fill_template(template, values)


def test_template_sets_count_and_decode_as_before() -> None:
    s = TemplateSet("{x} and {y}", (("x", ("1", "2", "3")), ("y", ("a", "b"))))
    assert len(s) == 6 and s.choice_sizes() == (3, 2)
    assert [s.item(i).get("text") for i in range(6)] == [f"{x} and {y}" for x in "123" for y in "ab"]


class _Model:
    """Stands for a model whose result the planner already holds."""


def test_a_non_finite_result_fails_every_time_a_finite_one_is_checked_once(tmp_path: Path) -> None:
    planner = Planner(None)
    ctx = RunContext(planner, 0, tmp_path)
    model = _Model()
    good, bad = np.array([1.0, 2.0]), np.array([1.0, np.nan])
    planner._memory[(id(model), "good", None)] = good
    planner._memory[(id(model), "bad", None)] = bad
    handle = ModelHandle("m", "causal_lm", model, "sha256:x")  # type: ignore[arg-type]
    for _ in range(2):
        assert ctx.query(handle, "good") is good
        with pytest.raises(EvalError, match="NaN or inf"):
            ctx.query(handle, "bad")
    assert ctx.finite == {id(good): good}
    assert ctx.for_spec(tmp_path).finite is ctx.finite
