"""Batching an ONNX network only where it cannot change the function.

A network's function is what it computes for one input at batch size 1 (the size most
exporters declare). :func:`batch_independent` decides, from the graph alone, whether a batch
of inputs gives row by row what each input gives alone; :func:`batch_session` makes the
onnxruntime session accordingly. Kept free of torch (unlike the adapters), since the formal
engine's replayer uses it on every ``msl vnnlib`` run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Nodes that act on each input of a batch separately whatever their attributes.
_ROWWISE_UNARY = frozenset({
    "Identity", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign",
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "HardSigmoid", "Gelu", "Cast",
})
#: Nodes that act per input and change its shape in ways not tracked here.
_ROWWISE_OPAQUE = frozenset({"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
_ELEMENTWISE_BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"})


def batch_independent(graph) -> bool:  # type: ignore[no-untyped-def]
    """True when evaluating a batch of inputs gives, row by row, what each input gives alone.

    Conservative: every node must be one known to keep the batch on axis 0 and act on each
    row separately (elementwise maps with constants that do not broadcast over axis 0,
    ``x @ W``, Gemm, Flatten at axis 1, a Reshape that keeps axis 0, ...). Anything else —
    a reduction, a transpose, a Reshape to ``[1, -1]``, a constant of a higher rank than the
    activation — answers False, and the caller runs one input at a time.
    """
    from onnx import helper, numpy_helper

    consts: dict[str, tuple[int, ...]] = {}
    values: dict[str, Any] = {}  # name -> int64 values of small constants (Reshape targets)

    def constant(name: str, tensor: Any) -> None:
        consts[name] = tuple(int(d) for d in tensor.dims)
        if tensor.data_type == 7 and math.prod(consts[name]) <= 16:  # INT64
            try:
                values[name] = numpy_helper.to_array(tensor)
            except Exception:  # a damaged tensor: its values are simply not known
                pass

    for t in graph.initializer:
        constant(t.name, t)
    data = [i for i in graph.input if i.name not in consts]
    if len(data) != 1:
        return False
    dims = data[0].type.tensor_type.shape.dim
    if len(dims) < 2 or not all(d.HasField("dim_value") for d in dims[1:]):
        return False
    # batched tensor -> its shape with the batch axis as 1 (None: rank known only)
    batched: dict[str, tuple[int, ...] | None] = {data[0].name: (1, *(int(d.dim_value) for d in dims[1:]))}
    rank: dict[str, int] = {data[0].name: len(dims)}

    def attr(node, name, default):  # type: ignore[no-untyped-def]
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    for node in graph.node:
        if node.op_type == "Constant":
            tensor = attr(node, "value", None)
            if tensor is None:
                return False
            constant(node.output[0], tensor)
            continue
        ins = [i for i in node.input if i]
        live = [i for i in ins if i in batched]
        if not live or any(i not in batched and i not in consts for i in ins):
            return False  # computed constants and other inputs are not followed
        x = live[0]
        shape, r = batched[x], rank[x]
        out: tuple[int, ...] | None
        op = node.op_type
        unary = (
            (op in _ROWWISE_UNARY and len(ins) == 1)
            or (op == "Clip" and ins[0] == x and len(live) == 1)  # bounds are constants
            or (op == "Dropout" and ins[0] == x and len(ins) < 3)  # no training_mode input: identity
        )
        if unary:
            out = shape
        elif op in _ELEMENTWISE_BINARY and len(ins) == 2:
            other = ins[1] if ins[0] == x else ins[0]
            if other in batched:
                if rank[other] != r:
                    return False
                out = None if shape is None or batched[other] is None else _broadcast(shape, batched[other])
            else:
                c = consts[other]
                if len(c) > r or (len(c) == r and c[0] != 1):
                    return False
                out = None if shape is None else _broadcast(shape, c)
            if out is not None and out[0] != 1:
                return False
        elif (
            op == "MatMul"
            and ins[0] == x
            and len(ins) == 2
            and ins[1] in consts
            and len(consts[ins[1]]) == 2
            and r >= 2
        ):
            out = None if shape is None else (*shape[:-1], consts[ins[1]][1])
        elif (
            op == "Gemm"
            and ins[0] == x
            and r == 2
            and not attr(node, "transA", 0)
            and all(i in consts for i in ins[1:])
        ):
            if len(ins) > 2 and len(consts[ins[2]]) == 2 and consts[ins[2]][0] != 1:
                return False
            b = consts[ins[1]]
            out = (1, b[0] if attr(node, "transB", 0) else b[1])
        elif op == "Flatten" and attr(node, "axis", 1) in (1, 1 - r):
            out = None if shape is None else (1, int(np.prod(shape[1:])))
            r = 2
        elif op == "Reshape" and ins[0] == x and len(ins) == 2 and ins[1] in values and not attr(node, "allowzero", 0):
            target = [int(v) for v in np.asarray(values[ins[1]]).ravel()]
            if not target:
                return False
            rest = target[1:]
            if target[0] == 0:
                pass
            elif (
                target[0] == -1
                and shape is not None
                and all(v > 0 for v in rest)
                and int(np.prod(rest)) == int(np.prod(shape[1:]))
            ):
                pass
            else:
                return False
            out = None
            if shape is not None and all(v > 0 for v in rest):
                out = (1, *rest)
            r = len(target)
        elif op == "BatchNormalization" and not attr(node, "training_mode", 0):
            out = shape
        elif op in ("Softmax", "LogSoftmax") and r >= 2 and attr(node, "axis", -1) % r != 0:
            out = shape  # the default axis (1 before opset 13, -1 since) is never the batch
        elif op in _ROWWISE_OPAQUE and ins[0] == x and len(live) == 1:
            out = None
        else:
            return False
        batched[node.output[0]] = out
        rank[node.output[0]] = r
    return len(graph.output) == 1 and graph.output[0].name in batched


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(int(v) for v in np.broadcast_shapes(a, b))
    except ValueError:
        return None


#: Inputs larger than this (values per row) are not probed with a zero batch at load.
PROBE_LIMIT = 1 << 20


def batch_session(proto, ort, options, providers):  # type: ignore[no-untyped-def]
    """``(session, batched)``: a session on a copy of ``proto`` with a symbolic batch dimension
    when the graph is :func:`batch_independent` (and onnxruntime runs it), else on ``proto``."""
    import onnx

    def original():  # type: ignore[no-untyped-def]
        return ort.InferenceSession(proto.SerializeToString(), options, providers=providers)

    if not batch_independent(proto.graph):
        return original(), False
    dynamic = onnx.ModelProto()
    dynamic.CopyFrom(proto)
    del dynamic.graph.value_info[:]  # intermediate shapes may pin the batch size
    for value in (*dynamic.graph.input, *dynamic.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    try:
        session = ort.InferenceSession(dynamic.SerializeToString(), options, providers=providers)
        shape = [2, *(d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape[1:])]
        if math.prod(shape) <= 2 * PROBE_LIMIT:
            session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=np.float32)})
        return session, True
    except Exception:
        return original(), False
