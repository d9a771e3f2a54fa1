"""Proof certificates and their independent checker (``msl certify``).

A ``proved`` finding (and ``msl vnnlib --certificate``) carries a *certificate*: what another
lab needs to re-check the proof without trusting MSL's engine. This module is that checker. It
is written on its own: it reads the ONNX weights itself with ``onnx`` and shares no bound code
with :mod:`msl.engines.formal` (a bug in the engine's bounds cannot vouch for itself).

**The format** (:class:`Certificate`, JSON Schema from ``msl schema --certificate``), stored
gzip-compressed as ``HEX.json.gz`` (HEX: the sha256 of the uncompressed JSON) in the folder
``STEM.certificates/`` beside ``STEM.json``, and named from the finding's proof record:

* ``network``: the sha256 of the ONNX file's bytes (checked first) and its name;
* ``property``: the input regions (box ``lower <= x <= upper`` plus linear constraints
  ``a . x <= rhs``) and the *unsafe* condition over the outputs ``y``, a disjunction of
  conjunctions of rows ``c . y <= rhs`` (``<`` when strict); the proof says no ``x`` of a
  region makes ``y = net(x)``, executed in float32, meet the unsafe condition;
* ``trees``: per region, its split tree in preorder. A node either splits the box along input
  ``d`` at ``v`` (strictly inside the box: children ``x_d <= v`` then ``x_d >= v``, which cover
  it exactly) or is a leaf. Any node may *refute* disjuncts: ``weights`` ``w_r >= 0`` over the
  disjunct's rows and lower slopes on its unstable ReLUs; the checker proves
  ``sum_r w_r (c_r . y - rhs_r) > 0`` on the node's whole box, so no point of it meets every row.
  A leaf ``bounds`` is closed when every disjunct is refuted at it or an ancestor; ``outside``
  names a region constraint that no point of the box meets; ``lp`` carries the Farkas
  multipliers of its linear pieces (:class:`LpEvidence`; a piece is a phase pattern of the
  network as executed, each of its rows relaxed by its own float32 margin, see
  :func:`_piece_rows`); ``smt`` and ``empty`` leaves carry no
  checkable evidence (z3, an empty region): the certificate then does not certify, and says
  which leaf.

**The check.** On each refuting node's box the checker computes, with its own code, bounds on
every hidden pre-activation of the network *as executed in float32*: interval arithmetic and
symbolic intervals (ReluVal/Neurify), then back-substitution with the triangle relaxation,
of every neuron with the first lower-slope rule of :data:`HIDDEN_SLOPES` (tighter bounds on the
stable ones shrink the rounding bounds and the interval arithmetic above them) and of the
neurons still unstable with each of the others (the tightest bound is kept); each affine
layer's own rounding
``|e| <= gamma_{n+1} (|W| |h| + |b|) + (n+1) 2^-126`` (``gamma_n = n 2^-24 / (1 - n 2^-24)``,
any summation order) is charged at its coefficients, and elementwise ops before the first
layer (Sub, Div, Add, Mul by constants) widen the input box by their own rounding. Each row is
then bounded below by a linear function of the input, by back-substitution with the lower
slopes the certificate gives for the ReLUs it lists as unstable (any slope in [0, 1] is sound;
a ReLU the checker finds unstable that the certificate does not list gets 1 when ``u > -l``,
else 0), and the weighted sum of those functions is minimised over the box. Where the node
states the engine's bounds of an unstable ReLU (``bounds``), the ReLU is relaxed over the hull of
those and the checker's own: sound whatever the stated numbers, and the engine's relaxation
whenever the checker's bounds are at least as tight (they need not be trusted).

**Arithmetic**: numpy float64 with outward rounding: box centres and radii are rounded outward
(``nextafter``), every relaxation slope of an upper bound is rounded up, and every lower bound
is lowered by ``2^-36`` times the sum of the magnitudes of all the terms that produced it (a
float64 sum of at most ``2^16`` terms is off by less than ``2^-37`` of that), plus ``2^-1000``.
A bound counts only when it is ``> 0`` after that.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msl.errors import UsageError
from msl.findings import sha256_of

FORMAT = "msl-certificate/1"
ARITHMETIC = "float64, outward-rounded (2^-36 of each bound's term magnitude; nextafter on boxes)"
#: The lower-slope rules tried for every hidden neuron's bounds (the best is kept).
HIDDEN_SLOPES = ("area", "chord", "zero", "one")
#: Relative widening of every computed lower bound (see the module doc).
REL = 2.0**-36
ABS = 2.0**-1000
#: float32 unit roundoff and smallest normal.
U32 = 2.0**-24
TINY32 = 2.0**-126
#: Fan-ins above this are refused (the 2^-36 argument assumes short sums).
MAX_FAN_IN = 4096
#: A certificate file larger than this is refused (untrusted input), compressed or not.
MAX_BYTES = 512 * 1024 * 1024
#: Boxes bounded together.
CHUNK = 128

Sha256 = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Constraint(_Model):
    """``coeffs . v <= rhs`` (``< rhs`` when strict), over the inputs or the outputs."""

    coeffs: list[float]
    rhs: float
    strict: bool = False


class Region(_Model):
    lower: list[float]
    upper: list[float]
    constraints: list[Constraint] = []


class PropertyText(_Model):
    """The property proved: no ``x`` of any region makes the outputs meet ``unsafe``
    (a disjunction of conjunctions of output rows)."""

    inputs: int
    regions: list[Region]
    unsafe: list[list[Constraint]]


class NetworkRef(_Model):
    sha256: Sha256 = Field(description="sha256 of the ONNX file's bytes")
    name: str = ""


Slope = Annotated[float, Field(ge=0, le=1)]


class Refutation(_Model):
    """``sum_r weights[r] * (row_r(y) - rhs_r) > 0`` on the node's box: no point of the box
    meets every row of the disjunct. Row ``r`` is bounded below by a linear function of the
    input, by back-substitution with lower slope ``alpha[r][k][i]`` on the node's unstable ReLU
    ``unstable[k][i]`` of hidden layer ``k``; the weighted sum of those linear functions is
    minimised over the box."""

    disjunct: int = Field(ge=0)
    weights: list[Annotated[float, Field(ge=0)]]
    alpha: list[list[list[Slope]]]


class LpCase(_Model):
    """One linear piece and disjunct of an ``lp`` leaf: ``phases`` (1 active, 0 inactive) of the
    leaf's unstable ReLUs in order, as the network executes in float32, and multipliers
    ``mu >= 0`` of the rows ``f_i(x) <= 0`` in order, over the piece's affine map (the
    network over the reals with those phases): the disjunct's output rows
    ``c . y(x) - rhs - shift``, then ``+-z(x) - shift`` of the unstable ReLUs (``-z`` where
    active), then the region's constraints ``a . x - rhs``; each ``shift`` bounds how far
    float32 execution can move that row on the piece (its rounding errors carried through the
    piece's phases). ``sum_i mu_i f_i(x) > 0`` on the whole box shows that no x of the box
    whose executed phases are ``phases`` meets the disjunct."""

    phases: list[Annotated[int, Field(ge=0, le=1)]]
    disjunct: int = Field(ge=0)
    multipliers: list[Annotated[float, Field(ge=0)]]


class LpEvidence(_Model):
    """Evidence of an ``lp`` leaf: the ReLUs unstable on its box (per hidden layer; every other
    one must be stable there) and one :class:`LpCase` per phase pattern and open disjunct."""

    unstable: list[list[Annotated[int, Field(ge=0)]]]
    cases: list[LpCase]


class Node(_Model):
    """A node of a split tree (preorder): ``split`` ``[d, v]`` is followed by its lower then its
    upper child; otherwise it is a leaf of kind ``leaf``."""

    split: tuple[int, float] | None = None
    leaf: Literal["bounds", "outside", "lp", "smt", "empty", "open"] | None = None
    outside: int | None = Field(
        None, description="for an `outside` leaf: the region constraint no point of the box meets"
    )
    unstable: list[list[Annotated[int, Field(ge=0)]]] = Field(
        [], description="per hidden layer, the ReLUs the refutations give slopes for"
    )
    bounds: list[list[tuple[float, float]]] = Field(
        [],
        description="per hidden layer, the engine's bounds [lo, hi] on the pre-activations of the ReLUs `unstable`"
        " lists; the checker relaxes each of them over the hull of these and the bounds it derives itself (so they need"
        " not be trusted)",
    )
    refute: list[Refutation] = []
    lp: LpEvidence | None = Field(None, description="for an `lp` leaf: its linear pieces' Farkas multipliers")


class Certificate(_Model):
    """A proof certificate (see :mod:`msl.certify`)."""

    format: Literal["msl-certificate/1"] = FORMAT
    network: NetworkRef
    property: PropertyText
    trees: list[list[Node]] = Field(description="per region, its split tree in preorder")


def certificate_json_schema() -> dict[str, Any]:
    schema = Certificate.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MSL proof certificate",
        "description": "A certificate of a formal proof; see docs/ci.md and msl/certify.py.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


# ── storage ──────────────────────────────────────────────────────────────────────────────


def encode(cert: Certificate) -> tuple[str, bytes]:
    """``(sha256 of the JSON, gzip bytes)``; the gzip header carries no time, so equal
    certificates give equal files."""
    text = json.dumps(
        cert.model_dump(mode="json", exclude_defaults=True), separators=(",", ":"), allow_nan=False
    ).encode()
    return sha256_of(text), gzip.compress(text, mtime=0)


def certificates_dir(findings: Path) -> Path:
    """Where the certificates of ``findings.json`` go: ``findings.certificates/``."""
    return findings.with_name(findings.stem + ".certificates")


def save(cert: Certificate, folder: Path) -> str:
    """Store under ``folder/HEX.json.gz``; returns the ``sha256:`` digest."""
    from msl.jsonio import write_bytes_atomic

    digest, data = encode(cert)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / f"{digest.removeprefix('sha256:')}.json.gz", data)
    return digest


def load(path: Path, digest: str | None = None) -> Certificate:
    """Read an untrusted certificate (gzip or plain JSON), size-limited, validated, and
    matching ``digest`` when given. Problems are one-line :class:`UsageError` s."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"certificate {path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"certificate {path}: larger than {MAX_BYTES:,} bytes")
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=__import__("io").BytesIO(raw)) as fh:
                raw = fh.read(MAX_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise UsageError(f"certificate {path}: not a gzip file ({exc})") from None
        if len(raw) > MAX_BYTES:
            raise UsageError(f"certificate {path}: larger than {MAX_BYTES:,} bytes uncompressed")
    if digest is not None and sha256_of(raw) != digest:
        raise UsageError(f"certificate {path}: its content does not match the digest {digest}")
    try:
        return Certificate.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"certificate {path}: not a valid certificate ({where}: {first['msg']})") from None


