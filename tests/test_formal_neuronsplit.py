"""The ReLU-splitting search's LP bounds: valid for any multipliers, checked by scipy's LP."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import linprog

from msl.engines.formal.neuronsplit import _dual_bound


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_dual_bound_is_below_the_lp_optimum_for_any_multipliers(seed: int) -> None:
    """``min c.v`` over ``L <= A v <= U``, ``lo <= v <= hi``: the recomputed bound never exceeds
    the optimum (scipy's HiGHS), whatever the multipliers, and is tight at the optimal ones."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 8)), int(rng.integers(1, 8))
    a = rng.normal(size=(m, n))
    lo, hi = -rng.uniform(0.1, 2, n), rng.uniform(0.1, 2, n)
    mid = a @ rng.uniform(lo, hi)  # a feasible point's rows, so the LP is feasible
    rlo = np.where(rng.random(m) < 0.5, mid - rng.uniform(0, 1, m), -np.inf)
    rhi = np.where(rng.random(m) < 0.7, mid + rng.uniform(0, 1, m), np.inf)
    c = rng.normal(size=n)
    rows = [a[i] for i in range(m) if np.isfinite(rhi[i])] + [-a[i] for i in range(m) if np.isfinite(rlo[i])]
    rhs = [rhi[i] for i in range(m) if np.isfinite(rhi[i])] + [-rlo[i] for i in range(m) if np.isfinite(rlo[i])]
    res = linprog(c, A_ub=np.array(rows) if rows else None, b_ub=np.array(rhs) if rhs else None, bounds=list(zip(lo, hi)), method="highs")
    assert res.status == 0
    a_sp = sparse.csr_matrix(a)
    abs_t = abs(a_sp).T.tocsr()
    for _ in range(20):
        y = rng.normal(size=m) * rng.choice([0.0, 1.0, 10.0])
        bound, mag = _dual_bound(y, a_sp, abs_t, c, lo, hi, rlo, rhi)
        assert bound <= res.fun + 1e-9 * (1 + mag)
    # The optimal multipliers (scipy's marginals, recombined per row) give the optimum.
    y_opt = np.zeros(m)
    k = 0
    for i in range(m):
        if np.isfinite(rhi[i]):
            y_opt[i] += res.ineqlin.marginals[k]
            k += 1
    for i in range(m):
        if np.isfinite(rlo[i]):
            y_opt[i] -= res.ineqlin.marginals[k]
            k += 1
    bound, mag = _dual_bound(y_opt, a_sp, abs_t, c, lo, hi, rlo, rhi)
    assert abs(bound - res.fun) <= 1e-6 * (1 + mag)
