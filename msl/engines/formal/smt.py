"""z3 over the reals: the exact arbiter on the boxes the bounds could not decide.

A leaf query asks: is there an ``x`` in the box (and the region's linear constraints) whose
network output meets one of the still-open disjuncts of the unsafe condition? The network is
encoded with its float32 parameters as exact rationals (``Fraction(float)``), so z3 decides the
question for the network read over the reals. ReLUs whose phase the (margin-widened) bounds of
:mod:`msl.engines.formal.bounds` decide on the box are fixed (``h = z`` or dropped); each
undecided ReLU gets ``h >= 0, h >= z, (h <= 0 or h <= z)`` plus the triangle ``h <= u(z-l)/(u-l)``
and ``l <= z <= u``, which hold on the box and help z3's simplex.

The query is written as SMT-LIB text and parsed by z3 (building 10^4 terms through the Python
API costs far more than the solving on a small box).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from msl.engines.formal.bounds import Leaf
from msl.engines.formal.falsify import SpecRows
from msl.engines.formal.network import PLNetwork


def rational(value: float | Fraction) -> str:
    """SMT-LIB text of the exact rational of ``value``."""
    q = value if isinstance(value, Fraction) else Fraction(float(value))
    body = str(abs(q.numerator)) if q.denominator == 1 else f"(/ {abs(q.numerator)} {q.denominator})"
    return f"(- {body})" if q < 0 else body


@dataclass(frozen=True)
class LeafAnswer:
    status: str  # "sat", "unsat" or "unknown"
    x: np.ndarray | None
    variables: int
    constraints: int
    seconds: float


class NetworkText:
    """The exact rationals of a network's parameters as SMT-LIB strings, computed once."""

    def __init__(self, net: PLNetwork) -> None:
        self.net = net
        self.weights: list[list[list[tuple[int, str]]]] = []
        self.biases: list[list[str]] = []
        for layer in net.layers:
            rows = []
            for row in layer.weight:
                nz = np.nonzero(row)[0]
                rows.append([(int(i), rational(row[i])) for i in nz])
            self.weights.append(rows)
            self.biases.append([rational(b) for b in layer.bias])
        self.shift = [rational(s) for s in net.input_shift]
        self.gain = [rational(g) for g in net.input_gain]

    def layer_terms(self, k: int, j: int, inputs: list[str | None]) -> str:
        """``sum_i w_ji * inputs_i + b_j`` (inputs that are None are known zero)."""
        terms = [f"(* {w} {inputs[i]})" for i, w in self.weights[k][j] if inputs[i] is not None]
        terms.append(self.biases[k][j])
        return terms[0] if len(terms) == 1 else "(+ " + " ".join(terms) + ")"


def _within(var: str, terms: str, error: list[np.ndarray] | None, k: int, j: int) -> str:
    """``var = terms``, or ``var = terms + e`` with ``|e| <= eps`` where layer ``k``'s neuron ``j``
    rounds by up to ``eps`` in float32 (an equality keeps z3's elimination cheap)."""
    e = 0.0 if error is None else float(error[k][j])
    if e == 0.0:
        return f"(= {var} {terms})"
    if not np.isfinite(e):
        return "true"
    # Rounded up to a power of two: a short rational keeps z3's arithmetic cheap, and a larger
    # error bound is still sound.
    bound = rational(float(2.0 ** np.ceil(np.log2(e))))
    err = f"e_{var}"
    return (f"(and (= {var} (+ {terms} {err})) (<= (- {bound}) {err}) (<= {err} {bound}))")