# ── the network, read on its own ─────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Elementwise:
    op: str  # "sub", "add", "mul", "div"
    const: np.ndarray  # (d,)


@dataclass(frozen=True)
class Affine:
    weight: np.ndarray  # (out, in)
    bias: np.ndarray  # (out,)
    roundings: int  # float32 roundings on the longest path of one output


@dataclass(frozen=True)
class CheckNet:
    """Elementwise input ops, then affine layers with ReLU between them."""

    prelude: tuple[Elementwise, ...]
    layers: tuple[Affine, ...]

    @property
    def inputs(self) -> int:
        return int(self.layers[0].weight.shape[1])

    @property
    def outputs(self) -> int:
        return int(self.layers[-1].weight.shape[0])


def read_onnx(path: Path) -> CheckNet:
    """The network of an ONNX file: a chain of Sub/Add/Mul/Div by constants (before the first
    layer), MatMul/Gemm (+ Add bias), Relu, Flatten and Reshape, in float32. Anything else is
    refused, naming the node."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx reports a malformed file in its own words
        raise UsageError(
            f"{path}: not an ONNX file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UsageError(f"{path}: the checker reads networks with one input and one output")
    for arr in consts.values():
        if arr.dtype != np.float32 and arr.dtype != np.int64:
            raise UsageError(f"{path}: the checker reads float32 networks (a constant is {arr.dtype})")
    current = inputs[0].name
    prelude: list[Elementwise] = []
    layers: list[Affine] = []
    pending: tuple[np.ndarray, np.ndarray | None, int] | None = None  # weight, bias, roundings
    relu_after: list[bool] = []

    def finish() -> None:
        nonlocal pending
        if pending is not None:
            w, b, n = pending
            layers.append(Affine(w, np.zeros(w.shape[0]) if b is None else b, n))
            relu_after.append(False)
            pending = None

    for node in graph.node:
        ins = list(node.input)
        label = f"node {node.name or node.output[0]!r} ({node.op_type})"
        if not ins or ins[0] != current:
            raise UsageError(f"{path}: {label} is not on the single chain from the input")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        other = [consts.get(i) for i in ins[1:]]
        if any(o is None for o in other) and node.op_type not in ("Flatten", "Relu"):
            raise UsageError(f"{path}: {label} takes a non-constant second operand")
        op = node.op_type
        if op in ("Flatten", "Reshape"):
            pass  # a flat vector stays a flat vector (batch of one)
        elif op == "Relu":
            finish()
            if not layers or relu_after[-1]:
                raise UsageError(f"{path}: {label}: the checker needs an affine layer before every Relu")
            relu_after[-1] = True
        elif op == "MatMul":
            finish()
            w = np.asarray(other[0], dtype=np.float64)
            if w.ndim != 2:
                raise UsageError(f"{path}: {label}: the weight is not a matrix")
            pending = (w.T.copy(), None, w.shape[0])
        elif op == "Gemm":
            finish()
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
                raise UsageError(f"{path}: {label}: only alpha = beta = 1 and transA = 0 are read")
            w = np.asarray(other[0], dtype=np.float64)
            w = w if attrs.get("transB", 0) else w.T
            b = np.asarray(other[1], dtype=np.float64).reshape(-1) if len(other) > 1 else None
            if b is not None and b.size == 1:
                b = np.full(w.shape[0], float(b[0]))
            pending = (w.copy(), b, w.shape[1] + (1 if b is not None else 0))
            if b is not None:
                finish()
        elif op in ("Add", "Sub", "Mul", "Div"):
            c = np.asarray(other[0], dtype=np.float64).reshape(-1)
            if op == "Add" and pending is not None and pending[1] is None:
                w, _, n = pending
                pending = (w, np.broadcast_to(c, (w.shape[0],)).copy(), n + 1)
                finish()
            elif not layers and pending is None:
                prelude.append(Elementwise(op.lower(), c))
            else:
                raise UsageError(f"{path}: {label}: the checker reads elementwise ops only before the first layer")
        else:
            raise UsageError(f"{path}: {label}: operator {op} is not read by the certificate checker")
        current = node.output[0]
    finish()
    if current != graph.output[0].name:
        raise UsageError(f"{path}: the chain does not end at the graph's output")
    if not layers or relu_after[-1] or not all(relu_after[:-1]):
        raise UsageError(f"{path}: the checker reads affine layers with a Relu between each two")
    for a, b in zip(layers, layers[1:], strict=False):
        if a.weight.shape[0] != b.weight.shape[1]:
            raise UsageError(f"{path}: layer sizes do not chain")
    if max(lay.weight.shape[1] for lay in layers) > MAX_FAN_IN:
        raise UsageError(f"{path}: a fan-in above {MAX_FAN_IN} is not read")
    d = layers[0].weight.shape[1]
    prelude = [Elementwise(e.op, np.broadcast_to(e.const, (d,)).copy()) for e in prelude]
    return CheckNet(tuple(prelude), tuple(layers))


# ── bounds (outward-rounded float64) ─────────────────────────────────────────────────────


def _bdot(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a[n] @ v[n]`` per box: (N, R, n) and (N, n) to (N, R)."""
    return np.matmul(a, v[:, :, None])[:, :, 0]


