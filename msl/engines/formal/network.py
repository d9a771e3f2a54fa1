"""Piecewise-linear networks: affine layers with ReLU between them, read from ONNX or torch.

The formal engine reasons about a network as a chain of affine maps
``y = W_L relu(... relu(W_1 n(x) + b_1) ...) + b_L`` where ``n(x) = (x + shift) * gain`` is an
optional per-input normalisation (the ACAS Xu files subtract an offset first). Every parameter is
held as a float64 array whose values are the model's float32 values *exactly*, so z3 can read them
as exact rationals; where a constructor had to fold two maps together in floating point (a
BatchNorm, a ``Mul`` after a layer, two linear maps without a ReLU between them) the network is
marked ``exact=False`` and the solver adds a rounding slack to its exact queries.

A :class:`PLNetwork` also keeps a handle on the *original* model (the ONNX file through
onnxruntime, or the user's torch module): :meth:`PLNetwork.replay` runs that model, and every
counterexample is replayed through it before it is reported, so a mistake in this parser cannot
confirm itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msl.errors import UsageError

if TYPE_CHECKING:
    import torch

#: ONNX files larger than this are refused before parsing (hostile or not a small PL network).
MAX_ONNX_BYTES = 512 * 1024 * 1024
#: An activation may be as wide as the file has weights (a layer reading n values holds at
#: least n), or this wide when the file has fewer: declared sizes cannot make the reader
#: allocate beyond what the file really holds.
MIN_WIDTH_LIMIT = 4096
#: Entries of the dense matrix a convolution becomes (a CIFAR-10 layer: 4,096 x 3,072).
MAX_DENSE_ENTRIES = 1 << 25
#: Entries of the 0/1 matrix a broadcast that repeats activations may add to a layer.
MAX_BROADCAST_ENTRIES = 1 << 24

Replayer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class AffineLayer:
    """``z = weight @ h + bias``; ``weight`` is (out, in) float64, ``bias`` is (out,).

    The rest describes how the model *executes* this map in float32, for
    :mod:`msl.engines.formal.rounding`: the executed value is within
    ``gamma(roundings) * (abs_weight @ |h| + abs_bias)`` of the exact one, for any summation
    order, where ``abs_weight``/``abs_bias`` bound the magnitudes of every term of every
    operation the model runs (``|W2| |W1|`` for two folded matrices, not ``|W2 W1|``) and
    ``roundings`` counts the float32 roundings on the longest path through them. For the first
    layer ``h`` is the raw input (before the normalisation). ``None`` means a plain
    matrix-vector product plus bias: ``|weight|``, ``|bias|`` and fan-in + 1.
    """

    weight: np.ndarray
    bias: np.ndarray
    abs_weight: np.ndarray | None = None
    abs_bias: np.ndarray | None = None
    roundings: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    @property
    def error_terms(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(abs_weight, abs_bias, roundings)``, the defaults filled in."""
        return (
            np.abs(self.weight) if self.abs_weight is None else self.abs_weight,
            np.abs(self.bias) if self.abs_bias is None else self.abs_bias,
            self.shape[1] + 1 if self.roundings is None else self.roundings,
        )


