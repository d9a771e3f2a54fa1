"""The symbolic engine: ``forall`` claims over piecewise-linear networks, proved or refuted.

A claim ``forall x in box(...) where <linear in x>: expect <linear in net(x)>`` is
compiled to a :class:`~msl.engines.formal.property.Property` — input regions and the
*negated* expectation as the unsafe condition — and handed to the formal engine
(:func:`~msl.engines.formal.verify.verify`): ``unsat`` proves the claim, ``sat`` refutes it
with a witness already replayed through the original network. Equivalence claims
``expect max(abs(f(x) - g(x))) <= eps`` go to the ε-equivalence procedure.

What does not compile — a non-linear expectation, a model that is not a piecewise-linear
network, an L2 ball (over which only the enclosing box can be proved) — falls back to
property-based search, which can refute but never prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msl import ast
from msl.builtins.domains import Domain
from msl.engines import Outcome
from msl.engines.finite import FiniteRun, Probe, _input
from msl.engines.search import MAX_EXAMPLES, MAX_SHRINK_EXAMPLES, WALL_CLOCK_LIMIT_S, Found, WallClockLimit, search
from msl.errors import MslError
from msl.evaluate import Env, Evaluator
from msl.ir import CheckedClaim
from msl.plan import PENDING
from msl.values import DataSet, EvalError, ModelHandle

#: The wall-clock safety net of one claim. Budgets that decide a verdict are counted in work
#: (:class:`~msl.engines.formal.bab.WorkBudget`), so a verdict never depends on the machine's
#: speed; a claim stopped by this limit is inconclusive and says so.
WALL_LIMIT_S = 600.0


class _NotLinear(Exception):
    """This claim is outside what the formal engine reads: search instead."""


@dataclass
class _Linear:
    """``coeffs · v + const`` over the network outputs (or the inputs, for ``where``)."""

    coeffs: np.ndarray
    const: float


class SearchRun(FiniteRun):
    """``forall x in S`` where S cannot be proved over: search for a counterexample."""

    method = "property-based"

    def __init__(self, claim: CheckedClaim, evaluator: Evaluator, max_examples: int = MAX_EXAMPLES) -> None:
        super().__init__(claim, evaluator)
        self.max_examples = max_examples

    def accept(self, quantifier: ast.For | ast.Forall, value: Any) -> None:
        if not isinstance(value, (DataSet, Domain)):
            raise EvalError(f"cannot search over {type(value).__name__}")

    def sampled(self) -> bool:
        return True  # a search never enumerates the space

    def advance(self) -> None:
        if not self.resolve():
            return
        assert self.sets is not None
        quantifier = self.claim.quantifiers[0]
        where = quantifier.where if isinstance(quantifier, ast.Forall) else None
        probe = Probe(self)
        run_seed = self.ev.ctx.seed
        try:
            found = search(self.sets[0], lambda item: probe.violates((item,), where), run_seed, self.max_examples,
                           wall_clock_s=WALL_CLOCK_LIMIT_S)
        except WallClockLimit as stop:
            if probe.error is not None:
                raise probe.error from None
            # How far the search got depends on the machine: none of it is evidence.
            self.outcome = Outcome(
                "inconclusive", self.method,
                f"the search was {stop}, before its work budget ({self.max_examples} inputs, "
                f"{MAX_SHRINK_EXAMPLES} more to shrink) was spent; the limit is a safety net, not a budget, "
                "and says nothing about the claim",
                {"seed": run_seed},
            )
            return
        if probe.error is not None:
            raise probe.error
        if not isinstance(found, Found):
            self.outcome = Outcome(
                "inconclusive", self.method,
                f"no counterexample in {found} searched inputs; a search cannot prove the claim",
                {"n": found, "seed": run_seed},
            )
            return
        inst = probe.settle((found.minimal,))
        assert inst is not None
        example = self.describe(inst)
        example["original"] = _input(found.first)
        stats = {"n": found.examples, "seed": run_seed}
        self.outcome = Outcome("refuted", self.method, "a counterexample was found and shrunk", stats, [example])


class SymbolicRun(SearchRun):
    method = "smt"

    def advance(self) -> None:
        if not self.resolve():
            return
        assert self.sets is not None and self.base is not None
        domain = self.sets[0]
        try:
            outcome = self.prove(domain) if isinstance(domain, Domain) else None
        except _NotLinear:
            outcome = None
        if outcome is None:
            self.method = "property-based"
            super().advance()
            return
        self.outcome = self.cross_checked(outcome, domain)

    # defence in depth

    def cross_checked(self, outcome: Outcome, domain: Domain) -> Outcome:
        """The formal answer, checked against the ordinary evaluator (the real model, run the
        way every other claim runs it), so that a bug in the formal engine's reading of the
        claim or the network cannot reach a verdict unnoticed.

        Before a ``proved``: the claim is evaluated on sampled points of the domain (centre,
        corners, seeded random points); a violation there refutes the claim, with a message
        that the formal engine disagreed. After a ``refuted``: the witness must violate the
        claim in the evaluator too, or the disagreement is an internal inconsistency (error).
        """
        quantifier = self.claim.quantifiers[0]
        where = quantifier.where if isinstance(quantifier, ast.Forall) else None
        probe = Probe(self)
        if outcome.verdict == "proved":
            for point in _check_points(domain, self.ev.ctx.seed):
                if probe.violates((point,), where):
                    inst = probe.settle((point,))
                    assert inst is not None
                    return Outcome(
                        "refuted", "property-based",
                        "internal inconsistency: the formal engine answered unsat, but the evaluator finds the claim"
                        " violated at a sampled point of the domain (a bug in the formal engine; please report it)",
                        {"n": 1, "seed": self.ev.ctx.seed}, [self.describe(inst)], proof=outcome.proof,
                    )
        elif outcome.verdict == "refuted" and outcome.counterexamples:
            point = np.asarray(outcome.counterexamples[0]["input"], dtype=np.float64)
            if not probe.violates((point,), where) and probe.error is None:
                message = ("internal inconsistency: the formal engine's counterexample does not violate the claim"
                           " in the evaluator (a bug in the formal engine; please report it)")
                return Outcome("error", "smt", message, counterexamples=outcome.counterexamples,
                               proof=outcome.proof, error=(message, self.claim.claim.span))
        if probe.error is not None:
            raise probe.error
        return outcome

    # compiling

    def prove(self, domain: Domain) -> Outcome | None:
        from msl.engines.formal.bab import WorkBudget
        from msl.engines.formal.property import Condition, Property
        from msl.engines.formal.verify import verify

        quantifier = self.claim.quantifiers[0]
        assert isinstance(quantifier, ast.Forall)
        var = quantifier.var
        nets = self.networks()
        if len(nets) != 1:
            return self.equivalence(domain, nets) if len(nets) == 2 else None
        handle = next(iter(nets.values()))
        net = self.pl_network(handle)
        if net is None:
            return None
        compiler = _Compiler(self, var, handle, net.output_dim)
        expect = Condition.true()
        for ce in self.claim.expects:
            if isinstance(ce.node.condition, ast.Invariant | ast.Directional | ast.Agree):
                raise _NotLinear
            expect = expect & compiler.condition(ce.node.condition)
        regions = _regions(domain, quantifier.where, _Compiler(self, var, None, len(domain.lower)))
        prop = Property(tuple(regions), expect.negate(), self.claim.name)
        try:
            result, cert = self.decided("verify-certified", [(handle, net)], asdict(prop), lambda: _with_certificate(
                verify(net, prop, WALL_LIMIT_S, self.ev.ctx.seed, witness_margin=0.0, work=WorkBudget(), record=True),
                prop, handle,
            ))
        except MslError as exc:
            raise EvalError(exc.message) from None
        if result.status == "unsat":
            outcome = self.certified(result, cert, handle)
            if domain.norm == "l2" and outcome.verdict == "proved":
                outcome.message = "no input of the ball's enclosing box violates the claim, so none of the ball does"
            return outcome
        if domain.norm == "l2":
            # The regions are the ball's enclosing box: a proof there covers the ball, but a
            # witness may lie outside it, so anything short of a proof searches the ball.
            raise _NotLinear
        return self.formal_outcome(result, handle)

    def decided(
        self, what: str, nets: list[tuple[ModelHandle, Any]], inputs: object, compute: Callable[[], Any]
    ) -> Any:
        """The formal engine's answer ``compute()``, from the result cache when the same
        question was decided before: keyed by the networks (their fingerprints and the
        formal engine's reading of them), the property, the seed, the budgets, the formal
        engine's own source and the solvers' versions. Only decided answers (sat, unsat)
        are stored; the cross-check against the evaluator still runs on every run."""
        from msl.cache import cached_json, derived_key, source_digest
        from msl.engines.formal.bab import WorkBudget

        key = derived_key(f"formal-{what}", {
            "code": source_digest("msl.engines.formal"),
            "versions": _solver_versions(),
            "networks": [[h.fingerprint, _network_digest(n)] for h, n in nets],
            "inputs": inputs,
            "seed": self.ev.ctx.seed,
            "wall_limit_s": WALL_LIMIT_S,
            "work": asdict(WorkBudget()),
        })
        return cached_json(
            self.ev.ctx.planner.cache, key, "derived:formal", compute, _result_json, _result_of,
            storable=lambda answer: _formal_result(answer).status in ("sat", "unsat"),
        )

    def certified(self, result: Any, cert: Any, handle: ModelHandle) -> Outcome:
        """The outcome of an ``unsat`` answer, its certificate checked with the independent
        checker (:mod:`msl.certify`) first — also when the answer comes from the result cache,
        so a cached proof is re-checked without a solver: ``proved`` carrying the certificate,
        or saying why it has none; an ``error`` when the certificate does not check."""
        from msl import certify

        if cert is None:  # the ReLU-splitting search (networks of many inputs) records no tree yet
            return self.formal_outcome(result, handle, note="proofs by ReLU splitting record none yet")
        report = certify.check(cert, Path(handle.model.path))
        if report.certified:
            return self.formal_outcome(result, handle, cert=cert)
        if report.incomplete:  # every piece of evidence holds; some leaves (z3) carry none yet
            return self.formal_outcome(result, handle, note=report.reason)
        message = ("internal inconsistency: the formal engine answered unsat, "
                   f"but its certificate does not check ({report.reason})")
        outcome = self.formal_outcome(result, handle)
        return Outcome("error", "smt", message, proof=outcome.proof, error=(message, self.claim.claim.span))

    def networks(self) -> dict[str, ModelHandle]:
        out = {}
        for ce in self.claim.expects:
            for node in ast.walk(ce.node.condition):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    value = self.lookup(node.func.id)
                    if isinstance(value, ModelHandle):
                        if value.kind != "network":
                            raise _NotLinear
                        out[value.role] = value
        return out

    def lookup(self, name: str) -> Any:
        assert self.base is not None
        found, value = self.base.find(name)
        if found:
            return value
        if name in self.ev.spec.symbols:
            return self.ev.global_value(name)
        return None

    def pl_network(self, handle: ModelHandle) -> Any:
        """The formal engine's reading of the role's ONNX file, or None if not piecewise-linear."""
        from msl.engines.formal.network import PLNetwork

        path = getattr(handle.model, "path", None)
        if path is None:
            return None
        try:
            return PLNetwork.from_onnx(path)
        except MslError:
            return None

    def formal_outcome(self, result: Any, handle: ModelHandle, cert: Any = None, note: str = "") -> Outcome:
        """The outcome of a formal answer; a proof carries ``cert`` (a checked certificate) or
        says in its message why it has none (``note``)."""
        stats = result.stats
        encoding = stats.get("encoding", {})
        decided = stats.get("decided_by") or "branch and bound"
        proof = {
            "solver": f"{stats['solver']} ({decided})" if stats.get("solver") else str(decided),
            "result": result.status,
            "variables": encoding.get("max_variables"),
            "constraints": encoding.get("total_constraints"),
            "branches": stats.get("branches"),
            "time_s": round(float(stats.get("time_s", 0.0)), 3),
        }
        if result.status == "unknown" and stats.get("decided_by") == "the input domain is empty":
            return Outcome(
                "inconclusive",
                "smt",
                "the set is empty: no input of the domain meets its `where` constraints",
                proof=proof,
            )
        if result.status == "unsat":
            if cert is not None:
                from msl.certify import encode

                proof["certificate"] = encode(cert)[0]
            return Outcome("proved", "smt", f"no input of the domain violates the claim ({stats.get('decided_by')})"
                           + (f"; no certificate: {note}" if note else ""), proof=proof, certificate=cert)
        if result.status == "sat":
            example = {
                "input": [float(v) for v in result.witness_x],
                "values": {f"{handle.role}(x)": [float(v) for v in result.witness_y]},
                "edit": None,
                "replayed": True,
            }
            return Outcome("refuted", "smt", f"a counterexample, replayed through {handle.role}'s ONNX file",
                           counterexamples=[example], proof=proof)
        if result.status == "timeout":
            # How far the search got depends on the machine: nothing of it goes into the finding.
            proof.update(branches=None, variables=None, constraints=None)
            return Outcome("inconclusive", "smt",
                           f"stopped by the wall-clock limit of {WALL_LIMIT_S:g} s before the work budget was spent;"
                           " a faster or less loaded machine may decide it", proof=proof)
        reason = stats.get("decided_by") or "the exact leaves left some boxes undecided"
        return Outcome("inconclusive", "smt", f"the formal engine answered {result.status}: {reason}", proof=proof)

    def equivalence(self, domain: Domain, nets: dict[str, ModelHandle]) -> Outcome | None:
        """``max(abs(f(x) - g(x))) <= eps`` over a box, by the ε-equivalence procedure."""
        from msl.engines.formal.bab import WorkBudget
        from msl.engines.formal.equivalence import verify_equivalence
        from msl.engines.formal.property import InputRegion

        if len(self.claim.expects) != 1 or domain.norm == "l2":
            return None
        var = self.claim.quantifiers[0].var
        eps = _epsilon(self.claim.expects[0].node.condition, self, var, set(nets))
        if eps is None:
            return None
        first, second = (self.pl_network(h) for h in nets.values())
        if first is None or second is None:
            return None
        region = InputRegion.box(domain.lower, domain.upper)
        pairs = list(zip(nets.values(), (first, second), strict=True))
        result = self.decided("equivalence", pairs, {"region": asdict(region), "eps": eps}, lambda: verify_equivalence(
            first, second, region, eps, WALL_LIMIT_S, self.ev.ctx.seed, witness_margin=0.0, work=WorkBudget()
        ))
        outcome = self.formal_outcome(
            result, next(iter(nets.values())), note="proofs of ε-equivalence between two networks record none yet"
        )
        if result.status == "sat" and outcome.counterexamples:
            # Both outputs as replayed through the original networks, and the gap they show.
            a, b = nets
            out_a, out_b = (np.asarray(result.stats["witness_outputs"][k], dtype=np.float64) for k in ("a", "b"))
            outcome.message = f"a counterexample, replayed through the ONNX files of {a} and {b}"
            outcome.counterexamples[0]["values"] = {
                f"{a}(x)": out_a.tolist(),
                f"{b}(x)": out_b.tolist(),
                "gap": float(np.max(np.abs(out_a - out_b))),
            }
        return outcome


def _solver_versions() -> list[str]:
    """The versions of the libraries a formal answer depends on (bounds, LPs, z3)."""
    import scipy
    import z3

    return [np.__version__, scipy.__version__, z3.get_version_string()]


def _network_digest(net: Any) -> str:
    """The digest of the formal engine's reading of a network (its affine layers, their
    rounding counts, input normalisation and exactness), beside the model's fingerprint."""
    from msl.cache import array_digest

    h = hashlib.sha256()
    for layer in net.layers:
        h.update(f"{array_digest(layer.weight)}:{array_digest(layer.bias)}:{layer.roundings}\n".encode())
    h.update(repr((net.input_shift, net.input_gain, net.exact)).encode())
    return h.hexdigest()


