"""VNN-LIB (the subset used by VNN-COMP) to :class:`~msl.engines.formal.property.Property`.

Accepted: comments (``;`` to the end of the line), ``(declare-const X_i Real)`` and
``(declare-const Y_j Real)``, and ``(assert F)`` where ``F`` is ``and``/``or`` over comparisons
``<= >= < > =`` of linear terms (numbers, variables, negated variables ``-Y_0``, ``+``, ``-``
(also unary, ``(- Y_0)``), ``*`` by a constant, ``/`` by a constant). Every assert is over the
inputs only, the outputs only, or (rarely) both; input
asserts give the input regions (a disjunction of boxes with linear constraints, as in ACAS Xu
properties 6-10), output asserts the unsafe condition. A comparison that mixes inputs and
outputs (``(<= Y_0 (+ X_0 1))``) is a constraint on ``[Y; X]``: the network is then read with
its inputs appended to its outputs
(:meth:`~msl.engines.formal.network.PLNetwork.with_inputs_as_outputs`). Anything else is refused
with a
:class:`~msl.errors.UsageError` carrying the span (line, column) of the offending text. Nothing
is evaluated: the reader is a tokenizer and an iterative parser with size and depth limits.

Strict comparisons on inputs are read as non-strict (the region is closed; witnesses are
checked within 1e-4 anyway); on outputs they stay strict.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msl.engines.formal.property import MAX_DISJUNCTS, Condition, InputRegion, LinearConstraint, Property
from msl.errors import UsageError
from msl.source import Span

#: VNN-LIB files larger than this are refused before reading.
MAX_VNNLIB_BYTES = 64 * 1024 * 1024
#: Deeper nesting than this is refused (VNN-COMP files nest 4 or 5 deep).
MAX_DEPTH = 100

_TOKEN = re.compile(r"\s+|;[^\n]*|\(|\)|[^\s();]+")
_NAME = re.compile(r"^([XY])_(0|[1-9][0-9]{0,6})$")
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


@dataclass(frozen=True)
class Atom:
    text: str
    span: Span


@dataclass(frozen=True)
class SList:
    items: tuple[Atom | SList, ...]
    span: Span


SExpr = Atom | SList


def _error(message: str, span: Span, hint: str | None = None) -> UsageError:
    return UsageError(message, span, hint)


def parse_sexprs(text: str, name: str) -> list[SExpr]:
    """Top-level S-expressions of ``text``, with spans."""
    out: list[SExpr] = []
    stack: list[tuple[list[SExpr], int, int]] = []  # items, line, column of the '('
    line, col = 1, 1
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0].isspace() or tok[0] == ";":
            pass
        elif tok == "(":
            if len(stack) >= MAX_DEPTH:
                raise _error(f"expressions nest deeper than {MAX_DEPTH} levels", Span.point(name, line, col))
            stack.append(([], line, col))
        elif tok == ")":
            if not stack:
                raise _error("unbalanced ')'", Span.point(name, line, col))
            items, sl, sc = stack.pop()
            node = SList(tuple(items), Span(name, sl, sc, line, col + 1))
            (stack[-1][0] if stack else out).append(node)
        else:
            atom = Atom(tok, Span(name, line, col, line, col + len(tok)))
            if not stack:
                raise _error(f"unexpected {tok!r} outside parentheses", atom.span)
            stack[-1][0].append(atom)
        newlines = tok.count("\n")
        if newlines:
            line += newlines
            col = len(tok) - tok.rfind("\n")
        else:
            col += len(tok)
    if stack:
        _, sl, sc = stack[-1]
        raise _error("unclosed '(' (the file ends inside an expression)", Span.point(name, sl, sc))
    return out


# A linear term: coefficients by variable name, and a constant.
Linear = tuple[dict[str, float], float]
# A comparison atom: coefficients by variable, constant rhs, strictness, span; meaning c.v <= rhs.
Cmp = tuple[dict[str, float], float, bool, Span]


@dataclass
class _Reader:
    name: str
    declared: dict[str, Span] = field(default_factory=dict)

    def read(self, nodes: list[SExpr]) -> list[Property]:
        asserts: list[SList] = []
        for node in nodes:
            if not isinstance(node, SList) or not node.items or not isinstance(node.items[0], Atom):
                raise _error("expected a command such as (declare-const ...) or (assert ...)", node.span)
            head = node.items[0].text
            if head == "declare-const":
                self._declare(node)
            elif head == "assert":
                if len(node.items) != 2:
                    raise _error("assert takes one formula", node.span)
                asserts.append(node)
            else:
                raise _error(
                    f"unsupported command {head!r}", node.items[0].span, hint="VNN-LIB uses declare-const and assert"
                )
        n_in = self._count("X")
        n_out = self._count("Y")
        if n_in == 0:
            raise _error("no input variables (X_0, X_1, ...) are declared", Span.point(self.name))
        input_dnf: list[list[Cmp]] = [[]]
        output_dnf: list[list[Cmp]] = [[]]
        mixed_dnf: list[list[Cmp]] = [[]]
        for node in asserts:
            dnf = self._formula(node.items[1], 0)
            kinds = {self._kind(c) for clause in dnf for c in clause} - {"const"}
            target = output_dnf if kinds == {"Y"} else input_dnf if kinds <= {"X"} else mixed_dnf
            target[:] = _product(target, dnf, node.span)
        props: list[Property] = []
        for mixed in mixed_dnf:
            regions = []
            for clause in input_dnf:
                region = self._region(clause + [c for c in mixed if self._kind(c) == "X"], n_in)
                if region is not None:
                    regions.append(region)
            if not regions:
                continue
            outs = [clause + [c for c in mixed if self._kind(c) != "X"] for clause in output_dnf]
            # A comparison of inputs with outputs constrains [Y; X]: the outputs, then the inputs
            # (the network is read with its inputs appended to its outputs, see run_vnnlib).
            width = n_out + n_in if any(self._kind(c) == "XY" for clause in outs for c in clause) else n_out
            unsafe = Condition(
                tuple(tuple(self._output_constraint(c, n_out, width) for c in clause) for clause in outs)
            )
            props.append(Property(tuple(regions), unsafe, name=self.name))
        return props

    # -- declarations
    def _declare(self, node: SList) -> None:
        items = node.items
        if len(items) != 3 or not isinstance(items[1], Atom) or not isinstance(items[2], Atom):
            raise _error("expected (declare-const NAME Real)", node.span)
        var, sort = items[1], items[2]
        if sort.text != "Real":
            raise _error(f"unsupported sort {sort.text!r}; only Real is supported", sort.span)
        if not _NAME.match(var.text):
            raise _error(f"unsupported variable name {var.text!r}; expected X_i (inputs) or Y_j (outputs)", var.span)
        if var.text in self.declared:
            raise _error(f"{var.text} is declared twice", var.span)
        self.declared[var.text] = var.span

    def _count(self, prefix: str) -> int:
        idx = sorted(int(v[2:]) for v in self.declared if v[0] == prefix)
        for expected, got in enumerate(idx):
            if expected != got:
                missing = f"{prefix}_{expected}"
                raise _error(f"{missing} is not declared but {prefix}_{got} is", self.declared[f"{prefix}_{got}"])
        return len(idx)

    # -- formulas: each becomes a DNF, a list of clauses (lists of comparison atoms)
    def _formula(self, node: SExpr, depth: int) -> list[list[Cmp]]:
        if isinstance(node, Atom):
            if node.text == "true":
                return [[]]
            if node.text == "false":
                return []
            raise _error(f"expected a formula, found {node.text!r}", node.span)
        if not node.items or not isinstance(node.items[0], Atom):
            raise _error("expected a formula such as (<= X_0 1.0), (and ...) or (or ...)", node.span)
        head = node.items[0].text
        args = node.items[1:]
        if head == "and":
            result: list[list[Cmp]] = [[]]
            for a in args:
                result = _product(result, self._formula(a, depth + 1), node.span)
            return result
        if head == "or":
            out: list[list[Cmp]] = []
            for a in args:
                out.extend(self._formula(a, depth + 1))
                if len(out) > MAX_DISJUNCTS:
                    raise _error(f"more than {MAX_DISJUNCTS} disjuncts", node.span)
            return out
        if head in ("<=", ">=", "<", ">", "="):
            if len(args) != 2:
                raise _error(f"({head} ...) takes two terms", node.span)
            lhs, rhs = self._term(args[0]), self._term(args[1])
            if head in ("<=", "<"):
                atoms = [_compare(lhs, rhs, head == "<", node.span)]
            elif head in (">=", ">"):
                atoms = [_compare(rhs, lhs, head == ">", node.span)]
            else:
                atoms = [_compare(lhs, rhs, False, node.span), _compare(rhs, lhs, False, node.span)]
            return [atoms]
        raise _error(f"unsupported operator {head!r}", node.items[0].span, hint="supported: and, or, <=, >=, <, >, =")

    def _term(self, node: SExpr) -> Linear:
        if isinstance(node, Atom):
            if _NUMBER.match(node.text):
                value = float(node.text)
                if not np.isfinite(value):
                    raise _error(f"number {node.text!r} is out of range", node.span)
                return {}, value
            sign, name = (-1.0, node.text[1:]) if node.text[:1] == "-" else (1.0, node.text)
            if name in self.declared:
                return {name: sign}, 0.0  # -Y_0 as (- Y_0), as some generators write it
            if _NAME.match(name):
                raise _error(f"{name} is used but not declared", node.span)
            raise _error(f"expected a number or a declared variable, found {node.text!r}", node.span)
        if not node.items or not isinstance(node.items[0], Atom):
            raise _error("expected a term", node.span)
        head = node.items[0].text
        args = [self._term(a) for a in node.items[1:]]
        if not args:
            raise _error(f"({head}) needs arguments", node.span)
        if head == "+":
            return _sum(args)
        if head == "-":
            if len(args) == 1:
                return _scale(args[0], -1.0)
            return _sum([args[0]] + [_scale(a, -1.0) for a in args[1:]])
        if head == "*":
            coefs, value = {}, 1.0
            for a in args:
                if a[0]:
                    if coefs:
                        raise _error("a product of variables is not linear", node.span)
                    coefs = a[0]
                    continue
                value *= a[1]
            if coefs:
                return _scale((coefs, 0.0), value)
            return {}, value
        if head == "/":
            if len(args) != 2 or args[1][0] or args[1][1] == 0.0:
                raise _error("division is supported only by a nonzero constant", node.span)
            return _scale(args[0], 1.0 / args[1][1])
        raise _error(
            f"unsupported operator {head!r} in a term", node.items[0].span, hint="supported: + - * / by constants"
        )

    @staticmethod
    def _kind(c: Cmp) -> str:
        names = {v[0] for v, coef in c[0].items() if coef != 0.0}
        return "".join(sorted(names)) or "const"

    def _constraint(self, c: Cmp, prefix: str, n: int) -> LinearConstraint:
        coeffs = [0.0] * n
        for var, coef in c[0].items():
            if var[0] == prefix:
                coeffs[int(var[2:])] += coef
        return LinearConstraint(tuple(coeffs), c[1], c[2])

    @staticmethod
    def _output_constraint(c: Cmp, n_out: int, width: int) -> LinearConstraint:
        """``c`` over ``[Y_0 .. Y_{n_out-1}, X_0 ...]`` (``width`` values)."""
        coeffs = [0.0] * width
        for var, coef in c[0].items():
            coeffs[int(var[2:]) + (0 if var[0] == "Y" else n_out)] += coef
        return LinearConstraint(tuple(coeffs), c[1], c[2])

    def _region(self, clause: list[Cmp], n: int) -> InputRegion | None:
        lower = [-np.inf] * n
        upper = [np.inf] * n
        others: list[LinearConstraint] = []
        for c in clause:
            if self._kind(c) == "const":
                if (0.0 < c[1]) if c[2] else (0.0 <= c[1]):
                    continue
                return None
            nz = [(v, coef) for v, coef in c[0].items() if coef != 0.0]
            if len(nz) == 1:
                var, coef = nz[0]
                i = int(var[2:])
                bound = c[1] / coef
                if coef > 0:
                    upper[i] = min(upper[i], bound)
                else:
                    lower[i] = max(lower[i], bound)
            else:
                others.append(LinearConstraint(self._constraint(c, "X", n).coeffs, c[1]))
        for i in range(n):
            if not np.isfinite(lower[i]) or not np.isfinite(upper[i]):
                side = "lower" if not np.isfinite(lower[i]) else "upper"
                raise _error(
                    f"input X_{i} has no {side} bound", self.declared[f"X_{i}"], hint="every input needs a box bound"
                )
        if any(lo > hi for lo, hi in zip(lower, upper, strict=True)):
            return None  # an empty region
        return InputRegion(tuple(lower), tuple(upper), tuple(others))


def _sum(terms: list[Linear]) -> Linear:
    coefs: dict[str, float] = {}
    const = 0.0
    for c, k in terms:
        for v, a in c.items():
            coefs[v] = coefs.get(v, 0.0) + a
        const += k
    return coefs, const


def _scale(term: Linear, factor: float) -> Linear:
    return {v: a * factor for v, a in term[0].items()}, term[1] * factor


def _compare(lhs: Linear, rhs: Linear, strict: bool, span: Span) -> Cmp:
    """``lhs <= rhs`` as ``c.v <= k``."""
    coefs, const = _sum([lhs, _scale(rhs, -1.0)])
    return coefs, -const, strict, span


def _product(a: list[list[Cmp]], b: list[list[Cmp]], span: Span) -> list[list[Cmp]]:
    if len(a) * len(b) > MAX_DISJUNCTS:
        raise _error(f"the formula has more than {MAX_DISJUNCTS} disjuncts in normal form", span)
    return [x + y for x in a for y in b]


def read_vnnlib(path: Path, display: str | None = None) -> list[Property]:
    """The properties of a VNN-LIB file: ``sat`` for the file iff one of them is ``sat``."""
    name = display if display is not None else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_VNNLIB_BYTES:
            raise _error(
                f"the file is too large ({size / 1e6:.0f} MB; the limit is {MAX_VNNLIB_BYTES / 1e6:.0f} MB)",
                Span.point(name),
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _error(f"cannot read the file: {exc.strerror or exc}", Span.point(name)) from None
    return parse_vnnlib(data, name)


def parse_vnnlib(data: bytes, name: str) -> list[Property]:
    """Parse VNN-LIB bytes (see the module docstring for the accepted subset)."""
    if len(data) > MAX_VNNLIB_BYTES:
        raise _error(f"the file is too large ({len(data) / 1e6:.0f} MB)", Span.point(name))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _error("the file is not UTF-8 text (is it a VNN-LIB file?)", Span.point(name, line, col)) from None
    bad = next((i for i, ch in enumerate(text) if ch == "\x00"), None)
    if bad is not None:
        before = text[:bad]
        raise _error(
            "the file contains a NUL byte (is it a VNN-LIB file?)",
            Span.point(name, before.count("\n") + 1, bad - (before.rfind("\n") + 1) + 1),
        )
    return _Reader(name).read(parse_sexprs(text, name))


# ---------------------------------------------------------------------------------------------
# The ``msl vnnlib`` command.


@dataclass(frozen=True)
class VnnlibAnswer:
    """The answer to one VNN-COMP instance; :meth:`render` is what ``msl vnnlib`` prints on
    stdout, ``reason`` (why an ``unknown`` is unknown, when that is worth saying) goes to stderr."""

    status: str
    witness_x: tuple[float, ...] | None = None
    witness_y: tuple[float, ...] | None = None
    seconds: float = 0.0
    stats: dict[str, object] = field(default_factory=dict)
    reason: str | None = None
    #: the proof certificate of an ``unsat`` (``run_vnnlib(..., certificate=True)``)
    certificate: object = None
    #: the peak resident memory of the search (bytes), when it ran under :func:`answer_by`
    peak_rss_bytes: int | None = None

    def render(self) -> str:
        if self.status != "sat" or self.witness_x is None or self.witness_y is None:
            return self.status
        parts = [f"(X_{i} {v!r})" for i, v in enumerate(self.witness_x)]
        parts += [f"(Y_{j} {v!r})" for j, v in enumerate(self.witness_y)]
        return "sat\n(" + "\n ".join(parts) + ")"


def run_vnnlib(net_path: Path, prop_path: Path, timeout: float, certificate: bool = False) -> VnnlibAnswer:
    """Answer one instance: ``sat`` (with a replayed witness), ``unsat``, ``unknown`` or ``timeout``;
    with ``certificate``, an ``unsat`` of a file with one property carries its proof certificate."""
    from msl.engines.formal.crosscheck import ReaderMismatch
    from msl.engines.formal.network import PLNetwork
    from msl.engines.formal.verify import verify

    start = time.monotonic()
    props = read_vnnlib(Path(prop_path))
    net = PLNetwork.from_onnx(Path(net_path))
    statuses = []
    last_stats: dict[str, object] = {}
    for prop in props:
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            statuses.append("timeout")
            break
        mixed = prop.unsafe.dims == {net.output_dim + net.input_dim}
        target = net.with_inputs_as_outputs(np.array([r.lower for r in prop.regions]).min(axis=0)) if mixed else net
        try:
            result = verify(target, prop, remaining, record=certificate and not mixed)
        except ReaderMismatch as exc:  # the reading of the network cannot be trusted: no answer
            return VnnlibAnswer("unknown", seconds=time.monotonic() - start, reason=exc.message)
        last_stats = result.stats
        if result.status == "sat":
            assert result.witness_y is not None
            y = result.witness_y[: net.output_dim]
            return VnnlibAnswer("sat", result.witness_x, y, time.monotonic() - start, result.stats)
        statuses.append(result.status)
    status = "unsat" if all(s == "unsat" for s in statuses) else "timeout" if "timeout" in statuses else "unknown"
    cert = None
    if certificate and status == "unsat" and len(props) == 1 and result.proof_tree is not None:
        from msl.engines.formal.certificate import build

        cert = build(result.proof_tree[0], props[0], result.proof_tree[1], net_path)
    return VnnlibAnswer(status, seconds=time.monotonic() - start, stats=last_stats, certificate=cert)


#: Seconds before the timeout at which the search stops by its own clock checks.
SOFT_MARGIN = 0.8
#: Seconds past the timeout at which the search is killed; VNN-COMP scores an answer given
#: within the timeout + 1 s, measured from outside the process.
HARD_MARGIN = 0.6


def answer_by(
    net_path: Path, prop_path: Path, timeout: float, spent: float = 0.0, hard: bool = True, certificate: bool = False,
) -> VnnlibAnswer:
    """:func:`run_vnnlib` under a hard deadline of ``timeout`` seconds, of which ``spent`` are
    gone already (the process's start-up, as a harness timing the command sees it): the
    search runs in a child process (:func:`~msl.engines.formal.runtime.run_bounded`) that
    stops itself :data:`SOFT_MARGIN` s before the timeout and is killed :data:`HARD_MARGIN` s
    after it, whatever it is busy with (a long bound batch, an LP, z3), answering ``timeout``.

    ``hard=False`` runs the search here with its own clock checks only: for callers (a test's
    CliRunner) whose process has threads of its own, which a fork would copy locked."""
    from msl.engines.formal.runtime import run_bounded

    if not hard:
        return run_vnnlib(net_path, prop_path, timeout, certificate)
    left = timeout - spent
    start = time.monotonic()
    out = run_bounded(
        lambda: run_vnnlib(net_path, prop_path, max(0.0, left - SOFT_MARGIN), certificate), left + HARD_MARGIN
    )
    if out.value is None:
        reason = f"the search was stopped by the hard deadline of {timeout:g} s"
        return VnnlibAnswer(
            "timeout", seconds=time.monotonic() - start, reason=reason, peak_rss_bytes=out.peak_rss_bytes
        )
    return dataclasses.replace(out.value, peak_rss_bytes=out.peak_rss_bytes)