@dataclass(frozen=True, eq=False)
class PLNetwork:
    """A ReLU network: ``layers`` with a ReLU after every layer but the last.

    ``input_shift``/``input_gain`` are the exact normalisation ``n(x) = (x + shift) * gain``
    applied before the first layer (identity when the model has none). ``exact`` says whether the
    layer arrays are the model's parameters exactly (no floating-point folding happened).
    """

    layers: tuple[AffineLayer, ...]
    input_shift: tuple[Fraction, ...]
    input_gain: tuple[Fraction, ...]
    exact: bool
    name: str
    replayer: Replayer = field(repr=False)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            raise UsageError(f"{self.name}: the network has no affine layer")
        for prev, nxt in zip(self.layers, self.layers[1:], strict=False):
            if prev.shape[0] != nxt.shape[1]:
                raise UsageError(f"{self.name}: layer sizes do not chain ({prev.shape} then {nxt.shape})")
        if len(self.input_shift) != self.input_dim or len(self.input_gain) != self.input_dim:
            raise UsageError(f"{self.name}: input normalisation does not match the input size")

    # ----------------------------------------------------------------- shape
    @property
    def input_dim(self) -> int:
        return self.layers[0].shape[1]

    @property
    def output_dim(self) -> int:
        return self.layers[-1].shape[0]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(layer.shape[0] for layer in self.layers[:-1])

    @property
    def has_normalisation(self) -> bool:
        return any(s != 0 for s in self.input_shift) or any(g != 1 for g in self.input_gain)

    # --------------------------------------------------------- float64 view
    @cached_property
    def folded(self) -> tuple[AffineLayer, ...]:
        """The layers with the input normalisation folded into the first one (float64).

        Used for bounding and the float64 forward pass; the folding rounds, which the bound
        margins cover (see :mod:`msl.engines.formal.bounds`). Exact queries use :attr:`layers`.
        """
        if not self.has_normalisation:
            return self.layers
        gain = np.array([float(g) for g in self.input_gain])
        offset = np.array([float(s * g) for s, g in zip(self.input_shift, self.input_gain, strict=True)])
        first = self.layers[0]
        folded = AffineLayer(
            first.weight * gain[None, :], first.bias + first.weight @ offset, *first.error_terms
        )
        return (folded, *self.layers[1:])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for inputs ``x`` ((N, d) or (d,)), computed in float64 with the parsed weights."""
        h = np.asarray(x, dtype=np.float64)
        single = h.ndim == 1
        h = np.atleast_2d(h)
        layers = self.folded
        for i, layer in enumerate(layers):
            h = h @ layer.weight.T + layer.bias
            if i + 1 < len(layers):
                h = np.maximum(h, 0.0)
        return h[0] if single else h

    def replay(self, x: np.ndarray) -> np.ndarray:
        """Outputs of the ORIGINAL model (onnxruntime / torch) for ``x``, as float64.

        Inputs are cast to the model's dtype (float32 for the usual model) first; callers that
        need the input that was really evaluated should pass float32-representable values.
        """
        arr = np.atleast_2d(np.asarray(x, dtype=np.float64))
        out = np.asarray(self.replayer(arr), dtype=np.float64).reshape(arr.shape[0], -1)
        if out.shape[1] != self.output_dim:
            raise UsageError(
                f"{self.name}: the original model returned {out.shape[1]} outputs, "
                f"the parsed network has {self.output_dim}"
            )
        return out[0] if np.asarray(x).ndim == 1 else out

    def with_inputs_as_outputs(self, lower: np.ndarray) -> PLNetwork:
        """This network with its inputs appended to its outputs (``[y; x]``), for properties
        that compare inputs with outputs. Each hidden layer carries ``relu(x - lower)``, which
        is ``x - lower`` for every ``x >= lower`` (``lower``: the regions' lower corner), and the
        output adds ``lower`` back. The carried rows get the default float32 error terms, so
        bounds allow for rounding the model never does on them (sound, a little loose); the
        replayed model appends the input it was given, exactly."""
        if self.has_normalisation:
            raise UsageError(
                f"{self.name}: a property comparing inputs with outputs "
                f"on a network with an input normalisation is not supported"
            )
        low = np.asarray(lower, dtype=np.float64)
        d = self.input_dim
        layers = []
        for k, layer in enumerate(self.layers):
            n_out, n_in = layer.shape
            last = k + 1 == len(self.layers)
            carried_in = d if k > 0 else 0  # layer 0 reads x itself
            weight = np.zeros((n_out + d, n_in + carried_in))
            weight[:n_out, :n_in] = layer.weight
            weight[n_out:, n_in + carried_in - d :] = np.eye(d)
            carried = (-low if k == 0 else 0.0) + (low if last else 0.0)
            bias = np.concatenate([layer.bias, np.broadcast_to(carried, (d,))])
            abs_w, abs_b, roundings = layer.error_terms
            abs_weight = np.zeros_like(weight)
            abs_weight[:n_out, :n_in] = abs_w
            abs_weight[n_out:] = np.abs(weight[n_out:])
            abs_bias = np.concatenate([abs_b, np.abs(bias[n_out:])])
            layers.append(AffineLayer(weight, bias, abs_weight, abs_bias, max(roundings, 2)))
        orig = self.replayer

        def replay(x: np.ndarray) -> np.ndarray:
            return np.hstack([np.asarray(orig(x), dtype=np.float64).reshape(len(x), -1), x])

        return PLNetwork(tuple(layers), self.input_shift, self.input_gain, self.exact, self.name, replay,
                         (*self.notes, "inputs appended to the outputs"))

    # ------------------------------------------------------------ statistics
    @property
    def num_relus(self) -> int:
        return int(sum(self.hidden_sizes))

    def describe(self) -> dict[str, Any]:
        """A small summary for findings and solver statistics."""
        return {
            "name": self.name,
            "inputs": self.input_dim,
            "outputs": self.output_dim,
            "hidden": list(self.hidden_sizes),
            "relus": self.num_relus,
            "exact_weights": self.exact,
            "notes": list(self.notes),
        }

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_onnx(cls, path: str | Path) -> PLNetwork:
        """Read a feed-forward ReLU network from an ONNX file (weights only, no code runs).

        Supported nodes: Gemm, MatMul, Conv (2-D, as a dense matrix), Add, Sub, Mul, Div (by
        constants), Relu, Flatten, Reshape, Transpose, Identity, Dropout, BatchNormalization
        and Constant, forming a single chain. Anything
        else raises :class:`~msl.errors.UsageError` naming the operator and node.
        """
        return _OnnxReader(Path(path)).read()

    @classmethod
    def from_torch(cls, module: torch.nn.Module, input_shape: Sequence[int] | None = None) -> PLNetwork:
        """Read an ``nn.Sequential`` (possibly nested) of Linear, ReLU, Flatten, BatchNorm1d,
        Identity and Dropout; BatchNorm1d is folded into the adjacent Linear (inexactly: its
        ``1/sqrt(var + eps)`` is irrational). ``input_shape`` (without batch) is what the module
        takes, when it is not a flat vector (e.g. ``(1, 28, 28)`` before a Flatten)."""
        return _read_torch(module, input_shape)


# ----------------------------------------------------------------------------------------
# A builder shared by the ONNX and torch readers: it folds a chain of elementwise affine
# operations and matrix products into layers, closing a layer at each ReLU.


def _fractions(values: Iterable[float]) -> list[Fraction]:
    return [Fraction(float(v)) for v in values]


def _exactly(values: np.ndarray, expected: Sequence[Fraction]) -> bool:
    return all(Fraction(float(v)) == e for v, e in zip(values.ravel(), expected, strict=True))


class _ChainBuilder:
    """Accumulates ``h -> W (h + pre_shift) * pre_gain + b`` style maps between ReLUs."""

    def __init__(self, name: str, width: int) -> None:
        self.name = name
        self.width = width  # size of the current activation vector
        self.layers: list[AffineLayer] = []
        self.exact = True
        self.notes: list[str] = []
        self.shift: list[Fraction] = [Fraction(0)] * width  # exact elementwise pre-map
        self.gain: list[Fraction] = [Fraction(1)] * width
        self.weight: np.ndarray | None = None  # pending matrix (out, in)
        self.bias: np.ndarray | None = None
        self.bias_q: list[Fraction] | None = None
        self.input_shift: tuple[Fraction, ...] | None = None
        self.input_gain: tuple[Fraction, ...] | None = None
        self.last_was_relu = False
        # How the model executes the pending map in float32 (see AffineLayer): the magnitudes
        # of its terms as ``abs_gain * |h| + abs_shift`` while no matrix is pending, then as
        # ``abs_w @ |h| + abs_b``; and the float32 roundings on the way.
        self.abs_gain = np.ones(width)
        self.abs_shift = np.zeros(width)
        self.abs_w: np.ndarray | None = None
        self.abs_b: np.ndarray | None = None
        self.roundings = 0

    def inexact(self, why: str) -> None:
        self.exact = False
        if why not in self.notes:
            self.notes.append(why)

    def _vector(self, value: np.ndarray, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.size == 1:
            return np.full(self.width, float(arr.ravel()[0]))
        if arr.size != self.width:
            raise UsageError(f"{self.name}: {what} has {arr.size} values for a vector of {self.width}")
        return arr.ravel()

    def add(self, value: np.ndarray) -> None:
        """h -> h + value (elementwise)."""
        vec = self._vector(value, "an added constant")
        self.last_was_relu = False
        self.roundings += 1
        if self.weight is None:
            self.shift = [s + Fraction(float(v)) / g for s, v, g in zip(self.shift, vec, self.gain, strict=True)]
            self.abs_shift = self.abs_shift + np.abs(vec)
            return
        assert self.bias is not None and self.bias_q is not None and self.abs_b is not None
        self.abs_b = self.abs_b + np.abs(vec)
        self.bias_q = [b + Fraction(float(v)) for b, v in zip(self.bias_q, vec, strict=True)]
        self.bias = self.bias + vec
        if not _exactly(self.bias, self.bias_q):
            self.inexact("two bias constants were added in float64")

    def multiply(self, value: np.ndarray) -> None:
        """h -> h * value (elementwise)."""
        vec = self._vector(value, "a scale constant")
        self.last_was_relu = False
        if np.any(vec == 0) or not np.all(np.isfinite(vec)):
            raise UsageError(f"{self.name}: a scale constant is zero or not finite")
        self.roundings += 1
        if self.weight is None:
            self.gain = [g * Fraction(float(v)) for g, v in zip(self.gain, vec, strict=True)]
            self.abs_gain = self.abs_gain * np.abs(vec)
            self.abs_shift = self.abs_shift * np.abs(vec)
            return
        assert self.bias is not None and self.bias_q is not None
        assert self.abs_w is not None and self.abs_b is not None
        self.abs_w = self.abs_w * np.abs(vec)[:, None]
        self.abs_b = self.abs_b * np.abs(vec)
        if not np.all(vec == 1.0):
            self.inexact("a scaling after a linear layer was folded into it in float64")
        self.weight = self.weight * vec[:, None]
        self.bias = self.bias * vec
        self.bias_q = _fractions(self.bias)

    def divide(self, value: np.ndarray) -> None:
        vec = self._vector(value, "a divisor")
        if np.any(vec == 0) or not np.all(np.isfinite(vec)):
            raise UsageError(f"{self.name}: a divisor is zero or not finite")
        if self.weight is None:
            self.gain = [g / Fraction(float(v)) for g, v in zip(self.gain, vec, strict=True)]
            self.abs_gain = self.abs_gain / np.abs(vec)
            self.abs_shift = self.abs_shift / np.abs(vec)
            self.roundings += 1
            self.last_was_relu = False
            return
        self.multiply(1.0 / vec)

    def gather(self, index: np.ndarray) -> None:
        """h -> h[index]: repeats activations, as an ONNX broadcast does (exactly: a copy)."""
        index = np.asarray(index, dtype=np.intp)
        if self.weight is None:
            select = np.zeros((index.size, self.width))
            select[np.arange(index.size), index] = 1.0
            roundings = self.roundings
            self.matmul(select)
            self.roundings = roundings  # a copy rounds nothing
            return
        assert self.bias is not None and self.bias_q is not None
        assert self.abs_w is not None and self.abs_b is not None
        self.abs_w, self.abs_b = self.abs_w[index], self.abs_b[index]
        self.weight = self.weight[index]
        self.bias = self.bias[index]
        self.bias_q = [self.bias_q[i] for i in index]
        self.width = int(index.size)
        self.shift = [Fraction(0)] * self.width
        self.gain = [Fraction(1)] * self.width
        self.last_was_relu = False

    def matmul(self, weight: np.ndarray, bias: np.ndarray | None = None, terms: int | None = None) -> None:
        """h -> weight @ h (+ bias); ``weight`` is (out, in). ``terms``: the most nonzero
        entries in a row when the model computes only those (a convolution's kernel), for the
        rounding count; by default every input is a term."""
        w = np.asarray(weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.width:
            raise UsageError(f"{self.name}: a weight of shape {w.shape} does not fit an input of size {self.width}")
        self.last_was_relu = False
        abs_bias = np.zeros(w.shape[0]) if bias is None else np.abs(self._out_vector(bias, w.shape[0]))
        if self.abs_w is None:
            self.abs_w, self.abs_b = np.abs(w) * self.abs_gain[None, :], np.abs(w) @ self.abs_shift + abs_bias
        else:
            assert self.abs_b is not None
            self.abs_w, self.abs_b = np.abs(w) @ self.abs_w, np.abs(w) @ self.abs_b + abs_bias
        self.roundings += (w.shape[1] if terms is None else terms) + 1
        trivial_pre = all(s == 0 for s in self.shift) and all(g == 1 for g in self.gain)
        if self.weight is None and not self.layers and self.input_shift is None:
            # The elementwise map before the first matrix is the network's input normalisation.
            self.input_shift, self.input_gain = tuple(self.shift), tuple(self.gain)
        elif not trivial_pre:  # only possible right after a ReLU: add/multiply fold into a pending matrix
            gain = np.array([float(g) for g in self.gain])
            shift = np.array([float(s) for s in self.shift])
            self.inexact("an elementwise map between layers was folded into the next layer in float64")
            pre_bias = w @ (shift * gain)
            w = w * gain[None, :]
            bias = pre_bias if bias is None else np.asarray(bias, dtype=np.float64) + pre_bias
        if self.weight is not None:
            assert self.bias is not None
            self.inexact("two linear maps without a ReLU between them were multiplied in float64")
            new_bias = w @ self.bias
            w = w @ self.weight
            bias = new_bias if bias is None else new_bias + np.asarray(bias, dtype=np.float64)
        self.weight = w
        self.bias = np.zeros(w.shape[0]) if bias is None else self._out_vector(bias, w.shape[0])
        self.bias_q = _fractions(self.bias)
        self.width = w.shape[0]
        self.shift = [Fraction(0)] * self.width
        self.gain = [Fraction(1)] * self.width

    def loosen(self, roundings: int, magnitude: np.ndarray) -> None:
        """Allow for work the model does that the folded map hides: ``roundings`` more float32
        roundings, with terms up to ``magnitude`` (e.g. a BatchNorm's derived constants)."""
        assert self.abs_b is not None
        self.roundings += roundings
        self.abs_b = self.abs_b + np.abs(self._out_vector(magnitude, len(self.abs_b)))

    def _out_vector(self, value: np.ndarray, size: int) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64).ravel()
        if arr.size == 1:
            return np.full(size, float(arr[0]))
        if arr.size != size:
            raise UsageError(f"{self.name}: a bias of {arr.size} values for a layer of {size}")
        return arr.copy()

    def relu(self) -> None:
        if self.weight is None:
            if self.last_was_relu:
                return  # relu(relu(h)) == relu(h)
            if not self.layers:
                raise UsageError(f"{self.name}: a ReLU before any linear layer is not supported")
            self._close_identity()
        self._close()
        self.last_was_relu = True

    def _close_identity(self) -> None:
        gain = np.array([float(g) for g in self.gain])
        shift = np.array([float(s * g) for s, g in zip(self.shift, self.gain, strict=True)])
        if not all(
            Fraction(float(s * g)) == s * g and Fraction(float(g)) == g
            for s, g in zip(self.shift, self.gain, strict=True)
        ):
            self.inexact("an elementwise map after the last ReLU was rounded to float64")
        self.weight = np.diag(gain)
        self.bias = shift
        self.bias_q = _fractions(shift)
        self.abs_w, self.abs_b = np.diag(self.abs_gain), self.abs_shift
        self.shift = [Fraction(0)] * self.width
        self.gain = [Fraction(1)] * self.width

    def _close(self) -> None:
        assert self.weight is not None and self.bias is not None
        self.layers.append(
            AffineLayer(
                np.ascontiguousarray(self.weight),
                np.ascontiguousarray(self.bias),
                self.abs_w,
                self.abs_b,
                self.roundings,
            )
        )
        self.weight = self.bias = self.bias_q = None
        self.abs_gain, self.abs_shift = np.ones(self.width), np.zeros(self.width)
        self.abs_w = self.abs_b = None
        self.roundings = 0

    def finish(self, replayer: Replayer) -> PLNetwork:
        if self.weight is None:
            if not self.layers:
                raise UsageError(f"{self.name}: the network has no linear layer")
            self._close_identity()
        self._close()
        d = self.layers[0].shape[1]
        shift = self.input_shift if self.input_shift is not None else tuple([Fraction(0)] * d)
        gain = self.input_gain if self.input_gain is not None else tuple([Fraction(1)] * d)
        return PLNetwork(
            layers=tuple(self.layers),
            input_shift=shift,
            input_gain=gain,
            exact=self.exact,
            name=self.name,
            replayer=replayer,
            notes=tuple(self.notes),
        )


# ----------------------------------------------------------------------------------------
# ONNX


class _OnnxReader:
    """Walks a single-chain ONNX graph; every node must consume the current activation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.max_width = MIN_WIDTH_LIMIT  # widest activation allowed; set from the file's weights

    def fail(self, message: str, hint: str | None = None) -> UsageError:
        return UsageError(f"{self.name}: {message}", hint=hint)

    def read(self) -> PLNetwork:
        import onnx

        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise self.fail(f"cannot read the model: {exc.strerror or exc}") from None
        if size > MAX_ONNX_BYTES:
            raise self.fail(f"the model file is too large ({size / 1e6:.0f} MB)")
        try:
            model = onnx.load_model(str(self.path), load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError and others: all mean "not a model"
            raise self.fail(f"not a readable ONNX model ({type(exc).__name__})") from None
        graph = model.graph
        consts: dict[str, np.ndarray] = {}
        for init in graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                raise self.fail(f"initializer {init.name!r} uses external data, which is not supported")
            consts[init.name] = self._array(init, f"initializer {init.name!r}")
        for node in graph.node:
            if node.op_type == "Constant":
                consts[node.output[0]] = self._constant(node, self._label(node))
        # Every size below is checked against what the file really holds before anything of
        # that size is allocated (a file of a few bytes may declare 10^9 inputs).
        weights = sum(int(c.size) for c in consts.values())
        self.max_width = max(MIN_WIDTH_LIMIT, weights)
        data_inputs = [i for i in graph.input if i.name not in consts]
        if len(data_inputs) != 1:
            raise self.fail(f"expected one data input, found {len(data_inputs)}")
        if len(graph.output) != 1:
            raise self.fail(f"expected one output, found {len(graph.output)}")
        inp = data_inputs[0]
        shape = self._input_shape(inp)
        width = math.prod(shape)
        if width > self.max_width:
            raise self.fail(
                f"input {inp.name!r} declares {width} values, but the file holds only {weights} weights"
                " (a first layer reading that many inputs would hold at least as many)"
            )
        builder = _ChainBuilder(self.name, width)
        current = inp.name
        cur_shape = shape
        for node in graph.node:
            op = node.op_type
            label = self._label(node)
            if op == "Constant":
                continue
            acts = [i for i in node.input if i == current]
            others = [i for i in node.input if i and i != current]
            if not acts:
                if all(i in consts for i in node.input if i):
                    raise self.fail(f"{label} computes on constants only, which is not supported")
                raise self.fail(
                    f"{label} does not continue the single chain of layers",
                    hint="only feed-forward chains are supported",
                )
            for other in others:
                if other not in consts:
                    raise self.fail(f"{label} takes a second non-constant input {other!r}")
            if op == "Identity":
                pass
            elif op == "Dropout":
                if len(node.input) > 2 and node.input[2] and np.any(consts[node.input[2]]):
                    raise self.fail(f"{label} is in training mode (random), which is not supported")
            elif op == "Flatten":
                axis = self._attr(node, "axis", 1)
                axis = axis + len(cur_shape) if axis < 0 else axis
                cur_shape = (int(np.prod(cur_shape[:axis])), int(np.prod(cur_shape[axis:])))
                self._check_batch(cur_shape, label)
            elif op == "Reshape":
                cur_shape = self._reshape(cur_shape, consts[node.input[1]], label)
            elif op == "Relu":
                builder.relu()
            elif op in ("Add", "Sub", "Mul", "Div"):
                const = consts[others[0]] if others else None
                if const is None or len(node.input) != 2:
                    raise self.fail(f"{label} must combine the activation with a constant")
                cur_shape = self._elementwise(builder, op, const, node.input[0] == current, cur_shape, label)
            elif op == "MatMul":
                if node.input[0] != current:
                    raise self.fail(f"{label} multiplies the activation from the right; expected x @ W")
                w = self._float(consts[node.input[1]], label)
                if w.ndim != 2:
                    raise self.fail(f"{label} has a weight of rank {w.ndim}; expected a matrix")
                if math.prod(cur_shape[:-1]) != 1 or cur_shape[-1] != w.shape[0]:
                    raise self.fail(
                        f"{label} multiplies an activation of shape {cur_shape} by a weight of shape {w.shape}",
                        hint="the activation must be a single row (batch 1) whose length is the weight's rows",
                    )
                builder.matmul(w.T)
                cur_shape = (*cur_shape[:-1], int(w.shape[1]))
            elif op == "Gemm":
                if len(cur_shape) != 2 or cur_shape[0] != 1:
                    raise self.fail(f"{label} takes an activation of shape {cur_shape}; expected (1, n)")
                self._gemm(builder, node, consts, current, label)
                cur_shape = (1, builder.width)
            elif op == "Conv":
                cur_shape = self._conv(builder, node, consts, cur_shape, label)
            elif op == "Transpose":
                perm = [int(p) for p in self._attr(node, "perm", list(range(len(cur_shape)))[::-1])]
                if sorted(perm) != list(range(len(cur_shape))) or (perm[0] != 0 and cur_shape[0] != 1):
                    raise self.fail(f"{label} permutes {cur_shape} by {perm}", hint="the batch axis must stay first")
                # An exact copy map: the activations in the permuted row-major order.
                builder.gather(np.arange(builder.width).reshape(cur_shape).transpose(perm).ravel())
                cur_shape = tuple(cur_shape[p] for p in perm)
            elif op == "BatchNormalization":
                if len(cur_shape) < 2 or cur_shape[0] != 1:
                    raise self.fail(
                        f"{label} normalises an activation of shape {cur_shape}; expected (1, channels, ...)"
                    )
                scale, bias, mean, var = (self._float(consts[n], label).ravel() for n in node.input[1:5])
                if any(v.size != cur_shape[1] for v in (scale, bias, mean, var)):
                    raise self.fail(f"{label} has parameters that are not one per channel of {cur_shape}")
                # One value per channel, repeated over the channel's positions (row-major).
                per = math.prod(cur_shape[2:])
                scale, bias, mean, var = (np.repeat(v, per) for v in (scale, bias, mean, var))
                eps = float(self._attr(node, "epsilon", 1e-5))
                mult = scale / np.sqrt(var + eps)
                if builder.weight is None:
                    raise self.fail(f"{label} is not preceded by a linear layer to fold it into")
                builder.inexact("a BatchNormalization was folded into the previous layer in float64")
                builder.multiply(mult)
                builder.add(bias - mean * mult)
                # onnxruntime derives and applies the constants in float32 its own way.
                builder.loosen(4, np.abs(bias) + np.abs(mean * mult))
            else:
                raise self.fail(
                    f"unsupported ONNX operator {op!r} in {label}",
                    hint="the formal engine reads Gemm/MatMul/Conv/Add/Sub/Mul/Div/"
                         "Relu/Flatten/Reshape/Transpose/Identity/BatchNormalization chains",
                )
            current = node.output[0]
        if graph.output[0].name != current:
            raise self.fail("the graph output is not the end of the layer chain")
        return builder.finish(_OnnxReplayer(self.path, shape))

    # -- helpers
    @staticmethod
    def _label(node: Any) -> str:
        return f"node {node.name!r} ({node.op_type})" if node.name else f"a {node.op_type} node"

    def _array(self, tensor: Any, what: str) -> np.ndarray:
        from onnx import numpy_helper

        try:
            return numpy_helper.to_array(tensor)
        except Exception as exc:  # sizes that do not match the data, unknown types: not a model
            raise self.fail(
                f"{what} cannot be read ({type(exc).__name__}: its declared shape does not match its data?)"
            ) from None

    def _input_shape(self, inp: Any) -> tuple[int, ...]:
        dims = inp.type.tensor_type.shape.dim
        shape: list[int] = []
        for k, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            elif k == 0:
                shape.append(1)  # symbolic batch dimension
            else:
                raise self.fail(f"input {inp.name!r} has a symbolic dimension {k}")
        if not shape:
            raise self.fail(f"input {inp.name!r} has no shape")
        if len(shape) > 1 and shape[0] != 1:
            raise self.fail(f"input {inp.name!r} has batch size {shape[0]}; expected 1 or symbolic")
        return tuple(shape)

    def _check_batch(self, shape: tuple[int, ...], label: str) -> None:
        if shape[0] != 1:
            raise self.fail(f"{label} mixes the batch dimension into the features")

    def _reshape(self, shape: tuple[int, ...], target: np.ndarray, label: str) -> tuple[int, ...]:
        total = int(np.prod(shape))
        dims = [int(v) for v in np.asarray(target).ravel()]
        out = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(dims)]
        if out.count(-1) > 1:
            raise self.fail(f"{label} has more than one -1 in its shape")
        if -1 in out:
            known = int(np.prod([v for v in out if v != -1])) or 1
            out[out.index(-1)] = total // known
        if int(np.prod(out)) != total or any(v <= 0 for v in out):
            raise self.fail(f"{label} reshapes {shape} into {dims}")
        if out[0] != 1 and len(out) > 1:
            raise self.fail(f"{label} mixes the batch dimension into the features")
        return tuple(out)

    def _constant(self, node: Any, label: str) -> np.ndarray:
        for attr in node.attribute:
            if attr.name == "value":
                return self._array(attr.t, label)
        raise self.fail(f"{label} has no tensor value")

    def _float(self, value: np.ndarray, label: str) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind != "f":
            raise self.fail(f"{label} has a constant of type {arr.dtype}; expected floats")
        if not np.all(np.isfinite(arr)):
            raise self.fail(f"{label} has a non-finite constant")
        return arr.astype(np.float64)

    @staticmethod
    def _attr(node: Any, name: str, default: Any) -> Any:
        from onnx import helper

        for attr in node.attribute:
            if attr.name == name:
                return helper.get_attribute_value(attr)
        return default

    def _elementwise(
        self, builder: _ChainBuilder, op: str, const: np.ndarray, act_first: bool, shape: tuple[int, ...], label: str
    ) -> tuple[int, ...]:
        """Apply ``act (op) const`` with ONNX's multidirectional broadcasting; the new shape.

        The result has the broadcast shape of both operands: where the constant has more
        entries along an axis than the activation (or more axes), the activation's entries
        are repeated (an exact copy map) before the elementwise operation, and the flattened
        result is read in ONNX's row-major order.
        """
        value = self._float(const, label)
        try:
            out_shape = tuple(int(v) for v in np.broadcast_shapes(shape, value.shape))
        except ValueError:
            raise self.fail(
                f"{label}: a constant of shape {value.shape} does not broadcast with the activation's shape {shape}"
            ) from None
        size = math.prod(out_shape)
        if size != builder.width:
            if size > self.max_width or size * builder.width > MAX_BROADCAST_ENTRIES:
                raise self.fail(f"{label} broadcasts an activation of shape {shape} to {out_shape}, which is too large")
            index = np.broadcast_to(np.arange(builder.width).reshape(shape), out_shape).ravel()
            builder.gather(index)
        vec = np.broadcast_to(value, out_shape).ravel()
        if op in ("Mul", "Div") and np.any(vec == 0):
            raise self.fail(
                f"{label} {'multiplies' if op == 'Mul' else 'divides'} by a zero constant, which is not supported"
            )
        if op == "Add":
            builder.add(vec)
        elif op == "Sub":
            if act_first:
                builder.add(-vec)
            else:
                builder.multiply(np.array([-1.0]))
                builder.add(vec)
        elif op == "Mul":
            builder.multiply(vec)
        else:
            if not act_first:
                raise self.fail(f"{label} divides a constant by the activation, which is not piecewise linear")
            builder.divide(vec)
        return out_shape

    def _conv(
        self, builder: _ChainBuilder, node: Any, consts: dict[str, np.ndarray], shape: tuple[int, ...], label: str
    ) -> tuple[int, ...]:
        """A 2-D convolution (pads, strides, dilations, groups) as the dense matrix it is.

        Built by index arithmetic: the entry (output ``(m, oh, ow)``, input ``(c, ih, iw)``)
        is the kernel weight ``W[m, c - g*C/G, kh, kw]`` where ``ih = oh*stride - pad + kh*dilation``
        (likewise for w) lies inside the image; padded positions contribute nothing. Row-major
        order matches ONNX's flattening. Exact (entries are copied weights), and each row has
        at most ``C/G * KH * KW`` terms, which is what float32 rounding counts."""
        if len(shape) != 4 or shape[0] != 1:
            raise self.fail(
                f"{label} takes an activation of shape {shape}; "
                f"only 2-D convolutions of one image (1, C, H, W) are supported"
            )
        if len(node.input) < 2 or node.input[1] not in consts:
            raise self.fail(f"{label} has no constant kernel")
        w = self._float(consts[node.input[1]], label)
        if w.ndim != 4:
            raise self.fail(f"{label} has a kernel of rank {w.ndim}; expected 4 (a 2-D convolution)")
        _, c_in, h, wd = shape
        m_out, c_group, kh, kw = (int(v) for v in w.shape)
        groups = int(self._attr(node, "group", 1))
        if groups < 1 or c_in % groups or m_out % groups or c_in // groups != c_group:
            raise self.fail(
                f"{label}: a kernel of shape {w.shape} in {groups} groups does not fit {c_in} input channels"
            )
        strides = [int(v) for v in self._attr(node, "strides", [1, 1])]
        dil = [int(v) for v in self._attr(node, "dilations", [1, 1])]
        pads = [int(v) for v in self._attr(node, "pads", [0, 0, 0, 0])]
        auto_pad = self._attr(node, "auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if auto_pad not in ("NOTSET", "VALID"):
            raise self.fail(
                f"{label} uses auto_pad {auto_pad}, which is not supported", hint="export with explicit pads"
            )
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        ks = self._attr(node, "kernel_shape", [kh, kw])
        if [int(v) for v in ks] != [kh, kw] or len(strides) != 2 or len(dil) != 2 or len(pads) != 4:
            raise self.fail(f"{label} has attributes that do not describe a 2-D convolution of its kernel")
        if min(strides) < 1 or min(dil) < 1 or min(pads) < 0:
            raise self.fail(f"{label} has a stride, dilation or pad out of range")
        oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
        if oh < 1 or ow < 1:
            raise self.fail(f"{label} has no output positions for an input of shape {shape}")
        n_out, n_in = m_out * oh * ow, c_in * h * wd
        if n_out > self.max_width or n_out * n_in > MAX_DENSE_ENTRIES:
            raise self.fail(f"{label} maps {n_in} values to {n_out}: too large for a dense layer")
        # Every (output position, kernel tap) pair, vectorised.
        m, y, x, c, i, j = np.meshgrid(
            np.arange(m_out),
            np.arange(oh),
            np.arange(ow),
            np.arange(c_group),
            np.arange(kh),
            np.arange(kw),
            indexing="ij",
        )
        ih = y * strides[0] - pads[0] + i * dil[0]
        iw = x * strides[1] - pads[1] + j * dil[1]
        ok = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < wd)
        channel = (m // (m_out // groups)) * c_group + c
        rows = ((m * oh + y) * ow + x)[ok]
        cols = ((channel * h + ih) * wd + iw)[ok]
        dense = np.zeros((n_out, n_in))
        dense[rows, cols] = w[m[ok], c[ok], i[ok], j[ok]]
        bias = None
        if len(node.input) > 2 and node.input[2]:
            b = self._float(consts[node.input[2]], label).ravel()
            if b.size != m_out:
                raise self.fail(f"{label} has {b.size} biases for {m_out} output channels")
            bias = np.repeat(b, oh * ow)
        builder.matmul(dense, bias, terms=c_group * kh * kw)
        return (1, m_out, oh, ow)

    def _gemm(self, builder: _ChainBuilder, node: Any, consts: dict[str, np.ndarray], current: str, label: str) -> None:
        if node.input[0] != current or self._attr(node, "transA", 0):
            raise self.fail(f"{label} must take the activation as its first, untransposed input")
        b = self._float(consts[node.input[1]], label)
        w = b if self._attr(node, "transB", 0) else b.T
        alpha = float(self._attr(node, "alpha", 1.0))
        beta = float(self._attr(node, "beta", 1.0))
        bias = self._float(consts[node.input[2]], label) * beta if len(node.input) > 2 and node.input[2] else None
        if alpha != 1.0 or beta != 1.0:
            builder.inexact("a Gemm with alpha or beta other than 1 was scaled in float64")
        builder.matmul(w * alpha, bias)
        if alpha != 1.0 or beta != 1.0:
            builder.loosen(2, np.zeros(1))  # the two scalings are two more float32 roundings


class _OnnxReplayer:
    """Runs the original ONNX file with onnxruntime: a whole batch in one call when the graph
    is batch-independent (:func:`msl.models.batching.batch_independent`), else one input at a
    time at batch size 1, so that batching can never change the function replayed."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = path
        self.shape = shape
        self._session: Any = None
        self.batched = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnx
            import onnxruntime as ort

            from msl.models.batching import batch_session

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            proto = onnx.load_model(str(self.path), load_external_data=False)
            self._session, self.batched = batch_session(proto, ort, opts, ["CPUExecutionProvider"])
        sess = self._session
        meta = sess.get_inputs()[0]
        dtype = np.float64 if "double" in meta.type else np.float16 if "float16" in meta.type else np.float32
        rows = [x] if self.batched else [x[i : i + 1] for i in range(x.shape[0])]
        outs = []
        for chunk in rows:
            feed = chunk.astype(dtype).reshape((chunk.shape[0], *self.shape[1:]) if len(self.shape) > 1 else (-1,))
            outs.append(np.asarray(sess.run(None, {meta.name: feed})[0], dtype=np.float64).reshape(chunk.shape[0], -1))
        return np.concatenate(outs, axis=0)


# ----------------------------------------------------------------------------------------
# torch


def _torch_modules(module: Any) -> list[Any]:
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        out: list[Any] = []
        for child in module:
            out.extend(_torch_modules(child))
        return out
    return [module]


def _read_torch(module: Any, input_shape: Sequence[int] | None) -> PLNetwork:
    import torch
    import torch.nn as nn

    name = type(module).__name__
    mods = _torch_modules(module)
    first_linear = next((m for m in mods if isinstance(m, nn.Linear)), None)
    if first_linear is None:
        raise UsageError(f"torch module {name}: no nn.Linear layer")
    width = first_linear.in_features
    builder = _ChainBuilder(f"torch module {name}", width)
    pending_bn: list[Any] = []
    for m in mods:
        if isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
            continue
        if isinstance(m, nn.Linear):
            w = m.weight.detach().to(torch.float64).cpu().numpy()
            b = m.bias.detach().to(torch.float64).cpu().numpy() if m.bias is not None else None
            if pending_bn:  # a BatchNorm between a ReLU and this Linear: fold it into the input side
                for bn in pending_bn:
                    mult, add, magnitude = _bn_affine(bn)
                    builder.inexact("a BatchNorm1d was folded into the next Linear in float64")
                    shift = add / mult
                    builder.shift = [s + Fraction(float(v)) for s, v in zip(builder.shift, shift, strict=True)]
                    builder.gain = [g * Fraction(float(v)) for g, v in zip(builder.gain, mult, strict=True)]
                    builder.abs_gain = builder.abs_gain * np.abs(mult)
                    builder.abs_shift = builder.abs_shift * np.abs(mult) + magnitude
                    builder.roundings += 5
                pending_bn = []
            builder.matmul(w, b)
        elif isinstance(m, nn.ReLU):
            builder.relu()
        elif isinstance(m, nn.BatchNorm1d):
            mult, add, magnitude = _bn_affine(m)
            if builder.weight is not None:
                builder.inexact("a BatchNorm1d was folded into the previous Linear in float64")
                builder.multiply(mult)
                builder.add(add)
                builder.loosen(4, magnitude)
            else:
                pending_bn.append(m)
        else:
            raise UsageError(
                f"torch module {name}: unsupported layer {type(m).__name__}",
                hint="the formal engine reads nn.Sequential chains of Linear, ReLU, Flatten and BatchNorm1d",
            )
    if pending_bn:
        raise UsageError(f"torch module {name}: a BatchNorm1d after the last Linear is not supported")
    shape = tuple(input_shape) if input_shape is not None else (width,)
    if int(np.prod(shape)) != width:
        raise UsageError(f"torch module {name}: input shape {shape} does not match {width} inputs")
    return builder.finish(_TorchReplayer(module, shape))


def _bn_affine(bn: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BatchNorm1d in eval mode as ``h * mult + add``, and the magnitude of the terms torch adds."""
    import torch

    if bn.running_mean is None or bn.running_var is None:
        raise UsageError("a BatchNorm1d without running statistics cannot be folded")
    mean = bn.running_mean.detach().to(torch.float64).cpu().numpy()
    var = bn.running_var.detach().to(torch.float64).cpu().numpy()
    gamma = bn.weight.detach().to(torch.float64).cpu().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().to(torch.float64).cpu().numpy() if bn.bias is not None else np.zeros_like(mean)
    mult = gamma / np.sqrt(var + bn.eps)
    if np.any(mult == 0):
        raise UsageError("a BatchNorm1d with a zero scale cannot be folded")
    return mult, beta - mean * mult, np.abs(beta) + np.abs(mean * mult)


class _TorchReplayer:
    """Runs the user's module in eval mode (restoring its training flags afterwards)."""

    def __init__(self, module: Any, shape: tuple[int, ...]) -> None:
        self.module = module
        self.shape = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        param = next(self.module.parameters())
        flags = [(m, m.training) for m in self.module.modules()]
        try:
            self.module.eval()
            with torch.no_grad():
                inp = torch.as_tensor(x, dtype=param.dtype, device=param.device).reshape(x.shape[0], *self.shape)
                out = self.module(inp)
        finally:
            for m, flag in flags:
                m.training = flag
        return out.detach().to(torch.float64).cpu().numpy().reshape(x.shape[0], -1)