def _with_certificate(result: Any, prop: Any, handle: ModelHandle) -> tuple[Any, Any]:
    """The answer with the certificate of an ``unsat`` (None otherwise, or when the search
    recorded no tree): the pair is what the result cache stores."""
    from msl.engines.formal.certificate import build

    if result.status != "unsat" or result.proof_tree is None:
        return result, None
    return result, build(result.proof_tree[0], prop, result.proof_tree[1], handle.model.path)


def _formal_result(answer: Any) -> Any:
    """The formal answer of a cached value: a verify answer is stored with its certificate."""
    return answer[0] if isinstance(answer, tuple) else answer


def _result_json(answer: Any) -> dict[str, Any]:
    result = _formal_result(answer)
    data = {"status": result.status, "witness_x": result.witness_x, "witness_y": result.witness_y,
            "stats": result.stats}
    if isinstance(answer, tuple):
        cert = answer[1]
        data["certificate"] = None if cert is None else cert.model_dump(mode="json", exclude_defaults=True)
    return data


def _result_of(data: dict[str, Any]) -> Any:
    from msl.certify import Certificate
    from msl.engines.formal.verify import FormalResult

    def floats(v: Any) -> tuple[float, ...] | None:
        return None if v is None else tuple(float(x) for x in v)

    if data["status"] not in ("sat", "unsat") or not isinstance(data["stats"], dict):
        raise ValueError("not a decided formal answer")
    result = FormalResult(data["status"], floats(data["witness_x"]), floats(data["witness_y"]), data["stats"])
    if "certificate" not in data:
        return result
    cert = data["certificate"]
    return result, None if cert is None else Certificate.model_validate(cert)