def _down(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, -np.inf)


def _up(a: np.ndarray) -> np.ndarray:
    return np.nextafter(a, np.inf)


def _gamma32(n: int) -> float:
    return n * U32 / (1.0 - n * U32) * (1.0 + 2.0**-40)


def _input_box(net: CheckNet, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The box holding the executed (float32) result of the elementwise prelude, and ``dev``:
    how far the executed result can be from the exact one
    (each op rounds by at most ``2^-24`` of its result, plus ``2^-126``)."""
    dev = np.zeros_like(lo)
    for e in net.prelude:
        c = e.const
        if e.op == "sub":
            a, b, scale = _down(lo - c), _up(hi - c), np.ones_like(c)
        elif e.op == "add":
            a, b, scale = _down(lo + c), _up(hi + c), np.ones_like(c)
        else:
            if np.any(c == 0) and e.op == "div":
                raise UsageError("the network divides by zero")
            x1, x2 = (lo / c, hi / c) if e.op == "div" else (lo * c, hi * c)
            a, b = _down(np.minimum(x1, x2)), _up(np.maximum(x1, x2))
            scale = _up(np.abs(1.0 / c if e.op == "div" else c))
        moved = _up(scale * dev)
        dev = _up((moved + U32 * (np.maximum(np.abs(a), np.abs(b)) + moved) + TINY32) * (1 + 2.0**-40))
        lo, hi = a, b
    return _down(lo - dev), _up(hi + dev), dev


class _Bounds:
    """Bounds of one chunk of N boxes: executed pre-activations of every hidden layer, each
    layer's float32 error, and the back-substitution of spec rows."""

    def __init__(
        self, net: CheckNet, lo: np.ndarray, hi: np.ndarray, stated: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """``stated`` (per hidden layer, (N, n_k) arrays, NaN where none): the certificate's
        bounds; where given, the bound used is the hull of the stated and the derived one (sound
        because the derived one is; the stated one makes the relaxation the engine's)."""
        self.net = net
        self.u_lo, self.u_hi, self.u_dev = _input_box(net, lo, hi)
        self.center = 0.5 * (self.u_lo + self.u_hi)
        self.radius = _up(np.maximum(self.u_hi - self.center, self.center - self.u_lo))
        self.absu = np.maximum(np.abs(self.u_lo), np.abs(self.u_hi))
        self.pre_lo: list[np.ndarray] = []
        self.pre_hi: list[np.ndarray] = []
        self.err: list[np.ndarray] = []  # per layer (N, n_k): its own float32 error bound
        self.hmax: list[np.ndarray] = [self.absu]  # per layer input (N, n_in): |h| bound
        sym: tuple[np.ndarray, ...] | None = None  # symbolic equations of the previous ReLU's output
        for k, layer in enumerate(net.layers):
            absw = np.abs(layer.weight)
            err = _up(
                _gamma32(layer.roundings) * (self.hmax[k] @ absw.T + np.abs(layer.bias)) * (1 + 2.0**-40)
                + layer.roundings * TINY32
            )
            self.err.append(err)
            if k == len(net.layers) - 1:
                break
            z_lo, z_hi = self._interval(k)
            eqs = self._symbolic(k, sym)
            s_lo, l_hi = self._concretize(eqs[0], eqs[1])
            u_lo, s_hi = self._concretize(eqs[2], eqs[3])
            z_lo, z_hi = np.maximum(z_lo, s_lo), np.minimum(z_hi, s_hi)
            relaxed = k > 0 and any(
                bool(((lo_ < 0) & (hi_ > 0)).any()) for lo_, hi_ in zip(self.pre_lo, self.pre_hi, strict=True)
            )
            for r_i, rule in enumerate(HIDDEN_SLOPES if relaxed else ()):
                # back-substitution, rule by rule, for each box's neurons still unstable; the
                # first rule also tightens the stable ones (as the engine does for a neuron
                # unstable on any box of its batch): their bounds set the rounding bounds and
                # the interval arithmetic of the layers above
                unstable = (z_lo < 0) & (z_hi > 0)
                target = np.ones_like(unstable) if r_i == 0 else unstable
                width = int(target.sum(axis=1).max())
                if width == 0:
                    break
                order = np.argsort(~target, axis=1, kind="stable")[:, :width]  # (N, R): targets first
                valid = np.take_along_axis(target, order, axis=1)
                n_box, n_out = z_lo.shape
                rows = np.zeros((n_box, 2 * width, n_out))
                np.put_along_axis(rows[:, :width], order[:, :, None], 1.0, axis=2)
                np.put_along_axis(rows[:, width:], order[:, :, None], -1.0, axis=2)  # +z_j and -z_j
                e = np.take_along_axis(err, order, axis=1)
                lam, const, mag = self._backward(k, rows, np.zeros(1), rule)
                low = self._minimum(lam, const - np.concatenate([e, e], axis=1), mag + np.concatenate([e, e], axis=1))
                new_lo = np.where(valid, low[:, :width], -np.inf)
                new_hi = np.where(valid, -low[:, width:], np.inf)
                np.put_along_axis(z_lo, order, np.maximum(np.take_along_axis(z_lo, order, axis=1), new_lo), axis=1)
                np.put_along_axis(z_hi, order, np.minimum(np.take_along_axis(z_hi, order, axis=1), new_hi), axis=1)
            if stated is not None:
                s_lo_k, s_hi_k = stated[k]
                z_lo = np.where(np.isnan(s_lo_k), z_lo, np.minimum(z_lo, s_lo_k))
                z_hi = np.where(np.isnan(s_hi_k), z_hi, np.maximum(z_hi, s_hi_k))
            self.pre_lo.append(z_lo)
            self.pre_hi.append(z_hi)
            self.hmax.append(np.maximum(z_hi, 0.0))
            sym = self._relu_equations(eqs, z_lo, z_hi, l_hi, u_lo)

    # Symbolic intervals (ReluVal/Neurify): each neuron of a layer carries a lower and an upper
    # linear function of the input u, as (N, n, d + 1) arrays (coefficients, constant), with
    # the magnitude of every term that made them (for the outward rounding).

    def take(self, idx: np.ndarray) -> _Bounds:
        """The bounds of boxes ``idx`` (repeats allowed), without recomputing them."""
        out = object.__new__(_Bounds)
        out.net = self.net
        for name in ("u_lo", "u_hi", "u_dev", "center", "radius", "absu"):
            setattr(out, name, getattr(self, name)[idx])
        for name in ("pre_lo", "pre_hi", "err", "hmax"):
            setattr(out, name, [a[idx] for a in getattr(self, name)])
        return out

    def _symbolic(self, k: int, prev: tuple[np.ndarray, ...] | None) -> tuple[np.ndarray, ...]:
        """Lower and upper equations of layer ``k``'s executed pre-activation, and magnitudes."""
        layer = self.net.layers[k]
        w, b, err = layer.weight, layer.bias, self.err[k]
        n_box = len(self.center)
        if prev is None:
            eq = np.zeros((n_box, w.shape[0], w.shape[1] + 1))
            eq[:, :, :-1] = w
            eq[:, :, -1] = b
            mag = np.abs(eq)
            lo_eq, hi_eq = eq.copy(), eq.copy()
            lo_mag, hi_mag = mag, mag.copy()
        else:
            el, ml, eu, mu = prev
            wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
            lo_eq = np.matmul(wp, el) + np.matmul(wn, eu)
            hi_eq = np.matmul(wp, eu) + np.matmul(wn, el)
            lo_eq[:, :, -1] += b
            hi_eq[:, :, -1] += b
            lo_mag = np.matmul(wp, ml + np.abs(el)) - np.matmul(wn, mu + np.abs(eu))
            hi_mag = np.matmul(wp, mu + np.abs(eu)) - np.matmul(wn, ml + np.abs(el))
            lo_mag[:, :, -1] += np.abs(b)
            hi_mag[:, :, -1] += np.abs(b)
        lo_eq[:, :, -1] -= err
        hi_eq[:, :, -1] += err
        lo_mag[:, :, -1] += err
        hi_mag[:, :, -1] += err
        return lo_eq, lo_mag, hi_eq, hi_mag

    def _concretize(self, eq: np.ndarray, mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outward-rounded minimum and maximum (N, n) of equations over each box."""
        a, c = eq[:, :, :-1], eq[:, :, -1]
        mid = _bdot(a, self.center) + c
        rad = _bdot(np.abs(a), self.radius)
        total = _bdot(mag[:, :, :-1] + np.abs(a), self.absu + self.radius) + mag[:, :, -1] + np.abs(c)
        slack = REL * (total + rad) + ABS
        return mid - rad - slack, mid + rad + slack

    def _relu_equations(
        self, eqs: tuple[np.ndarray, ...], z_lo: np.ndarray, z_hi: np.ndarray, l_hi: np.ndarray, u_lo: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Equations of ``relu(z)``: below by ``lam L`` (any lam in [0, 1] is sound, since
        ``relu(z) >= relu(L) >= lam L``), above by the chord ``s (U - U_lo)`` through the lowest
        value of ``U`` and the upper bound of z (``s`` rounded up)."""
        lo_eq, lo_mag, hi_eq, hi_mag = eqs
        active, inactive = z_lo >= 0, z_hi <= 0
        unstable = ~active & ~inactive
        pos = unstable & (l_hi > 0)
        lam = np.where(active, 1.0, np.where(pos, np.clip(l_hi / np.where(pos, l_hi - z_lo, 1.0), 0.0, 1.0), 0.0))
        chord = unstable & (u_lo < 0)
        s = np.where(chord, _up(_up(z_hi / np.where(chord, z_hi - u_lo, 1.0)) * (1 + 2.0**-48)), 1.0)
        s = np.where(inactive, 0.0, s)
        new_lo, new_lo_mag = lo_eq * lam[:, :, None], lo_mag * lam[:, :, None]
        new_hi = hi_eq * s[:, :, None]
        new_hi_mag = hi_mag * s[:, :, None]
        shift = np.where(chord, -s * u_lo, 0.0)
        new_hi[:, :, -1] += shift
        new_hi_mag[:, :, -1] += np.abs(shift)
        return new_lo, new_lo_mag, new_hi, new_hi_mag

    def _interval(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        layer = self.net.layers[k]
        w, b = layer.weight, layer.bias
        if k == 0:
            c, r, m = self.center, self.radius, self.absu
        else:
            h_lo, h_hi = np.maximum(self.pre_lo[-1], 0.0), np.maximum(self.pre_hi[-1], 0.0)
            c = 0.5 * (h_lo + h_hi)
            r = _up(np.maximum(h_hi - c, c - h_lo))
            m = h_hi
        mid = c @ w.T + b
        rad = r @ np.abs(w).T
        slack = REL * (m @ np.abs(w).T + np.abs(b) + rad) + ABS + self.err[k]
        return mid - rad - slack, mid + rad + slack

    def _backward(
        self, start: int, lam: np.ndarray, const0: np.ndarray, rule: str, given: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``lam . z_start + const0 >= lam_0 . u + const`` (u: the executed input); ``mag`` is
        the magnitude of every term on the way, for the outward rounding. ``given`` (per layer,
        (N, R, n_k), NaN where not given) are lower slopes that replace the rule's."""
        n_boxes = lam.shape[0]
        layer = self.net.layers[start]
        const = np.broadcast_to(const0, lam.shape[:2]).astype(np.float64).copy()
        const += lam @ layer.bias
        mag = _bdot(np.abs(lam), self.hmax[start] @ np.abs(layer.weight).T + np.abs(layer.bias))
        lam = lam @ layer.weight  # now over h_{start-1} (or u)
        for k in range(start - 1, -1, -1):
            lower, u = self.pre_lo[k], self.pre_hi[k]
            active = lower >= 0
            unstable = (lower < 0) & (u > 0)
            denom = np.where(unstable, u - lower, 1.0)
            s_up = np.where(unstable, _up(_up(u / denom) * (1 + 2.0**-48)), 0.0)
            if rule == "area":
                alpha = np.where(unstable & (u > -lower), 1.0, 0.0)
            elif rule == "one":
                alpha = unstable.astype(np.float64)
            elif rule == "zero":
                alpha = np.zeros_like(u)
            else:
                alpha = np.clip(np.where(unstable, u / denom, 0.0), 0.0, 1.0)
            # slopes per neuron: for a coefficient >= 0 the lower one, else the upper one
            up = np.where(active, 1.0, s_up)[:, None, :]
            low = np.where(active, 1.0, alpha)[:, None, :]
            if given is not None:
                low = np.where(np.isnan(given[k]) | ~unstable[:, None, :], low, given[k])
            neg = np.minimum(lam, 0.0)
            lam_z = neg * up + np.maximum(lam, 0.0) * low
            # the upper relaxation's intercept -s_up * lower (>= 0) on unstable ReLUs, times lam < 0
            icpt = _bdot(neg, np.where(unstable, -s_up * lower, 0.0))
            const += icpt
            layer = self.net.layers[k]
            abs_z = np.abs(lam_z)
            const += lam_z @ layer.bias - _bdot(abs_z, self.err[k])
            mag += np.abs(icpt) + _bdot(abs_z, self.hmax[k] @ np.abs(layer.weight).T + self.err[k] + np.abs(layer.bias))
            n_out, n_in = layer.weight.shape
            lam = (lam_z.reshape(-1, n_out) @ layer.weight).reshape(n_boxes, -1, n_in)
        return lam, const, mag

    def _minimum(self, lam: np.ndarray, const: np.ndarray, mag: np.ndarray) -> np.ndarray:
        alam = np.abs(lam)
        low = _bdot(lam, self.center) - _bdot(alam, self.radius) + const
        total = mag + np.abs(const) + _bdot(alam, self.absu + self.radius)
        return low - REL * total - ABS


# ── the check ────────────────────────────────────────────────────────────────────────────


@dataclass
class CheckReport:
    """``certified``, or the first reason why not; what was checked and how long it took."""

    certified: bool
    reason: str
    leaves: int
    refutations: int
    seconds: float
    arithmetic: str = ARITHMETIC
    #: not certified only because some leaves carry no checkable evidence (LP, z3): every
    #: piece of evidence there is checked and holds
    incomplete: bool = False

    def line(self) -> str:
        if self.certified:
            return (f"certified ({self.leaves} leaves, {self.refutations} refutations, "
                    f"{self.seconds:.2f} s; {self.arithmetic})")
        return f"not certified: {self.reason}"


class NotCertified(Exception):
    pass


def check(cert: Certificate, onnx_path: Path, expected: PropertyText | None = None) -> CheckReport:
    """Check ``cert`` against the ONNX file (and ``expected``, the property the claim means,
    when the caller can derive it). Never raises for a bad certificate: the report says why.
    Runs with single-threaded BLAS (:func:`msl.engines.formal.runtime.fast_numpy`, a process
    setting, no bound code): the matrices are small and spinning BLAS threads are far slower."""
    from msl.engines.formal.runtime import fast_numpy

    with fast_numpy():
        return _check(cert, onnx_path, expected)


def _check(cert: Certificate, onnx_path: Path, expected: PropertyText | None) -> CheckReport:
    t0 = time.monotonic()
    leaves = refutations = 0
    try:
        digest = sha256_of(Path(onnx_path).read_bytes())
        if digest != cert.network.sha256:
            raise NotCertified(
                f"the network file {onnx_path} (sha256 {digest[7:19]}…) is not the one "
                f"the certificate is for ({cert.network.sha256[7:19]}…)"
            )
        if expected is not None and expected != cert.property:
            raise NotCertified("the certificate proves another property than the claim's")
        net = read_onnx(Path(onnx_path))
        prop = cert.property
        _check_property_shape(prop, net)
        if len(cert.trees) != len(prop.regions):
            raise NotCertified(f"the certificate has {len(cert.trees)} trees for {len(prop.regions)} regions")
        tasks: list[tuple[str, np.ndarray, np.ndarray, Node, Refutation]] = []
        missing: list[str] = []
        lp_tasks: list[tuple[str, np.ndarray, np.ndarray, Node, Region, list[int]]] = []
        for r, (region, tree) in enumerate(zip(prop.regions, cert.trees, strict=True)):
            n_leaves, region_tasks = _walk(r, region, tree, len(prop.unsafe), missing, lp_tasks)
            leaves += n_leaves
            tasks.extend(region_tasks)
        refutations = len(tasks)
        _check_refutations(net, prop, tasks)
        for task in lp_tasks:
            _check_lp(net, prop, *task)
    except NotCertified as exc:
        return CheckReport(False, str(exc), leaves, refutations, time.monotonic() - t0)
    except UsageError as exc:
        return CheckReport(False, exc.message, leaves, refutations, time.monotonic() - t0)
    if missing:
        reason = f"{missing[0]}" + (f" (and {len(missing) - 1} more leaves)" if len(missing) > 1 else "")
        return CheckReport(False, reason, leaves, refutations, time.monotonic() - t0, incomplete=True)
    return CheckReport(True, "", leaves, refutations, time.monotonic() - t0)


def _check_property_shape(prop: PropertyText, net: CheckNet) -> None:
    if prop.inputs != net.inputs:
        raise NotCertified(f"the property has {prop.inputs} inputs, the network {net.inputs}")
    for region in prop.regions:
        if len(region.lower) != net.inputs or len(region.upper) != net.inputs:
            raise NotCertified("a region's box does not match the network's inputs")
        if any(c.coeffs.__len__() != net.inputs for c in region.constraints):
            raise NotCertified("a region constraint does not match the network's inputs")
        if any(a > b for a, b in zip(region.lower, region.upper, strict=True)):
            raise NotCertified("a region's box is empty (lower > upper)")
    for conj in prop.unsafe:
        if any(len(c.coeffs) != net.outputs for c in conj):
            raise NotCertified(f"an unsafe row does not match the network's {net.outputs} outputs")


def _walk(
    r: int, region: Region, tree: Sequence[Node], n_dis: int, missing: list[str],
    lp_tasks: list[tuple[str, np.ndarray, np.ndarray, Node, Region, list[int]]],
) -> tuple[int, list[tuple[str, np.ndarray, np.ndarray, Node, Refutation]]]:
    """Check that the preorder ``tree`` covers the region's box exactly and that every leaf
    is closed; returns the number of leaves and the refutations to check (with their boxes).
    Leaves without checkable evidence are added to ``missing``."""
    tasks: list[tuple[str, np.ndarray, np.ndarray, Node, Refutation]] = []
    lo0 = np.array(region.lower, dtype=np.float64)
    hi0 = np.array(region.upper, dtype=np.float64)
    # stack of (box lo, hi, disjuncts refuted on the path)
    stack: list[tuple[np.ndarray, np.ndarray, frozenset[int]]] = [(lo0, hi0, frozenset())]
    leaves = 0
    for pos, node in enumerate(tree):
        if not stack:
            raise NotCertified(f"region {r}: the tree has nodes after its last leaf (node {pos})")
        lo, hi, done = stack.pop()
        where = f"region {r}, node {pos}"
        for ref in node.refute:
            if ref.disjunct >= n_dis:
                raise NotCertified(f"{where}: refutes disjunct {ref.disjunct}, the property has {n_dis}")
            if len(node.bounds) != len(node.unstable) or any(
                len(b) != len(u) for b, u in zip(node.bounds, node.unstable, strict=True)
            ):
                raise NotCertified(f"{where}: the stated bounds do not match the node's unstable ReLUs")
            if any(
                len(row) != len(node.unstable) or any(len(a) != len(u) for a, u in zip(row, node.unstable, strict=True))
                for row in ref.alpha
            ):
                raise NotCertified(
                    f"{where}: the slopes of disjunct {ref.disjunct} do not match the node's unstable ReLUs"
                )
            tasks.append((where, lo, hi, node, ref))
        done = done | {ref.disjunct for ref in node.refute}
        if node.split is not None:
            d, v = node.split
            if not 0 <= d < len(lo) or not lo[d] < v < hi[d]:
                raise NotCertified(f"{where}: the split of input {d} at {v!r} is not strictly inside the box")
            a_hi = hi.copy()
            a_hi[d] = v
            b_lo = lo.copy()
            b_lo[d] = v
            stack.append((b_lo, hi, done))
            stack.append((lo, a_hi, done))
            continue
        leaves += 1
        if node.leaf == "bounds":
            missing = sorted(set(range(n_dis)) - done)
            if missing:
                raise NotCertified(f"{where} (leaf): disjunct {missing[0]} is refuted neither on the leaf nor above it")
        elif node.leaf == "outside":
            if node.outside is None or not 0 <= node.outside < len(region.constraints):
                raise NotCertified(f"{where} (leaf): names no region constraint it is outside of")
            c = region.constraints[node.outside]
            a = np.array(c.coeffs)
            low = float(np.where(a > 0, lo, hi) @ a)
            low -= REL * float(np.abs(a) @ np.maximum(np.abs(lo), np.abs(hi)) + abs(c.rhs)) + ABS
            if not low > c.rhs:
                raise NotCertified(
                    f"{where} (leaf): the box is not outside region constraint "
                    f"{node.outside} ({low:.6g} <= {c.rhs:.6g})"
                )
        elif node.leaf == "lp" and node.lp is not None:
            lp_tasks.append((where, lo, hi, node, region, sorted(set(range(n_dis)) - done)))
        else:
            kind = {"lp": "an LP leaf", "smt": "a z3 leaf", "empty": "an empty region", "open": "never closed"}.get(
                node.leaf or "", "no kind"
            )
            missing.append(f"leaf {where} has no checkable evidence ({kind})")
    if stack:
        raise NotCertified(f"region {r}: the tree ends before every box has a leaf (shrunk cover)")
    return leaves, tasks


def _check_lp(net: CheckNet, prop: PropertyText, where: str, lo: np.ndarray, hi: np.ndarray, node: Node, region: Region,
              open_dis: list[int]) -> None:
    """An ``lp`` leaf: every ReLU it does not list is stable on the box *as executed*, every
    phase pattern of the listed ones has a case for every open disjunct, and each case's
    multipliers combine its rows into a function positive on the whole box.

    A piece is a phase pattern of the executed network: on it the executed network is affine
    in the input and in the rounding errors (:func:`_piece_rows`), so each row (unsafe and
    phase) is relaxed by its own margin. Every x of the box has some executed pattern, and
    meets that piece's relaxed rows, so the pieces cover the box."""
    import itertools

    ev = node.lp
    assert ev is not None
    executed = _Bounds(net, lo[None], hi[None])
    hidden = [lay.weight.shape[0] for lay in net.layers[:-1]]
    if len(ev.unstable) != len(hidden) or any(j >= h for u, h in zip(ev.unstable, hidden, strict=True) for j in u):
        raise NotCertified(f"{where} (LP leaf): its unstable ReLUs do not match the network's hidden layers")
    fixed_active = []
    for k, u in enumerate(ev.unstable):
        lk, uk = executed.pre_lo[k][0], executed.pre_hi[k][0]
        free = np.ones(hidden[k], dtype=bool)
        free[u] = False
        bad = np.nonzero(free & (lk < 0) & (uk > 0))[0]
        if len(bad):
            raise NotCertified(f"{where} (LP leaf): hidden layer {k}, ReLU {int(bad[0])} is unstable on the box"
                               f" ([{lk[bad[0]]:.6g}, {uk[bad[0]]:.6g}]) but the certificate fixes its phase")
        fixed_active.append(lk >= 0)
    n_unstable = sum(len(u) for u in ev.unstable)
    cases = {(tuple(c.phases), c.disjunct): c for c in ev.cases}
    for bits in itertools.product((0, 1), repeat=n_unstable):
        for j in open_dis:
            if (bits, j) not in cases:
                raise NotCertified(f"{where} (LP leaf): no case for phases {list(bits)} and disjunct {j}")
    gain, offset = _prelude_affine(net)
    xabs = np.maximum(np.abs(lo), np.abs(hi))
    err = np.concatenate([executed.u_dev[0]] + [e[0] for e in executed.err])
    for bits in itertools.product((0, 1), repeat=n_unstable):
        phase_rows, (ya, yc, yma, ymc), (g_out, m_out) = _piece_rows(
            net, gain, offset, ev.unstable, bits, fixed_active, err)
        for j in open_dis:
            case = cases[(bits, j)]
            out_rows = []
            for c in prop.unsafe[j]:
                cv, ca = np.array(c.coeffs), np.abs(c.coeffs)
                shift = _margin(cv @ g_out, ca @ m_out, err)
                out_rows.append(
                    (cv @ ya, float(cv @ yc) - c.rhs - shift, ca @ yma, float(ca @ ymc) + abs(c.rhs) + shift)
                )
            all_rows = (
                out_rows
                + phase_rows
                + [(np.array(c.coeffs), -c.rhs, np.abs(c.coeffs), abs(c.rhs)) for c in region.constraints]
            )
            if len(case.multipliers) != len(all_rows):
                raise NotCertified(
                    f"{where} (LP leaf): phases {list(bits)}, disjunct {j}: {len(case.multipliers)} multipliers"
                    f" for {len(all_rows)} rows"
                )
            coef = np.zeros(len(lo))
            const = 0.0
            mag = 0.0
            for mu, (a, b, ma, mb) in zip(case.multipliers, all_rows, strict=True):
                coef += mu * a
                const += mu * b
                mag += mu * (float((ma + np.abs(a)) @ xabs) + mb + abs(b))
            low = float(np.where(coef > 0, lo, hi) @ coef) + const
            low -= REL * (mag + float(np.abs(coef) @ xabs) + abs(const)) + ABS
            if not low > 0:
                raise NotCertified(f"{where} (LP leaf): phases {list(bits)}, disjunct {j}: the multipliers' combination"
                                   f" has minimum {low:.6g} on the box, not > 0")


def _margin(coef: np.ndarray, chain: np.ndarray, err: np.ndarray) -> float:
    """How far float32 execution can move a row of one piece: ``|coef| . err`` over the
    rounding errors on its way (``err``: bounds on the prelude's, then each layer's own, in the
    order of :func:`_piece_rows`' columns), outward-rounded; ``chain`` are the magnitudes of the
    terms that made ``coef``."""
    err = err[: len(coef)]
    total = float(np.abs(coef) @ err)
    return float(_up(np.float64(total + REL * (float(chain @ err) + total))))


def _prelude_affine(net: CheckNet) -> tuple[np.ndarray, np.ndarray]:
    """The elementwise prelude over the reals as ``u = gain * x + offset``."""
    d = net.inputs
    gain, offset = np.ones(d), np.zeros(d)
    for e in net.prelude:
        if e.op == "sub":
            offset = offset - e.const
        elif e.op == "add":
            offset = offset + e.const
        elif e.op == "mul":
            gain, offset = gain * e.const, offset * e.const
        else:
            gain, offset = gain / e.const, offset / e.const
    return gain, offset


def _piece_rows(
    net: CheckNet, gain: np.ndarray, offset: np.ndarray, unstable: list[list[int]], bits: tuple[int, ...],
    fixed_active: list[np.ndarray], err: np.ndarray,
) -> tuple[list[tuple[np.ndarray, float, np.ndarray, float]], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
           tuple[np.ndarray, np.ndarray]]:
    """One phase pattern ``D`` of the executed network (the listed ReLUs' ``bits``, the others
    ``fixed_active``). On it the executed network is affine in x and in the rounding errors:
    ``z_k = W_k D_{k-1} z_{k-1} + b_k + e_k`` (``z_0 = W_0 (u + e_u) + b_0 + e_0``, ``u`` the
    prelude over the reals), exactly, since a ReLU of known phase does not round.

    Returns the phase rows ``(coef, const, coef magnitude, const magnitude)``, each meaning
    ``coef . x + const <= 0`` and relaxed by its own margin ``|G_i| . err`` (``G``: the row's
    coefficients on every error, carried forward with their signs through the piece's phases,
    so errors that cancel through the weights are not counted twice): a point whose executed
    phases are ``bits`` meets them. Then the output map over the reals ``y = A x + a`` with
    its magnitudes ``(A, a, |A| terms, |a| terms)``, and the outputs' error coefficients ``G``
    with their magnitudes, for :func:`_margin`."""
    a_map = np.diag(gain)  # (n, d)
    c_map = offset.copy()
    m_a, m_c = np.abs(a_map), np.abs(c_map)
    g = np.eye(len(gain))  # the previous layer's output's coefficients on the errors so far
    m_g = g.copy()
    phase_rows: list[tuple[np.ndarray, float, np.ndarray, float]] = []
    pos = 0
    for k, layer in enumerate(net.layers):
        w, b = layer.weight, layer.bias
        za, zc = w @ a_map, w @ c_map + b
        zma, zmc = np.abs(w) @ (m_a + np.abs(a_map)), np.abs(w) @ (m_c + np.abs(c_map)) + np.abs(b)
        n = w.shape[0]
        zg = np.hstack([w @ g, np.eye(n)])  # the errors so far through W_k, then e_k itself
        zmg = np.hstack([np.abs(w) @ (m_g + np.abs(g)), np.eye(n)])
        if k == len(net.layers) - 1:
            return phase_rows, (za, zc, zma, zmc), (zg, zmg)
        active = fixed_active[k].copy()
        for j in unstable[k]:
            on = bits[pos] == 1
            pos += 1
            active[j] = on
            sign = -1.0 if on else 1.0  # on: -z <= 0; off: z <= 0
            shift = _margin(zg[j], zmg[j], err)
            phase_rows.append((sign * za[j], float(sign * zc[j]) - shift, zma[j], float(zmc[j]) + shift))
        mask = active.astype(np.float64)
        a_map, c_map, m_a, m_c = za * mask[:, None], zc * mask, zma * mask[:, None], zmc * mask
        g, m_g = zg * mask[:, None], zmg * mask[:, None]
    raise AssertionError("unreachable")


def _check_refutations(
    net: CheckNet, prop: PropertyText, tasks: list[tuple[str, np.ndarray, np.ndarray, Node, Refutation]]
) -> None:
    """Check every refutation on its box, :data:`CHUNK` boxes at a time: each row's lower
    bound by back-substitution with the certificate's slopes, then their weighted sum."""
    rows_of = [
        np.array([c.coeffs for c in conj], dtype=np.float64).reshape(len(conj), net.outputs) for conj in prop.unsafe
    ]
    rhs_of = [np.array([c.rhs for c in conj], dtype=np.float64) for conj in prop.unsafe]
    hidden = [lay.weight.shape[0] for lay in net.layers[:-1]]
    for where, _, _, node, ref in tasks:
        n = len(prop.unsafe[ref.disjunct])
        if len(ref.weights) != n or len(ref.alpha) != n:
            raise NotCertified(
                f"{where}: the refutation of disjunct {ref.disjunct} has {len(ref.weights)} weights for {n} rows"
            )
        if not any(w > 0 for w in ref.weights):
            raise NotCertified(f"{where}: the refutation of disjunct {ref.disjunct} has no positive weight")
        if node.unstable and (
            len(node.unstable) != len(hidden)
            or any(i >= h for u, h in zip(node.unstable, hidden, strict=True) for i in u)
        ):
            raise NotCertified(f"{where}: its unstable ReLUs do not match the network's hidden layers")
    last = len(net.layers) - 1
    for start in range(0, len(tasks), CHUNK):
        chunk = tasks[start : start + CHUNK]
        n_box = len(chunk)
        r_max = max(len(t[4].weights) for t in chunk)
        lam = np.zeros((n_box, r_max, net.outputs))
        off = np.zeros((n_box, r_max))
        weight = np.zeros((n_box, r_max))
        given = [np.full((n_box, r_max, h), np.nan) for h in hidden]
        for i, (_, _, _, node, ref) in enumerate(chunk):
            r = len(ref.weights)
            lam[i, :r] = rows_of[ref.disjunct]
            off[i, :r] = rhs_of[ref.disjunct]
            weight[i, :r] = ref.weights
            for k, idx in enumerate(node.unstable):
                if idx:
                    given[k][i, :r][:, idx] = np.array([row[k] for row in ref.alpha])
        # the hidden bounds once per node (a node may refute several disjuncts)
        first: dict[int, int] = {}
        for i, t in enumerate(chunk):
            first.setdefault(id(t[3]), i)
        boxes = list(first.values())
        slot = np.array([boxes.index(first[id(t[3])]) for t in chunk])
        stated = [(np.full((len(boxes), h), np.nan), np.full((len(boxes), h), np.nan)) for h in hidden]
        for b_i, i in enumerate(boxes):
            node = chunk[i][3]
            for k, (idx, pairs) in enumerate(zip(node.unstable, node.bounds, strict=True)):
                if idx:
                    arr = np.array(pairs, dtype=np.float64).reshape(-1, 2)
                    stated[k][0][b_i, idx] = arr[:, 0]
                    stated[k][1][b_i, idx] = arr[:, 1]
        bounds = _Bounds(
            net, np.array([chunk[i][1] for i in boxes]), np.array([chunk[i][2] for i in boxes]), stated
        ).take(slot)
        row_err = np.einsum("nrj,nj->nr", np.abs(lam), bounds.err[last])
        coef, const, mag = bounds._backward(last, lam, np.zeros(1), "area", given)
        # sum_r w_r g_r >= (sum_r w_r coef_r) . u + sum_r w_r const_r on the box: combine the
        # rows' linear bounds first, then minimise over the box.
        const = const - off - row_err
        mag = mag + np.abs(off) + row_err
        comb = np.einsum("nr,nrd->nd", weight, coef)[:, None, :]
        comb_const = (weight * const).sum(axis=1)[:, None]
        comb_mag = (
            (weight * mag).sum(axis=1)[:, None]
            + np.einsum("nr,nrd,nd->n", weight, np.abs(coef), bounds.absu + bounds.radius)[:, None]
            + (weight * np.abs(const)).sum(axis=1)[:, None]
        )
        total = bounds._minimum(comb, comb_const, comb_mag)[:, 0]
        bad = np.nonzero(~(total > 0))[0]
        if len(bad):
            i = int(bad[0])
            where, blo, bhi, _, ref = chunk[i]
            raise NotCertified(
                f"{where}: disjunct {ref.disjunct} is not refuted: its certified lower bound is {total[i]:.6g}, not > 0"
                f" (box {np.array2string(blo, precision=6)} .. {np.array2string(bhi, precision=6)})"
            )


# ── the command ──────────────────────────────────────────────────────────────────────────


def property_of(prop: Any) -> PropertyText:
    """The :class:`PropertyText` of an engine :class:`~msl.engines.formal.property.Property`
    (to compare a certificate with the property a claim or VNN-LIB file means)."""
    def rows(cs: Any) -> list[Constraint]:
        return [Constraint(coeffs=list(c.coeffs), rhs=c.rhs, strict=c.strict) for c in cs]

    return PropertyText(
        inputs=len(prop.regions[0].lower),
        regions=[
            Region(lower=list(r.lower), upper=list(r.upper), constraints=rows(r.constraints)) for r in prop.regions
        ],
        unsafe=[rows(conj) for conj in prop.unsafe.disjuncts],
    )


def _network_path(role: str, ref: str, bindings: dict[str, str]) -> Path:
    """The ONNX file of a finding's network role: bound with --model, a path, or a registry
    reference (``organism:relu-net``) resolved locally."""
    if role in bindings:
        return Path(bindings[role])
    if Path(ref).is_file():
        return Path(ref)
    from msl.models import load_model

    model = load_model(ref, "network", progress=False)
    path = getattr(model, "path", None)
    if path is None:
        raise UsageError(f"role {role}: {ref} is not an ONNX network (bind it with --model {role}=PATH)")
    return Path(path)


def check_finding(finding: Any, findings_file: Path, bindings: dict[str, str]) -> CheckReport:
    """Check a proved finding's certificate, stored beside ``findings_file`` (see the module doc)."""
    def no(reason: str) -> CheckReport:
        return CheckReport(False, reason, 0, 0, 0.0)

    digest = finding.proof.certificate if finding.proof is not None else None
    if digest is None:
        return no("the finding carries no certificate")
    path = certificates_dir(findings_file) / f"{digest.removeprefix('sha256:')}.json.gz"
    if not path.is_file():
        return no(f"its certificate {path} is missing")
    nets = [m for m in finding.models if m.kind == "network"]
    if not nets:
        return no("the finding names no network")
    try:
        cert = load(path, digest)
    except UsageError as exc:  # tampered or malformed: the proof is not certified
        return no(exc.message)
    # A claim over several networks (refine: base and refined) proves a property of one of
    # them: the one whose file the certificate names by its sha256 (check() verifies it).
    paths = [_network_path(m.role, m.ref, bindings) for m in nets]
    named = [p for p in paths if sha256_of(p.read_bytes()) == cert.network.sha256]
    return check(cert, named[0] if named else paths[0])


def certify_command(
    file: Path, bindings: dict[str, str], network: Path | None, vnnlib_file: Path | None, console: Any
) -> int:
    """``msl certify``: see :func:`msl.cli.certify`. Returns the exit code."""
    from msl.errors import ExitCode

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    try:
        head = file.read_bytes()[:4096]
    except OSError as exc:
        raise UsageError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    if head[:2] == b"\x1f\x8b" or b'"msl-certificate/' in head or b'"trees"' in head:
        if network is None:
            raise UsageError(f"{file} is a certificate: name the ONNX file it is about with --network")
        cert = load(file)
        expected = None
        if vnnlib_file is not None:
            from msl.engines.formal.vnnlib import read_vnnlib

            props = read_vnnlib(vnnlib_file)
            if len(props) != 1:
                raise UsageError(f"{vnnlib_file}: holds {len(props)} properties; certificates cover one")
            expected = property_of(props[0])
        report = check(cert, network, expected)
        source = f"the property of {vnnlib_file}" if expected is not None else "the property the certificate states"
        say(f"{file.name}: {report.line()} [against {source}]")
        return ExitCode.OK if report.certified else ExitCode.FAILED
    from msl.findings import load_findings

    doc = load_findings(file)
    proved = [f for f in doc.findings if f.verdict.value == "proved"]
    if not proved:
        say("no proved finding in the file: nothing to certify")
        return ExitCode.OK
    ok = True
    for f in proved:
        report = check_finding(f, file, bindings)
        say(
            f"{f.claim.file}:{f.claim.name}: {report.line()}"
            + (" [against the property the certificate states]" if report.leaves else "")
        )
        ok = ok and report.certified
    return ExitCode.OK if ok else ExitCode.FAILED
