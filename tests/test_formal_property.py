"""The problem data structure: conditions, negation, helpers and their tie conventions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msl.engines.formal.property import (
    Condition,
    InputRegion,
    LinearConstraint,
    Property,
    argmax_is,
    argmax_is_not,
    argmin_is,
    compare,
    linear,
    output_bound,
)
from msl.errors import UsageError


def test_argmax_ties_go_to_the_first_index_as_in_numpy() -> None:
    tie = np.array([[1.0, 1.0, 0.0]])
    assert argmax_is(3, 0).holds(tie)[0] and not argmax_is(3, 1).holds(tie)[0]
    assert not argmax_is_not(3, 0).holds(tie)[0] and argmax_is_not(3, 1).holds(tie)[0]
    assert argmax_is_not(3, 0).holds(np.array([[1.0, 1.5, 0.0]]))[0]
    assert argmin_is(3, 2).holds(tie)[0]
    assert (
        argmin_is(3, 0).holds(np.array([[0.0, 0.0, 1.0]]))[0]
        and not argmin_is(3, 1).holds(np.array([[0.0, 0.0, 1.0]]))[0]
    )


@settings(max_examples=100, deadline=None)
@given(m=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_argmax_and_argmin_conditions_agree_with_numpy(m: int, seed: int) -> None:
    """One semantics everywhere: the formal condition is exactly numpy's first-index rule."""
    pts = np.random.default_rng(seed).choice([-1.0, 0.0, 0.5, 1.0], size=(300, m))  # many ties
    for i in range(m):
        assert np.array_equal(argmax_is(m, i).holds(pts), np.argmax(pts, axis=1) == i)
        assert np.array_equal(argmin_is(m, i).holds(pts), np.argmin(pts, axis=1) == i)
        assert np.array_equal(argmax_is_not(m, i).holds(pts), np.argmax(pts, axis=1) != i)


def test_negation_of_non_strict_is_strict() -> None:
    c = LinearConstraint((1.0, -1.0), 0.0)
    n = c.negate()
    assert n.strict and n.coeffs == (-1.0, 1.0) and n.rhs == -0.0
    assert compare(2, 0, ">=", 1).negate() == Condition.of(LinearConstraint((1.0, -1.0), 0.0, strict=True))


conds = st.sampled_from(
    [
        argmax_is(3, 0),
        argmax_is(3, 2),
        argmin_is(3, 1),
        output_bound(3, 0, "<=", 0.3),
        output_bound(3, 2, ">", -0.1),
        compare(3, 0, "<", 1),
        linear([1.0, 2.0, -1.0], "==", 0.5),
        linear([1.0, 0.0, -1.0], "!=", 0.0),
    ]
)


@settings(max_examples=60, deadline=None)
@given(a=conds, b=conds, seed=st.integers(0, 2**16))
def test_negate_and_or_are_pointwise_exact(a: Condition, b: Condition, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.choice([-0.5, -0.1, 0.0, 0.3, 0.5, 1.0], size=(200, 3))  # many ties and boundary points
    ha, hb = a.holds(pts), b.holds(pts)
    np.testing.assert_array_equal(a.negate().holds(pts), ~ha)
    np.testing.assert_array_equal((a & b).holds(pts), ha & hb)
    np.testing.assert_array_equal((a | b).holds(pts), ha | hb)
    np.testing.assert_array_equal(a.negate().negate().holds(pts), ha)


def test_trivial_constraints_simplify() -> None:
    assert Condition.of(LinearConstraint((0.0, 0.0), 1.0)).disjuncts == ((),)  # 0 <= 1: true
    assert Condition.of(LinearConstraint((0.0, 0.0), -1.0)).disjuncts == ()  # 0 <= -1: false
    assert Condition.true().negate().disjuncts == ()
    assert Condition.false().negate().disjuncts == ((),)


def test_regions_and_properties_are_validated() -> None:
    with pytest.raises(UsageError, match="empty range"):
        InputRegion((1.0,), (0.0,))
    with pytest.raises(UsageError, match="non-finite"):
        InputRegion((0.0,), (float("inf"),))
    region = InputRegion.linf_ball([0.5, 0.5], 0.7, clip=(0.0, 1.0))
    assert region.lower == (0.0, 0.0) and region.upper == (1.0, 1.0)
    prop = Property.forall(region, argmax_is(3, 0))
    assert prop.unsafe == argmax_is_not(3, 0)
    with pytest.raises(UsageError, match="the network 3"):
        prop.check_against(3, 3)
    with pytest.raises(UsageError, match="constrains 3 outputs"):
        prop.check_against(2, 4)
    assert region.contains(np.array([1.00005, 0.0]))
    assert not region.contains(np.array([1.001, 0.0]))