#: Random points of the domain the evaluator checks before a proof (plus centre and corners).
CHECK_POINTS = 48
#: At most this many corners of the box are checked (all of them while 2^d is no more).
CHECK_CORNERS = 32


def _check_points(domain: Domain, seed: int) -> list[np.ndarray]:
    """Seeded points of the domain for :meth:`SymbolicRun.cross_checked`, as float32 values
    inside it (the inputs the model really runs on)."""
    from msl.engines.formal.crosscheck import check_points

    lo, hi = np.asarray(domain.lower, dtype=np.float64), np.asarray(domain.upper, dtype=np.float64)
    if domain.norm == "l2":
        rng = np.random.default_rng([seed, 0x5EED])
        d, center = len(lo), np.asarray(domain.center, dtype=np.float64)
        direction = rng.standard_normal((CHECK_POINTS, d))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-300)
        radius = domain.radius * rng.uniform(0.0, 1.0, (CHECK_POINTS, 1)) ** (1.0 / d)
        points = np.vstack([center[None, :], center + 0.999 * radius * direction]).astype(np.float32)
    else:
        points = check_points(lo, hi, seed, CHECK_CORNERS, CHECK_POINTS)
    return [p for p in points.astype(np.float64) if np.all(p >= lo) and np.all(p <= hi)]


