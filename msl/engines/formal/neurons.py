"""Branch and bound by neuron splitting with optimised linear bounds (high-dimensional inputs).

Input splitting (:mod:`msl.engines.formal.bab`) stalls on a 784-pixel image: bisecting one
input of 784 barely moves a bound. The fast verifiers split ReLUs instead, as done here:

* **bounds** (:class:`NeuronBounder`): CROWN-style back-substitution of the spec rows through
  the network, batched in torch over many subproblems at once (on the CPU or a GPU; the
  optimisation steps in float32, the bound that is claimed recomputed in float64). Before any
  split, each hidden layer's bounds are tightened the same way (:meth:`NeuronBounder.tighten`).
  Each unstable ReLU is relaxed by its chord from above and by ``alpha * z`` from below; the
  lower slopes ``alpha`` (one per subproblem, spec row and neuron) are optimised by a few steps
  of gradient ascent (Adam) on the bound, as alpha-CROWN does — every ``alpha`` in [0, 1] gives
  a valid bound, so optimising them cannot cost soundness.
* **splits**: a subproblem fixes some ReLUs active (``z >= 0``) or inactive (``z <= 0``). A split
  ReLU is exact (identity or zero) on its side, with its pre-activation bounds cut at 0, and its
  constraint enters the bound by a Lagrange multiplier ``beta >= 0`` (beta-CROWN: ``g - beta z``
  for an active split, ``g + beta z`` for an inactive one, both at most ``g`` on the
  subproblem), optimised with ``alpha``. The other hidden bounds are the root's, which hold on
  every subproblem (a subset of the root's inputs).
* **branching** (BaBSR-like): the unstable ReLU whose chord intercept costs the open spec rows
  most (``|negative coefficient| * u * -l / (u - l)``); the subproblems with the lowest bounds
  are split first, a batch at a time, each child warm-started from its parent's multipliers.
* **counterexamples**: the minimiser of each subproblem's linear bound is tried as a candidate
  (replayed through the original model by ``confirm``); the PGD falsifier of
  :mod:`msl.engines.formal.falsify` runs between slices (:func:`~msl.engines.formal.verify.verify`).

Soundness for the network as it executes in float32: the root's hidden bounds are widened by
the accumulated float32 error (:func:`~msl.engines.formal.rounding.layer_errors`), so relaxations
and splits are about the *executed* pre-activations; each layer's own rounding error is charged
at ``|coefficient| * local error`` in the back-substitution, and the output layer's at ``|C|``.
The bound itself is computed in float64; its rounding error is a small multiple of ``2**-53``
times the magnitude of its terms, which a last pass computes with every coefficient taken in
absolute value; a spec row only counts as proved when its bound clears
:func:`~msl.engines.formal.bounds.proof_margin` (1e-8 of that magnitude), as in
:mod:`msl.engines.formal.bounds`. A subproblem with no unstable ReLU left that the bound does not
prove is not decided here: it makes the answer ``unknown``, never ``unsat``.

Work is counted in subproblems bounded (``stats.boxes``), so a work budget gives the same
answer on any machine; the clock is checked between the optimisation steps of a batch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from msl.engines.formal.bab import Confirm, SearchOutcome, SearchStats
from msl.engines.formal.bounds import SpecBounder, proof_margin
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import InputRegion, Property
from msl.engines.formal.rounding import layer_errors
from msl.engines.formal.witness import Witness

if TYPE_CHECKING:
    import torch

#: Networks with at least this many inputs (and plain boxes as regions) are searched by
#: neuron splitting; smaller ones by input splitting, which is exact and fast there.
NEURON_SPLIT_MIN_INPUTS = 64
#: Adam steps on the root bound, and on each batch of children.
ROOT_STEPS = 40
BATCH_STEPS = 12
#: Adam steps on each hidden layer's bounds at the root (see :meth:`NeuronBounder.tighten`).
TIGHTEN_STEPS = 20
#: Adam learning rates of the lower slopes and of the split multipliers.
LR_ALPHA = 0.1
LR_BETA = 0.05
#: Spec rows x subproblems bounded together (the batch of parents is this over twice the rows).
BATCH_ROWS = 1024
#: The open subproblems' multipliers are kept (float32) within this many bytes; beyond it the
#: search stops with ``unknown``.
POOL_BYTES = 1 << 30
#: Candidates replayed through the original model per batch.
CANDIDATES = 8


def prefers_neuron_split(net: PLNetwork, prop: Property) -> bool:
    """Whether :func:`~msl.engines.formal.verify.verify` should split neurons: many inputs, a
    hidden layer to split, and regions that are plain boxes (the bounds here use no linear
    input constraints)."""
    return (
        net.input_dim >= NEURON_SPLIT_MIN_INPUTS
        and len(net.layers) > 1
        and all(not r.constraints for r in prop.regions)
    )


@dataclass
class NeuronStats(SearchStats):
    """:class:`~msl.engines.formal.bab.SearchStats` (``boxes`` counts subproblems bounded)
    plus what neuron splitting adds."""

    splits: int = 0
    root_unstable: int = 0
    root_lower: float = float("inf")
    undecided_leaves: int = 0
    max_open: int = 0
    tasks: int = 0
    tighten_seconds: float = 0.0
    device: str = "cpu"


@dataclass
class _Pool:
    """Open subproblems of one region: split state per hidden layer ((N, n_k) int8: +1 active,
    -1 inactive, 0 free), multipliers per hidden layer ((N, K, n_k) float32), the rows'
    lower bounds (N, K), open disjuncts (N, D) and depths (N,)."""

    split: list[torch.Tensor]
    alpha: list[torch.Tensor]
    beta: list[torch.Tensor]
    lower: torch.Tensor
    open_: torch.Tensor
    depth: torch.Tensor

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def take(self, idx: torch.Tensor) -> _Pool:
        return _Pool(
            [s[idx] for s in self.split], [a[idx] for a in self.alpha], [b[idx] for b in self.beta],
            self.lower[idx], self.open_[idx], self.depth[idx],
        )

    @staticmethod
    def cat(parts: list[_Pool]) -> _Pool:
        import torch

        parts = [p for p in parts if len(p)]
        n_layers = len(parts[0].split)
        return _Pool(
            [torch.cat([p.split[k] for p in parts]) for k in range(n_layers)],
            [torch.cat([p.alpha[k] for p in parts]) for k in range(n_layers)],
            [torch.cat([p.beta[k] for p in parts]) for k in range(n_layers)],
            torch.cat([p.lower for p in parts]),
            torch.cat([p.open_ for p in parts]),
            torch.cat([p.depth for p in parts]),
        )


@dataclass
class _Bounds:
    """What one evaluation of the bound gives for N subproblems and K rows."""

    lower: torch.Tensor  # (N, K)
    margin: torch.Tensor  # (N, K): proof margin of each row's bound
    coef: torch.Tensor  # (N, K, d): the linear lower bound's input coefficients
    score: list[torch.Tensor]  # per hidden layer (N, K, n_k): each row's branching score


class NeuronBounder:
    """Optimised linear lower bounds of spec rows over one input box, for many subproblems
    (sets of split ReLUs) at once; see the module docstring for the method and its soundness."""

    def __init__(self, net: PLNetwork, rows: SpecRows, region: InputRegion, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        f64 = torch.float64
        layers = net.folded
        lo = np.asarray(region.lower, dtype=np.float64)
        hi = np.asarray(region.upper, dtype=np.float64)
        # Root hidden bounds (symbolic intervals + back-substitution, with their own float64
        # margins), widened by the float32 execution error so that they bound executed values.
        bounder = SpecBounder(layers, rows.matrix, rows.offset)
        pre_lo, pre_hi, _ = bounder.hidden_bounds(lo[None], hi[None])
        local, total = layer_errors(layers, lo[None], hi[None], pre_lo, pre_hi)
        # ``total`` also holds the output layer's error: zip stops at the hidden layers
        self.pre_lo = [
            torch.tensor(p[0] - t[0], dtype=f64, device=self.device) for p, t in zip(pre_lo, total, strict=False)
        ]
        self.pre_hi = [
            torch.tensor(p[0] + t[0], dtype=f64, device=self.device) for p, t in zip(pre_hi, total, strict=False)
        ]

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.asarray(a, dtype=np.float64), dtype=f64, device=self.device)

        spec = np.asarray(rows.matrix, dtype=np.float64)
        offset = np.asarray(rows.offset, dtype=np.float64)
        last = layers[-1]
        # g = C (W_L h + b_L + e_L) - d >= (C W_L) h + C b_L - d - |C| local_L.
        self.last_w = t(spec @ last.weight)
        self.last_b = t(spec @ last.bias - offset - np.abs(spec) @ local[-1][0])
        self.last_w_abs = t(np.abs(spec) @ np.abs(last.weight))
        self.last_b_abs = t(np.abs(spec) @ np.abs(last.bias) + np.abs(offset) + np.abs(spec) @ local[-1][0])
        self.weights = [t(lay.weight) for lay in layers[:-1]]
        self.weights_abs = [w.abs() for w in self.weights]
        self.biases = [t(lay.bias) for lay in layers[:-1]]
        self.biases_abs = [b.abs() for b in self.biases]
        self.local = [t(e[0]) for e in local[:-1]]
        self.lo, self.hi = t(lo), t(hi)
        self.center = 0.5 * (self.lo + self.hi)
        self.radius = 0.5 * (self.hi - self.lo)
        self.absx = torch.maximum(self.lo.abs(), self.hi.abs())
        self.rows = int(spec.shape[0])
        self.sizes = [int(w.shape[0]) for w in self.weights]
        self._fast: NeuronBounder | None = None

    #: Tensors cast to float32 for the optimisation steps (see :meth:`fast`).
    _TENSORS = (
        "last_w", "last_b", "last_w_abs", "last_b_abs", "lo", "hi", "center", "radius", "absx",
    )
    _LISTS = ("weights", "weights_abs", "biases", "biases_abs", "local", "pre_lo", "pre_hi")

    def fast(self) -> NeuronBounder:
        """This bounder in float32, for the optimisation steps only: they just choose the
        multipliers (any choice is valid); the bound that is claimed is always recomputed in
        float64 with its margin."""
        if self._fast is None:
            out = copy.copy(self)
            for name in self._TENSORS:
                setattr(out, name, getattr(self, name).to(self.torch.float32))
            for name in self._LISTS:
                setattr(out, name, [x.to(self.torch.float32) for x in getattr(self, name)])
            self._fast = out
        return self._fast

    def tighten(self, steps: int, deadline: float) -> bool:
        """Tighten the root's hidden bounds layer by layer (alpha-CROWN's intermediate bounds):
        each unstable neuron of layer k is bounded from both sides by the optimised
        back-substitution through layers ``< k`` (already tightened), charged layer k's own
        float32 error so that it bounds the executed value. False when the deadline passed."""
        torch = self.torch
        for k in range(1, len(self.weights)):
            unstable = torch.nonzero((self.pre_lo[k] < 0) & (self.pre_hi[k] > 0)).flatten()
            if len(unstable) == 0:
                continue
            w, b, e = self.weights[k][unstable], self.biases[k][unstable], self.local[k][unstable]
            sub = copy.copy(self)
            for name in ("weights", "weights_abs", "biases", "biases_abs", "local", "pre_lo", "pre_hi", "sizes"):
                setattr(sub, name, getattr(self, name)[:k])
            # z >= w h + b - e and -z >= -w h - b - e.
            sub.last_w = torch.cat([w, -w])
            sub.last_b = torch.cat([b - e, -b - e])
            sub.last_w_abs = sub.last_w.abs()
            sub.last_b_abs = torch.cat([b.abs() + e, b.abs() + e])
            sub.rows = 2 * len(unstable)
            sub._fast = None
            split = [torch.zeros((1, n), dtype=torch.int8, device=self.device) for n in sub.sizes]
            alpha = sub.initial_alpha(split)
            beta = [torch.zeros_like(a) for a in alpha]
            weight = torch.ones((1, sub.rows), dtype=torch.float64, device=self.device)
            res = sub.optimise(split, alpha, beta, weight, steps, deadline, stop_at_zero=False)
            if res is None:
                return False
            low = (res[0].lower - res[0].margin)[0]
            n = len(unstable)
            self.pre_lo[k][unstable] = torch.maximum(self.pre_lo[k][unstable], low[:n])
            self.pre_hi[k][unstable] = torch.minimum(self.pre_hi[k][unstable], -low[n:])
        return True

    def restrict(self, rows: list[int]) -> NeuronBounder:
        """The same bounder for a subset of the spec rows (the root's hidden bounds kept)."""
        out = copy.copy(self)
        out.last_w, out.last_b = self.last_w[rows], self.last_b[rows]
        out.last_w_abs, out.last_b_abs = self.last_w_abs[rows], self.last_b_abs[rows]
        out.rows = len(rows)
        out._fast = None
        return out

    # ------------------------------------------------------------------ relaxation
    def effective(self, split: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each subproblem's pre-activation bounds: the root's cut at 0 on the split side."""
        torch = self.torch
        los, his = [], []
        for k, s in enumerate(split):
            lo = self.pre_lo[k].expand(s.shape)
            hi = self.pre_hi[k].expand(s.shape)
            los.append(torch.where(s > 0, lo.clamp(min=0.0), lo))
            his.append(torch.where(s < 0, hi.clamp(max=0.0), hi))
        return los, his

    def initial_alpha(self, split: list[torch.Tensor]) -> list[torch.Tensor]:
        """CROWN's adaptive lower slopes (1 where the neuron's upper bound exceeds -lower)."""
        los, his = self.effective(split)
        return [
            (hi > -lo).to(self.torch.float64)[:, None, :].expand(-1, self.rows, -1).contiguous()
            for lo, hi in zip(los, his, strict=True)
        ]

    def bound(
        self,
        split: list[torch.Tensor],
        alpha: list[torch.Tensor],
        beta: list[torch.Tensor],
        final: bool = False,
    ) -> _Bounds:
        """Lower bounds (N, K) of every spec row on every subproblem for the given multipliers
        (``alpha`` in [0, 1], ``beta`` >= 0, both (N, K, n_k) per hidden layer).

        With ``final`` the margin (from the terms' magnitude), the input coefficients and the
        branching scores are computed too (no gradient needed there).
        """
        torch = self.torch
        los, his = self.effective(split)
        n = split[0].shape[0]
        lam = self.last_w.expand(n, -1, -1)
        const = self.last_b.expand(n, -1)
        mag_lam = self.last_w_abs.expand(n, -1, -1) if final else None
        mag_const = self.last_b_abs.expand(n, -1) if final else None
        scores: list[torch.Tensor] = []
        for k in range(len(self.weights) - 1, -1, -1):
            lo, hi = los[k], his[k]
            active = lo >= 0.0
            unstable = (lo < 0.0) & (hi > 0.0)
            denom = torch.where(unstable, hi - lo, torch.ones_like(hi))
            chord = torch.where(unstable, hi / denom, active.to(hi.dtype))  # upper slope
            icpt = torch.where(unstable, -chord * lo, torch.zeros_like(lo))  # upper intercept
            low = torch.where(unstable[:, None, :], alpha[k], active[:, None, :].to(hi.dtype))
            pos, neg = lam.clamp(min=0.0), lam.clamp(max=0.0)
            lam_z = pos * low + neg * chord[:, None, :]
            const = const + (neg * icpt[:, None, :]).sum(-1)
            # The split constraints, by Lagrange: g - beta z (active split), g + beta z (inactive).
            lam_z = lam_z - beta[k] * split[k][:, None, :].to(hi.dtype)
            const = const + lam_z @ self.biases[k] - lam_z.abs() @ self.local[k]
            if final:
                assert mag_lam is not None and mag_const is not None
                gap = torch.where(unstable, hi * -lo / denom, torch.zeros_like(lo))
                scores.append(neg.abs() * gap[:, None, :])
                mag_z = mag_lam * torch.maximum(low, chord[:, None, :]) + beta[k]
                mag_const = (
                    mag_const + (mag_lam * icpt[:, None, :]).sum(-1) + mag_z @ (self.biases_abs[k] + self.local[k])
                )
                mag_lam = mag_z @ self.weights_abs[k]
            lam = lam_z @ self.weights[k]
        lower = lam @ self.center - lam.abs() @ self.radius + const
        if not final:
            return _Bounds(lower, lower, lam, [])
        assert mag_lam is not None and mag_const is not None
        margin = torch.as_tensor(proof_margin((mag_lam @ self.absx + mag_const).cpu().numpy()), device=self.device)
        scores.reverse()
        return _Bounds(lower, margin, lam, scores)

    def optimise(
        self,
        split: list[torch.Tensor],
        alpha: list[torch.Tensor],
        beta: list[torch.Tensor],
        weight: torch.Tensor,
        steps: int,
        deadline: float,
        stop_at_zero: bool = True,
    ) -> tuple[_Bounds, list[torch.Tensor], list[torch.Tensor]] | None:
        """Adam on ``alpha`` and ``beta`` for ``steps`` steps, maximising the bounds of the rows
        with ``weight`` (N, K) > 0; each row keeps its best multipliers (the rows and
        subproblems are independent). With ``stop_at_zero`` it stops once every weighted row's
        bound is positive. None when the deadline passed."""
        torch = self.torch
        fast = self.fast()
        a = [x.detach().to(torch.float32).clone().requires_grad_(True) for x in alpha]
        b = [x.detach().to(torch.float32).clone().requires_grad_(True) for x in beta]
        best_a = [x.detach().clone() for x in a]
        best_b = [x.detach().clone() for x in b]
        best = None
        has_split = any(bool((s != 0).any()) for s in split)
        params = [{"params": a, "lr": LR_ALPHA}] + ([{"params": b, "lr": LR_BETA}] if has_split else [])
        opt = torch.optim.Adam(params)
        for _ in range(steps):
            if time.monotonic() > deadline:
                return None
            lower = fast.bound(split, a, b).lower
            with torch.no_grad():
                if best is None:
                    best = lower.detach().clone()
                else:
                    better = lower > best
                    best = torch.where(better, lower, best)
                    for x, bx in zip(a, best_a, strict=True):
                        bx.copy_(torch.where(better[:, :, None], x, bx))
                    for x, bx in zip(b, best_b, strict=True):
                        bx.copy_(torch.where(better[:, :, None], x, bx))
                if stop_at_zero and bool(((best > 0.0) | (weight <= 0.0)).all()):
                    break  # every row that matters is (very likely) proved: the final pass checks
            opt.zero_grad(set_to_none=True)
            (-(lower * weight).sum()).backward()
            opt.step()
            with torch.no_grad():
                for x in a:
                    x.clamp_(0.0, 1.0)
                for x in b:
                    x.clamp_(min=0.0)
        if time.monotonic() > deadline:
            return None
        with torch.no_grad():
            out = self.bound(
                split, [x.to(torch.float64) for x in best_a], [x.to(torch.float64) for x in best_b], final=True
            )
        return out, best_a, best_b


class NeuronSplitSearch:
    """Branch and bound over ReLU splits for the (box) regions of a property, one after the
    other. The interface is :class:`~msl.engines.formal.bab.InputSplitSearch`'s: :meth:`run`
    until done, paused (a time or work slice) or timed out."""

    def __init__(
        self,
        net: PLNetwork,
        regions: tuple[InputRegion, ...],
        rows: SpecRows,
        confirm: Confirm,
        deadline: float,
        device: str = "cpu",
    ) -> None:
        import torch

        self.torch = torch
        self.net = net
        self.regions = regions
        self.rows = rows
        self.confirm = confirm
        self.deadline = deadline
        self.device = device
        self.full_member = torch.tensor(rows.member, device=device)  # (D, K)
        self.member = self.full_member  # the current task's disjuncts x rows
        self.tasks: list[tuple[NeuronBounder, torch.Tensor, _Pool]] = []
        self.stats = NeuronStats(device=device)
        self.region_index = 0
        self.bounder: NeuronBounder | None = None
        self.pool: _Pool | None = None
        self.undecided = 0
        self._scores: _Scores | None = None

    def run(self, until: float, until_boxes: int | None = None) -> SearchOutcome:
        """Search until done, or until ``until`` / ``until_boxes`` subproblems in all
        (``paused``), or the deadline (``timeout``)."""
        torch = self.torch
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the machine is small and shared; see msl.engines.formal.runtime
        try:
            return self._run(until, until_boxes)
        finally:
            torch.set_num_threads(threads)

    def _run(self, until: float, until_boxes: int | None) -> SearchOutcome:
        while True:
            if self.pool is not None and len(self.pool):
                now = time.monotonic()
                if now > self.deadline:
                    return SearchOutcome("timeout", None, self.stats)
                if now > until or (until_boxes is not None and self.stats.boxes >= until_boxes):
                    return SearchOutcome("paused", None, self.stats)
                outcome = self._step()
            elif self.tasks:
                self.bounder, self.member, root = self.tasks.pop(0)
                self.pool = None
                outcome = self._bound_children(root, 1)
            elif self.region_index < len(self.regions):
                outcome = self._root(self.regions[self.region_index])
                self.region_index += 1
            else:
                break
            if outcome is not None:
                return outcome
        if time.monotonic() > self.deadline:
            return SearchOutcome("timeout", None, self.stats)
        return SearchOutcome("unknown" if self.undecided else "unsat", None, self.stats)

    # ------------------------------------------------------------------------------
    def _root(self, region: InputRegion) -> SearchOutcome | None:
        """Bound a region's root with every spec row; each disjunct left open becomes a task of
        its own (its rows only: far cheaper to bound), the least refuted first."""
        torch = self.torch
        t0 = time.monotonic()
        b = NeuronBounder(self.net, self.rows, region, self.device)
        done = b.tighten(TIGHTEN_STEPS, self.deadline)
        self.stats.tighten_seconds += time.monotonic() - t0
        if not done:
            return SearchOutcome("timeout", None, self.stats)
        self.bounder, self.member, self.pool = b, self.full_member, None
        split = [torch.zeros((1, n), dtype=torch.int8, device=b.device) for n in b.sizes]
        alpha = b.initial_alpha(split)
        beta = [torch.zeros_like(a) for a in alpha]
        open_ = torch.ones((1, self.member.shape[0]), dtype=torch.bool, device=b.device)
        st = self.stats
        st.root_unstable += int(
            sum(int(((lo < 0) & (hi > 0)).sum()) for lo, hi in zip(b.pre_lo, b.pre_hi, strict=True))
        )
        zeros = torch.zeros((1, b.rows), dtype=torch.float64, device=b.device)
        pool = _Pool(split, alpha, beta, zeros, open_, torch.zeros(1, dtype=torch.int64, device=b.device))
        out = self._bound_children(pool, ROOT_STEPS)
        if out is not None or self.pool is None or not len(self.pool):
            self.pool = None
            return out
        root = self.pool
        self.pool = None
        lower = root.lower[0]
        dis = [int(j) for j in torch.nonzero(root.open_[0]).flatten()]
        st.root_lower = (
            min(st.root_lower, min(float(lower[self.full_member[j]].max()) for j in dis)) if dis else st.root_lower
        )
        dis.sort(key=lambda j: float(lower[self.full_member[j]].max()))
        for j in dis:
            rows = [int(r) for r in torch.nonzero(self.full_member[j]).flatten()]
            task_root = _Pool(
                root.split, [a[:, rows] for a in root.alpha], [x[:, rows] for x in root.beta], root.lower[:, rows],
                torch.ones((1, 1), dtype=torch.bool, device=b.device), root.depth,
            )
            st.tasks += 1
            self.tasks.append(
                (b.restrict(rows), torch.ones((1, len(rows)), dtype=torch.bool, device=b.device), task_root)
            )
        return None

    def _step(self) -> SearchOutcome | None:
        """Split the batch of open subproblems with the lowest bounds, bound the children."""
        torch = self.torch
        b = self.bounder
        pool = self.pool
        assert b is not None and pool is not None
        parents = max(1, BATCH_ROWS // (2 * b.rows))
        key = self._key(pool.lower, pool.open_)
        order = torch.argsort(key, stable=True)
        take, keep = order[:parents], order[parents:]
        batch = pool.take(take)
        self.pool = pool.take(keep)
        assert self._scores is not None
        score = self._scores.take(take)
        children = self._branch(batch, score)
        self._scores = self._scores.take(keep)
        if children is None:
            return None
        return self._bound_children(children, BATCH_STEPS)

    def _key(self, lower: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
        """Per subproblem, how far its least refuted open disjunct is from being refuted."""
        torch = self.torch
        dis = (
            torch.where(self.member[None, :, :], lower[:, None, :], torch.full_like(lower[:, None, :], -torch.inf))
            .max(-1)
            .values
        )
        return torch.where(open_, dis, torch.full_like(dis, torch.inf)).min(-1).values

    def _branch(self, batch: _Pool, score: _Scores) -> _Pool | None:
        torch = self.torch
        flat = torch.cat(score.score, dim=1)  # (N, sum n_k)
        unstable = torch.cat(score.unstable, dim=1)
        # Neurons with no intercept cost still split before none: rank by score, then gap.
        rank = torch.where(unstable, flat + 1e-9 * torch.cat(score.gap, dim=1), torch.full_like(flat, -1.0))
        best = rank.argmax(dim=1)
        can = unstable.any(dim=1)
        if not bool(can.all()):
            # Nothing left to split and not refuted: the relaxation is exact but the
            # multipliers did not reach the optimum; these stay undecided.
            n_leaf = int((~can).sum())
            self.undecided += n_leaf
            self.stats.undecided_leaves += n_leaf
            idx = torch.nonzero(can).flatten()
            batch, best = batch.take(idx), best[idx]
        n = len(batch)
        if n == 0:
            return None
        offsets = np.cumsum([0, *[s.shape[1] for s in batch.split]])
        split = [torch.cat([s, s]) for s in batch.split]
        rows = torch.arange(n, device=best.device)
        for k in range(len(split)):
            sel = (best >= int(offsets[k])) & (best < int(offsets[k + 1]))
            idx = rows[sel]
            j = best[sel] - int(offsets[k])
            split[k][idx, j] = 1
            split[k][idx + n, j] = -1
        self.stats.splits += n
        return _Pool(
            split,
            [torch.cat([a, a]) for a in batch.alpha],
            [torch.cat([x, x]) for x in batch.beta],
            torch.cat([batch.lower, batch.lower]),
            torch.cat([batch.open_, batch.open_]),
            torch.cat([batch.depth, batch.depth]) + 1,
        )

    def _bound_children(self, children: _Pool, steps: int) -> SearchOutcome | None:
        """Bound the children, drop the refuted ones, try their candidates, add the rest."""
        torch = self.torch
        b = self.bounder
        assert b is not None
        st = self.stats
        st.batches += 1
        st.boxes += len(children)
        st.max_depth = max(st.max_depth, int(children.depth.max()))
        t0 = time.monotonic()
        # Rows of open disjuncts are optimised; the others are done.
        weight = (children.open_.to(torch.float64) @ self.member.to(torch.float64)).clamp(max=1.0)
        res = b.optimise(children.split, children.alpha, children.beta, weight, steps, self.deadline)
        st.bound_seconds += time.monotonic() - t0
        if res is None:
            return SearchOutcome("timeout", None, st)
        bounds, alpha, beta = res
        proved_row = bounds.lower > bounds.margin  # (N, K)
        refuted = (self.member[None, :, :] & proved_row[:, None, :]).any(-1)  # (N, D)
        open_ = children.open_ & ~refuted
        alive = open_.any(dim=1)
        witness = self._candidates(bounds, open_, alive)
        if witness is not None:
            return SearchOutcome("sat", witness, st)
        idx = torch.nonzero(alive).flatten()
        if len(idx) == 0:
            return None
        los, his = b.effective([s[idx] for s in children.split])
        unstable = [(lo < 0) & (hi > 0) for lo, hi in zip(los, his, strict=True)]
        gap = [
            torch.where(u, hi * -lo / torch.where(u, hi - lo, torch.ones_like(hi)), torch.zeros_like(hi))
            for u, lo, hi in zip(unstable, los, his, strict=True)
        ]
        # Only the rows of open disjuncts that are not proved yet steer the branching.
        need = (((open_.to(torch.float64) @ self.member.to(torch.float64)) > 0) & ~proved_row)[idx]
        scores = [(s[idx] * need[:, :, None]).sum(1) for s in bounds.score]
        new = _Pool(
            [s[idx] for s in children.split],
            [a[idx].to(torch.float32) for a in alpha],
            [x[idx].to(torch.float32) for x in beta],
            bounds.lower[idx],
            open_[idx],
            children.depth[idx],
        )
        new_scores = _Scores(scores, unstable, gap)
        if self.pool is None or not len(self.pool):
            self.pool, self._scores = new, new_scores
        else:
            self.pool = _Pool.cat([self.pool, new])
            self._scores = _Scores.cat([self._scores, new_scores])
        st.max_open = max(st.max_open, len(self.pool))
        # Bytes per open subproblem: multipliers (float32), split signs, branching information.
        per = sum((8 * b.rows + 1 + 17) * n for n in b.sizes)
        if len(self.pool) * per > POOL_BYTES:
            self.undecided += len(self.pool)
            self.pool = None
            return SearchOutcome("unknown", None, st)
        return None

    def _candidates(self, bounds: _Bounds, open_: torch.Tensor, alive: torch.Tensor) -> Witness | None:
        """Replay the minimisers of the weakest open rows' linear bounds of live subproblems."""
        torch = self.torch
        b = self.bounder
        assert b is not None
        idx = torch.nonzero(alive).flatten()
        if len(idx) == 0:
            return None
        need = (open_[idx].to(torch.float64) @ self.member.to(torch.float64)) > 0
        lower = torch.where(need, bounds.lower[idx], torch.full_like(bounds.lower[idx], torch.inf))
        row = lower.argmin(dim=1)
        coef = bounds.coef[idx, row]  # (M, d)
        pts = torch.where(coef > 0, b.lo, b.hi).cpu().numpy()
        val, _ = self.rows.objective(self.net.forward(pts))
        for i in np.argsort(val)[:CANDIDATES]:
            if val[i] >= 0:
                break
            self.stats.candidates += 1
            w = self.confirm(pts[i])
            if w is not None:
                return w
        return None


@dataclass
class _Scores:
    """Branching information of the open subproblems, aligned with the pool."""

    score: list[torch.Tensor]  # per hidden layer (N, n_k)
    unstable: list[torch.Tensor]
    gap: list[torch.Tensor]

    def take(self, idx: torch.Tensor) -> _Scores:
        return _Scores([s[idx] for s in self.score], [u[idx] for u in self.unstable], [g[idx] for g in self.gap])

    @staticmethod
    def cat(parts: list[_Scores]) -> _Scores:
        import torch

        n = len(parts[0].score)
        return _Scores(
            [torch.cat([p.score[k] for p in parts]) for k in range(n)],
            [torch.cat([p.unstable[k] for p in parts]) for k in range(n)],
            [torch.cat([p.gap[k] for p in parts]) for k in range(n)],
        )
