"""Reading piecewise-linear networks from ONNX and torch, and replaying the original model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from formal_oracles import export_onnx, random_mlp, torch_forward
from onnx import TensorProto, helper, numpy_helper

from msl.engines.formal.network import PLNetwork
from msl.errors import UsageError


def _graph_model(nodes: list, inits: dict[str, np.ndarray], n_in: int, n_out: int, path: Path) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


def test_onnx_from_torch_matches_torch_and_onnxruntime(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = random_mlp(rng, 4, [16, 12], 3)
    net = PLNetwork.from_onnx(export_onnx(model, 4, tmp_path / "m.onnx"))
    assert net.exact and net.hidden_sizes == (16, 12) and net.input_dim == 4 and net.output_dim == 3
    x = rng.uniform(-2, 2, (64, 4))
    np.testing.assert_allclose(net.forward(x), torch_forward(model, x), atol=1e-5)
    np.testing.assert_allclose(net.replay(x), torch_forward(model, x), atol=1e-6)


def test_normalisation_sub_div_matmul_add(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(3, 5)), rng.normal(size=5)
    w2, b2 = rng.normal(size=(5, 2)), rng.normal(size=2)
    offset, scale = rng.normal(size=3), rng.uniform(0.5, 2.0, 3)
    nodes = [
        helper.make_node("Sub", ["x", "off"], ["a"]),
        helper.make_node("Div", ["a", "sc"], ["b"]),
        helper.make_node("MatMul", ["b", "w1"], ["c"]),
        helper.make_node("Add", ["c", "b1"], ["d"]),
        helper.make_node("Relu", ["d"], ["e"]),
        helper.make_node("Gemm", ["e", "w2", "b2"], ["y"], transB=0),
    ]
    path = _graph_model(
        nodes, {"off": offset, "sc": scale, "w1": w1, "b1": b1, "w2": w2, "b2": b2}, 3, 2, tmp_path / "n.onnx"
    )
    net = PLNetwork.from_onnx(path)
    assert net.has_normalisation and net.exact
    x = rng.uniform(-3, 3, (32, 3)).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(net.forward(x), net.replay(x), atol=1e-5)


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["y"], name="squash")]
    path = _graph_model(nodes, {"w": np.ones((2, 2))}, 2, 2, tmp_path / "s.onnx")
    with pytest.raises(UsageError, match="unsupported ONNX operator 'Sigmoid' in node 'squash'"):
        PLNetwork.from_onnx(path)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xff not a protobuf \x13" * 10)
    with pytest.raises(UsageError, match="not a readable ONNX model|expected one data input"):
        PLNetwork.from_onnx(path)
    with pytest.raises(UsageError, match="cannot read the model"):
        PLNetwork.from_onnx(tmp_path / "missing.onnx")


def test_from_torch_folds_batchnorm_and_replays_module() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )
    with torch.no_grad():
        bn = model[2]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    model.train()  # replay must still use eval semantics, and restore the flag
    net = PLNetwork.from_torch(model)
    assert not net.exact and any("BatchNorm1d" in n for n in net.notes)
    x = np.random.default_rng(2).uniform(-1, 1, (16, 4))
    expected = torch_forward(model.eval(), x)
    model.train()
    np.testing.assert_allclose(net.forward(x), expected, atol=1e-5)
    np.testing.assert_allclose(net.replay(x), expected, atol=1e-6)
    assert model.training


def test_from_torch_rejects_other_layers() -> None:
    with pytest.raises(UsageError, match="unsupported layer Tanh"):
        PLNetwork.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