def _epsilon(cond: ast.Node, run: SymbolicRun, var: str, roles: set[str]) -> float | None:
    """ε of ``max(abs(f(x) - g(x))) <= ε`` (or ``<``), when the expectation has exactly that shape:
    two calls of the two networks, each on the quantified variable itself and nothing else.
    Anything else (``g(-x)``, ``g([0])``, ``f(x) - f(x)``) is not an equivalence: it is searched."""
    if not (isinstance(cond, ast.Compare) and len(cond.ops) == 1 and cond.ops[0] in ("<=", "<")):
        return None
    left, right = cond.operands
    match left:
        case ast.Call(
            func=ast.Name(id="max"),
            args=(
                ast.Call(
                    func=ast.Name(id="abs"), args=(ast.Binary(op="-", left=ast.Call() as f, right=ast.Call() as g),)
                ),
            ),
        ):
            called = [_network_call_on(call, run, var) for call in (f, g)]
            if None in called or set(called) != roles or len(set(called)) != 2:
                return None
        case _:
            return None  # two networks, but not an equivalence: search instead
    if any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(right)):
        return None
    value = run.ev.eval(right, run.base or Env({}))
    if value is PENDING or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value)


def _network_call_on(call: ast.Call, run: SymbolicRun, var: str) -> str | None:
    """The role of ``net(var)`` — a network called on exactly the quantified variable — else None."""
    if not (isinstance(call.func, ast.Name) and len(call.args) == 1 and not call.kwargs):
        return None
    arg = call.args[0]
    if not (isinstance(arg, ast.Name) and arg.id == var):
        return None
    handle = run.lookup(call.func.id)
    return handle.role if isinstance(handle, ModelHandle) else None