class LeafSolver:
    """Builds and solves leaf queries for one network and one unsafe condition."""

    def __init__(self, net: PLNetwork, rows: SpecRows) -> None:
        self.net = net
        self.rows = rows
        self._text: NetworkText | None = None

    @property
    def text(self) -> NetworkText:
        """Built on first use: most searches never call z3."""
        if self._text is None:
            self._text = NetworkText(self.net)
        return self._text

    def encode(self, leaf: Leaf, rhs_shift: np.ndarray) -> tuple[str, int, int]:
        """SMT-LIB text of the leaf query, with its number of variables and assertions;
        ``rhs_shift`` (K,) is added to each unsafe row's right-hand side."""
        lo, hi, region, disjuncts, pre_lo, pre_hi = (
            leaf.lo,
            leaf.hi,
            leaf.region,
            leaf.disjuncts,
            leaf.pre_lo,
            leaf.pre_hi,
        )
        error = leaf.layer_error  # each layer's float32 rounding, modelled as z = W h + b + e
        t = self.text
        net = self.net
        out: list[str] = []
        n_vars = 0
        n_asserts = 0
        d = net.input_dim
        for i in range(d):
            out.append(f"(declare-fun x{i} () Real)")
            out.append(f"(assert (and (<= {rational(lo[i])} x{i}) (<= x{i} {rational(hi[i])})))")
        n_vars += d
        n_asserts += d
        for c in region.constraints:
            terms = " ".join(f"(* {rational(a)} x{i})" for i, a in enumerate(c.coeffs) if a != 0.0) or "0"
            op = "<" if c.strict else "<="
            out.append(f"(assert ({op} (+ 0 {terms}) {rational(c.rhs)}))")
            n_asserts += 1
        if net.has_normalisation:
            names: list[str | None] = []
            for i in range(d):
                out.append(f"(define-fun n{i} () Real (* {t.gain[i]} (+ x{i} {t.shift[i]})))")
                names.append(f"n{i}")
        else:
            names = [f"x{i}" for i in range(d)]
        for k in range(len(net.layers) - 1):
            nxt: list[str | None] = []
            for j in range(net.layers[k].shape[0]):
                lo_kj, hi_kj = float(pre_lo[k][j]), float(pre_hi[k][j])
                if hi_kj <= 0.0:
                    nxt.append(None)
                    continue
                z = f"z{k}_{j}"
                out.append(f"(declare-fun {z} () Real)")
                out.append(f"(declare-fun e_{z} () Real)")
                out.append(f"(assert {_within(z, t.layer_terms(k, j, names), error, k, j)})")
                n_vars += 1
                n_asserts += 1
                if lo_kj >= 0.0:
                    nxt.append(z)
                    continue
                h = f"h{k}_{j}"
                out.append(f"(declare-fun {h} () Real)")
                chord = Fraction(hi_kj) / (Fraction(hi_kj) - Fraction(lo_kj))
                out.append(
                    f"(assert (and (>= {h} 0) (>= {h} {z}) (or (<= {h} 0) (<= {h} {z}))"
                    f" (<= {rational(lo_kj)} {z}) (<= {z} {rational(hi_kj)})"
                    f" (<= {h} (* {rational(chord)} (- {z} {rational(lo_kj)})))))"
                )
                n_vars += 1
                n_asserts += 1
                nxt.append(h)
            names = nxt
        last = len(net.layers) - 1
        ys = []
        for j in range(net.output_dim):
            out.append(f"(declare-fun y{j} () Real)")
            out.append(f"(declare-fun e_y{j} () Real)")
            out.append(f"(assert {_within(f'y{j}', t.layer_terms(last, j, names), error, last, j)})")
            ys.append(f"y{j}")
        clauses = []
        for dj in disjuncts:
            atoms = []
            for r in np.nonzero(self.rows.member[dj])[0]:
                coeffs = self.rows.matrix[r]
                terms = " ".join(f"(* {rational(c)} {ys[i]})" for i, c in enumerate(coeffs) if c != 0.0) or "0"
                rhs = Fraction(float(self.rows.offset[r])) + Fraction(float(rhs_shift[r]))
                op = "<" if self.rows.strict[r] else "<="
                atoms.append(f"({op} (+ 0 {terms}) {rational(rhs)})")
            clauses.append("(and true " + " ".join(atoms) + ")")
        out.append("(assert (or " + " ".join(clauses) + "))")
        n_asserts += 1
        return "\n".join(out), n_vars, n_asserts

    def solve(self, leaf: Leaf, rhs_shift: np.ndarray, timeout_s: float, rlimit: int | None = None) -> LeafAnswer:
        """z3 on one leaf, within ``timeout_s`` seconds and, when given, ``rlimit`` resource units
        (z3's deterministic measure of work: the same answer on every machine)."""
        import z3

        start = time.monotonic()
        text, n_vars, n_asserts = self.encode(leaf, rhs_shift)
        ctx = z3.Context()
        solver = z3.SolverFor("QF_LRA", ctx=ctx)
        solver.set("timeout", max(1, int(timeout_s * 1000)))
        if rlimit is not None:
            solver.set("rlimit", int(rlimit))
        solver.add(z3.parse_smt2_string(text, ctx=ctx))
        result = solver.check()
        x = None
        if result == z3.sat:
            model = solver.model()
            vals = []
            for i in range(self.net.input_dim):
                v = model.eval(z3.Real(f"x{i}", ctx), model_completion=True)
                vals.append(float(Fraction(v.as_fraction())))
            x = np.array(vals)
        status = "sat" if result == z3.sat else "unsat" if result == z3.unsat else "unknown"
        return LeafAnswer(status, x, n_vars, n_asserts, time.monotonic() - start)
