"""Tiny ONNX networks built node by node with ``onnx.helper``, and onnxruntime as the oracle.

The formal engine's tests use these to know the truth independently of MSL's reader: what a
network computes is what onnxruntime computes, one input at a time at the batch size the
file declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def onnx_net(
    path: Path,
    nodes: Sequence[object],
    consts: dict[str, np.ndarray],
    in_shape: Sequence[int | str],
    out_shape: Sequence[int | str] | None = None,
    opset: int = 13,
) -> Path:
    """Save a graph with data input ``x`` and output ``y``; ``consts`` become initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        list(nodes),
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [
            helper.make_value_info(
                "y",
                helper.make_tensor_type_proto(TensorProto.FLOAT, list(out_shape) if out_shape is not None else None),
            )
        ],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def node(op: str, inputs: Sequence[str], output: str, name: str | None = None, **attrs: object) -> object:
    from onnx import helper

    return helper.make_node(op, list(inputs), [output], name=name or f"{op.lower()}_{output}", **attrs)


def f32(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def ort_one_at_a_time(path: Path, xs: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs (N, m) for the rows of ``xs``, each run alone at batch size 1."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in meta.shape]
    rows = [session.run(None, {meta.name: np.asarray(x, dtype=np.float32).reshape(shape)})[0].ravel() for x in xs]
    return np.stack(rows).astype(np.float64)