class _Compiler:
    """Linear terms and conditions over one network's outputs (or over the inputs)."""

    def __init__(self, run: SymbolicRun, var: str, net: ModelHandle | None, dim: int) -> None:
        self.run, self.var, self.net, self.dim = run, var, net, dim

    def constant(self, node: ast.Node) -> float:
        assert self.run.base is not None
        value = self.run.ev.eval(node, self.run.base)
        if value is PENDING or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _NotLinear
        return float(value)

    def is_output(self, node: ast.Node) -> bool:
        """``net(x)`` for the claim's network and variable (or ``x`` itself for inputs)."""
        if self.net is None:
            return isinstance(node, ast.Name) and node.id == self.var
        return (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1
            and isinstance(node.args[0], ast.Name) and node.args[0].id == self.var
            and isinstance(self.run.lookup(node.func.id), ModelHandle)
            and self.run.lookup(node.func.id).role == self.net.role
        )

    def linear(self, node: ast.Node) -> _Linear:
        match node:
            case ast.Index() if self.is_output(node.obj):
                written = int(self.constant(node.index))
                i = written + self.dim if written < 0 else written  # -1 is the last, as in `for` claims
                if not 0 <= i < self.dim:
                    raise EvalError(f"index {written} is out of range for {self.dim} values", node.span)
                coeffs = np.zeros(self.dim)
                coeffs[i] = 1.0
                return _Linear(coeffs, 0.0)
            case ast.Binary(op="+" | "-"):
                a, b = self.linear(node.left), self.linear(node.right)
                sign = 1.0 if node.op == "+" else -1.0
                return _Linear(a.coeffs + sign * b.coeffs, a.const + sign * b.const)
            case ast.Binary(op="*"):
                a, b = self.linear(node.left), self.linear(node.right)
                if not a.coeffs.any():
                    return _Linear(a.const * b.coeffs, a.const * b.const)
                if not b.coeffs.any():
                    return _Linear(b.const * a.coeffs, b.const * a.const)
                raise _NotLinear
            case ast.Binary(op="/"):
                a, b = self.linear(node.left), self.linear(node.right)
                if b.coeffs.any() or b.const == 0:
                    raise _NotLinear
                return _Linear(a.coeffs / b.const, a.const / b.const)
            case ast.Unary(op="-"):
                a = self.linear(node.operand)
                return _Linear(-a.coeffs, -a.const)
        if any(self.is_output(n) for n in ast.walk(node)):
            raise _NotLinear
        return _Linear(np.zeros(self.dim), self.constant(node))

    def condition(self, node: ast.Node) -> Any:
        from msl.engines.formal import property as P

        match node:
            case ast.Binary(op="and"):
                return self.condition(node.left) & self.condition(node.right)
            case ast.Binary(op="or"):
                return self.condition(node.left) | self.condition(node.right)
            case ast.Unary(op="not"):
                return self.condition(node.operand).negate()
            case ast.Bool():
                return P.Condition.true() if node.value else P.Condition.false()
            case ast.Compare():
                result = P.Condition.true()
                for op, a, b in zip(node.ops, node.operands, node.operands[1:], strict=False):
                    result = result & self.comparison(op, a, b)
                return result
        raise _NotLinear

    def comparison(self, op: str, a: ast.Node, b: ast.Node) -> Any:
        from msl.engines.formal import property as P

        for pick, other in ((a, b), (b, a)):  # == and != are symmetric: no flip needed
            if isinstance(pick, ast.Call) and isinstance(pick.func, ast.Name) and pick.func.id in ("argmax", "argmin") \
                    and len(pick.args) == 1 and self.is_output(pick.args[0]) and op in ("==", "!="):
                i = int(self.constant(other))
                if pick.func.id == "argmax":
                    return P.argmax_is(self.dim, i) if op == "==" else P.argmax_is_not(self.dim, i)
                return P.argmin_is(self.dim, i) if op == "==" else P.argmin_is_not(self.dim, i)
        left, right = self.linear(a), self.linear(b)
        return P.linear(left.coeffs - right.coeffs, op, right.const - left.const)


def _regions(domain: Domain, where: ast.Expr | None, inputs: _Compiler) -> list[Any]:
    """The domain's box, split into one region per disjunct of the ``where`` clause."""
    from msl.engines.formal.property import InputRegion

    if where is None:
        return [InputRegion.box(domain.lower, domain.upper)]
    condition = inputs.condition(where)
    return [InputRegion(domain.lower, domain.upper, conj) for conj in condition.disjuncts]
