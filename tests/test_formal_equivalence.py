"""epsilon-equivalence of two networks over a box, checked against an exact MILP."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from formal_oracles import acasxu_dir, export_onnx, max_difference, random_mlp, torch_forward

from msl.engines.formal.equivalence import difference_network, verify_equivalence
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import InputRegion
from msl.errors import UsageError


def _pair(seed: int, noise: float, folder: Path, hidden: tuple[int, ...] = (10, 8)) -> tuple:
    rng = np.random.default_rng(seed)
    model = random_mlp(rng, 3, list(hidden), 2)
    other = copy.deepcopy(model)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(noise * torch.randn_like(p))
    a = PLNetwork.from_onnx(export_onnx(model, 3, folder / "a.onnx"))
    b = PLNetwork.from_onnx(export_onnx(other, 3, folder / "b.onnx"))
    return model, other, a, b


REGION = InputRegion((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def test_a_network_is_equivalent_to_itself(tmp_path: Path) -> None:
    _, _, a, _ = _pair(0, 0.0, tmp_path)
    again = PLNetwork.from_onnx(tmp_path / "a.onnx")
    assert verify_equivalence(a, again, REGION, 0.0, timeout=10).status == "unsat"


@pytest.mark.parametrize(
    ("seed", "hidden"),
    [(1, (8,)), (2, (12,)), pytest.param(3, (10, 8), marks=pytest.mark.slow)],
)
def test_perturbed_copy_proved_for_generous_eps_refuted_for_tiny(
    seed: int, hidden: tuple[int, ...], tmp_path: Path
) -> None:
    model, other, a, b = _pair(seed, 1e-3, tmp_path, hidden)
    gap = max_difference(model, other, REGION)
    assert 0 < gap < 0.1
    proved = verify_equivalence(a, b, REGION, 1.5 * gap, timeout=30)
    assert proved.status == "unsat", proved.stats
    refuted = verify_equivalence(a, b, REGION, 0.5 * gap, timeout=30)
    assert refuted.status == "sat"
    x = np.array(refuted.witness_x)
    assert REGION.contains(x)
    diff = torch_forward(model, x)[0] - torch_forward(other, x)[0]
    assert np.abs(diff).max() > 0.5 * gap
    np.testing.assert_allclose(diff, refuted.witness_y, atol=1e-6)


def test_different_depths_form_an_exact_product(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = PLNetwork.from_onnx(export_onnx(random_mlp(rng, 3, [8], 2), 3, tmp_path / "a.onnx"))
    b = PLNetwork.from_onnx(export_onnx(random_mlp(rng, 3, [8, 6, 5], 2), 3, tmp_path / "b.onnx"))
    product = difference_network(a, b)
    x = rng.uniform(-1, 1, (50, 3))
    np.testing.assert_allclose(product.forward(x), a.forward(x) - b.forward(x), atol=1e-9)
    np.testing.assert_allclose(product.replay(x), a.replay(x) - b.replay(x), atol=1e-9)
    result = verify_equivalence(a, b, REGION, 1e-3, timeout=20)
    assert result.status == "sat"


def test_shapes_must_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    a = PLNetwork.from_onnx(export_onnx(random_mlp(rng, 3, [8], 2), 3, tmp_path / "a.onnx"))
    b = PLNetwork.from_onnx(export_onnx(random_mlp(rng, 3, [8], 3), 3, tmp_path / "b.onnx"))
    with pytest.raises(UsageError, match="differ in shape"):
        verify_equivalence(a, b, REGION, 0.1)


@pytest.mark.slow
@pytest.mark.skipif(not (acasxu_dir() / "prop_1.vnnlib").exists(), reason="ACAS Xu benchmark not found")
def test_acasxu_against_a_float16_copy(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from msl.engines.formal.vnnlib import read_vnnlib

    src = acasxu_dir() / "ACASXU_run2a_1_1_batch_2000.onnx"
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16).astype(np.float32), init.name))
    onnx.save(model, str(tmp_path / "half.onnx"))
    a, b = PLNetwork.from_onnx(src), PLNetwork.from_onnx(tmp_path / "half.onnx")
    region = read_vnnlib(acasxu_dir() / "prop_1.vnnlib")[0].regions[0]
    assert verify_equivalence(a, b, region, 0.05, timeout=60).status == "unsat"
    assert verify_equivalence(a, b, region, 1e-6, timeout=60).status == "sat"
