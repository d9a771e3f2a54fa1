"""Proof certificates: the engine records them, msl/certify.py checks them on its own.

A second, deliberately simple checker here (plain ``fractions.Fraction``, one hidden layer,
whose pre-activation bounds over a box are exact by interval arithmetic) cross-checks the
first; mutations of a certificate (a slope, the multipliers, a dropped leaf, a shrunk domain, a
changed weight) must make ``msl certify`` fail with a message that names what failed.
"""

from __future__ import annotations

import gzip
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from msl import certify
from msl.cli import cli
from msl.engines.formal.certificate import build
from msl.engines.formal.network import PLNetwork
from msl.engines.formal.property import InputRegion, LinearConstraint, Property, argmax_is, linear
from msl.engines.formal.verify import verify
from tests.onnx_builders import f32, node, onnx_net

ACAS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "acasxu"
if not ACAS.is_dir():
    ACAS = Path("/work/shared/benchmarks/acasxu")


def tiny_net(path: Path, seed: int = 3, hidden: int = 6) -> Path:
    """A 2 -> hidden -> 3 ReLU net (Gemm, Relu, Gemm)."""
    rng = np.random.default_rng(seed)
    w1 = f32(rng.normal(size=(hidden, 2)))
    b1 = f32(rng.normal(size=hidden) * 0.3)
    w2 = f32(rng.normal(size=(3, hidden)))
    b2 = f32([2.0, 0.0, 0.0])
    nodes = [
        node("Gemm", ["x", "w1", "b1"], "h", transB=1),
        node("Relu", ["h"], "r"),
        node("Gemm", ["r", "w2", "b2"], "y", transB=1),
    ]
    return onnx_net(path, nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, [1, 2], [1, 3])


def proved(tmp_path: Path, seed: int = 3) -> tuple[Path, Property, certify.Certificate]:
    """A tiny net and a property the engine proves with some splitting: output 0 stays the
    largest on a small box around a point where it wins clearly."""
    path = tiny_net(tmp_path / "tiny.onnx", seed)
    net = PLNetwork.from_onnx(path)
    y = net.forward(np.zeros(2))
    top = int(np.argmax(y))
    prop = Property.forall(InputRegion.box([-0.4, -0.4], [0.4, 0.4]), argmax_is(3, top))
    result = verify(net, prop, 30.0, record=True)
    assert result.status == "unsat", result.stats
    assert result.proof_tree is not None
    return path, prop, build(result.proof_tree[0], prop, result.proof_tree[1], path)  # type: ignore[return-value]


# ── the simple checker ────────────────────────────────────────────────────────────────────

U = Fraction(1, 2**24)


def _gamma(n: int) -> Fraction:
    return n * U / (1 - n * U)


def fraction_check(cert: certify.Certificate, path: Path) -> bool:
    """Exact rational check of a one-hidden-layer certificate: the tree covers the box, every
    leaf is closed, every refutation's bound (float32 errors included) is > 0."""
    import onnx
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    w1 = [[Fraction(float(v)) for v in row] for row in consts["w1"]]
    b1 = [Fraction(float(v)) for v in consts["b1"]]
    w2 = [[Fraction(float(v)) for v in row] for row in consts["w2"]]
    b2 = [Fraction(float(v)) for v in consts["b2"]]
    prop = cert.property
    for region, tree in zip(prop.regions, cert.trees, strict=True):
        stack = [([Fraction(v) for v in region.lower], [Fraction(v) for v in region.upper], frozenset())]
        for nd in tree:
            lo, hi, done = stack.pop()
            for ref in nd.refute:
                if not _refutes(ref, nd, prop, lo, hi, w1, b1, w2, b2):
                    return False
            done = done | {r.disjunct for r in nd.refute}
            if nd.split is not None:
                d, v = nd.split[0], Fraction(nd.split[1])
                if not lo[d] < v < hi[d]:
                    return False
                stack.append(([*lo[:d], v, *lo[d + 1 :]], hi, done))
                stack.append((lo, [*hi[:d], v, *hi[d + 1 :]], done))
            elif nd.leaf == "bounds":
                if set(range(len(prop.unsafe))) - done:
                    return False
            elif nd.leaf == "outside":
                c = region.constraints[nd.outside]
                low = sum(Fraction(a) * (lo[i] if a > 0 else hi[i]) for i, a in enumerate(c.coeffs))
                if not low > Fraction(c.rhs):
                    return False
            else:
                return False
        if stack:
            return False
    return True


def _refutes(ref, nd, prop, lo, hi, w1, b1, w2, b2) -> bool:  # type: ignore[no-untyped-def]
    xmax = [max(abs(a), abs(b)) for a, b in zip(lo, hi, strict=True)]
    # exact pre-activation bounds, then widened by the first layer's float32 error
    e1 = [
        _gamma(3) * (sum(abs(w) * m for w, m in zip(row, xmax, strict=True)) + abs(b)) + 3 * Fraction(1, 2**126)
        for row, b in zip(w1, b1, strict=True)
    ]
    zl = [
        sum(w * (lo[i] if w > 0 else hi[i]) for i, w in enumerate(row)) + b - e
        for row, b, e in zip(w1, b1, e1, strict=True)
    ]
    zu = [
        sum(w * (hi[i] if w > 0 else lo[i]) for i, w in enumerate(row)) + b + e
        for row, b, e in zip(w1, b1, e1, strict=True)
    ]
    if nd.unstable:  # the hull of the exact bounds and the certificate's stated ones
        for j, (a, b) in zip(nd.unstable[0], nd.bounds[0], strict=True):
            zl[j], zu[j] = min(zl[j], Fraction(a)), max(zu[j], Fraction(b))
    n = len(w2[0])
    e2 = [
        _gamma(n + 1) * (sum(abs(w) * max(u, 0) for w, u in zip(row, zu, strict=True)) + abs(b))
        + (n + 1) * Fraction(1, 2**126)
        for row, b in zip(w2, b2, strict=True)
    ]
    total_coef = [Fraction(0)] * len(lo)
    total_const = Fraction(0)
    conj = prop.unsafe[ref.disjunct]
    for r, (c, wgt) in enumerate(zip(conj, ref.weights, strict=True)):
        given = dict(zip(nd.unstable[0], ref.alpha[r][0], strict=True)) if nd.unstable else {}
        lam = [sum(Fraction(ci) * w2[k][j] for k, ci in enumerate(c.coeffs)) for j in range(n)]
        const = sum(Fraction(ci) * (b2[k]) for k, ci in enumerate(c.coeffs)) - Fraction(c.rhs)
        const -= sum(abs(Fraction(ci)) * e2[k] for k, ci in enumerate(c.coeffs))
        coef = [Fraction(0)] * len(lo)
        for j in range(n):
            lower, u = zl[j], zu[j]
            if u <= 0:
                continue
            if lower >= 0:
                s, icpt = Fraction(1), Fraction(0)
            elif lam[j] >= 0:
                s = Fraction(given[j]) if j in given else Fraction(1 if u > -lower else 0)
                icpt = Fraction(0)
            else:
                s = u / (u - lower)
                icpt = -s * lower
            lz = lam[j] * s
            const += lam[j] * icpt + lz * b1[j] - abs(lz) * e1[j]
            coef = [c0 + lz * w for c0, w in zip(coef, w1[j], strict=True)]
        total_coef = [t + Fraction(wgt) * a for t, a in zip(total_coef, coef, strict=True)]
        total_const += Fraction(wgt) * const
    # the weighted sum of the rows' linear lower bounds, minimised over the box
    return total_const + sum(a * (lo[i] if a > 0 else hi[i]) for i, a in enumerate(total_coef)) > 0


# ── tests ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("seed", [3, 5, 11])
def test_both_checkers_accept_the_engines_certificate(tmp_path: Path, seed: int) -> None:
    path, _, cert = proved(tmp_path, seed)
    assert sum(len(t) for t in cert.trees) >= 1
    report = certify.check(cert, path)
    assert report.certified, report.reason
    assert fraction_check(cert, path)


def test_checkers_agree_on_every_single_slope_flip(tmp_path: Path) -> None:
    """Flip one lower slope (0 <-> 1) at a time: the two checkers give the same answer, and
    where the float checker refuses, its message names the node and the disjunct."""
    path, _, cert = proved(tmp_path, 5)
    data = cert.model_dump()
    flips = [(t, i, r, k, j) for t, tree in enumerate(data["trees"]) for i, nd in enumerate(tree)
             for ref in nd["refute"][:1] for r, row in enumerate(ref["alpha"]) for k, layer in enumerate(row)
             for j in range(len(layer))]
    assert flips, "the proof needs some unstable ReLU"
    failed = 0
    for t, i, r, k, j in flips[:40]:
        mutated = json.loads(json.dumps(data))
        ref = mutated["trees"][t][i]["refute"][0]
        ref["alpha"][r][k][j] = 1.0 - ref["alpha"][r][k][j]
        m = certify.Certificate.model_validate(mutated)
        report = certify.check(m, path)
        assert report.certified == fraction_check(m, path)
        if not report.certified:
            failed += 1
            assert f"node {i}" in report.reason and "disjunct" in report.reason
    assert failed > 0


def _relu_net_proof(tmp_path: Path) -> tuple[Path, certify.Certificate, certify.PropertyText]:
    """The organism relu-net and a proof with splits, refutations and `outside` leaves."""
    path = Path(__file__).resolve().parents[1] / "msl" / "organisms" / "relu-net.onnx"
    net = PLNetwork.from_onnx(path)
    region = InputRegion(lower=(0.0, 0.0, -1.0, -1.0), upper=(1.0, 1.0, 1.0, 1.0),
                         constraints=(LinearConstraint((-1.0, -1.0, 0.0, 0.0), -1.2),))  # x0 + x1 >= 1.2
    prop = Property.forall(region, linear([-1.0, 0.0, 1.0], ">=", 3.0))  # y2 - y0 >= 3
    result = verify(net, prop, 60.0, record=True)
    assert result.status == "unsat" and result.proof_tree is not None
    cert = build(result.proof_tree[0], prop, result.proof_tree[1], path)
    return path, cert, certify.property_of(prop)  # type: ignore[return-value]


def test_mutations_fail_with_a_message_naming_what_failed(tmp_path: Path) -> None:
    path, cert, expected = _relu_net_proof(tmp_path)
    assert certify.check(cert, path, expected).certified
    data = cert.model_dump()
    tree = data["trees"][0]
    assert any(nd["refute"] for nd in tree) and any(nd["split"] for nd in tree)

    # one multiplier: the refutation's weights
    m = json.loads(json.dumps(data))
    nd_i = next(i for i, nd in enumerate(m["trees"][0]) if nd["refute"])
    m["trees"][0][nd_i]["refute"][0]["weights"] = [0.0] * len(m["trees"][0][nd_i]["refute"][0]["weights"])
    report = certify.check(certify.Certificate.model_validate(m), path, expected)
    assert not report.certified and f"node {nd_i}" in report.reason and "weight" in report.reason

    # dropping one leaf
    m = json.loads(json.dumps(data))
    leaf_i = max(i for i, nd in enumerate(m["trees"][0]) if nd["split"] is None)
    del m["trees"][0][leaf_i]
    report = certify.check(certify.Certificate.model_validate(m), path, expected)
    assert not report.certified and "ends before every box has a leaf" in report.reason

    # shrinking the domain the proof covers: it no longer proves the claim's property
    m = json.loads(json.dumps(data))
    m["property"]["regions"][0]["upper"][3] = 0.5
    report = certify.check(certify.Certificate.model_validate(m), path, expected)
    assert not report.certified and "another property" in report.reason

    # a split outside its box
    m = json.loads(json.dumps(data))
    s_i = next(i for i, nd in enumerate(m["trees"][0]) if nd["split"])
    m["trees"][0][s_i]["split"][1] = 5.0
    report = certify.check(certify.Certificate.model_validate(m), path, expected)
    assert not report.certified and f"node {s_i}" in report.reason and "split" in report.reason


def test_a_changed_weight_fails(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    path, cert, expected = _relu_net_proof(tmp_path)
    model = onnx.load(str(path))
    last = [t for t in model.graph.initializer if t.name == model.graph.node[-1].input[2]][0]
    bias = numpy_helper.to_array(last).copy()
    bias[0] += 10.0  # output 0 now beats output 2 by far
    last.CopyFrom(numpy_helper.from_array(bias, last.name))
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    report = certify.check(cert, changed, expected)
    assert not report.certified and "is not the one the certificate is for" in report.reason
    # even a certificate re-pointed at the changed file does not check: its bounds fail
    forged = cert.model_copy(update={"network": certify.NetworkRef(sha256=certify_sha(changed))})
    report = certify.check(forged, changed, expected)
    assert not report.certified and "is not refuted" in report.reason and "node" in report.reason


def certify_sha(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    path = onnx_net(
        tmp_path / "sig.onnx",
        [node("Gemm", ["x", "w", "b"], "h", transB=1), node("Sigmoid", ["h"], "y", name="squash")],
        {"w": f32([[1.0, 2.0]]), "b": f32([0.0])},
        [1, 2],
        [1, 1],
    )
    with pytest.raises(Exception, match="squash.*Sigmoid"):
        certify.read_onnx(path)


def test_storage_round_trip_and_digest(tmp_path: Path) -> None:
    path, _, cert = proved(tmp_path)
    digest = certify.save(cert, tmp_path / "f.certificates")
    file = tmp_path / "f.certificates" / f"{digest[7:]}.json.gz"
    assert certify.load(file, digest) == cert
    raw = json.loads(gzip.decompress(file.read_bytes()))
    raw["trees"][0][0]["leaf"] = "bounds" if raw["trees"][0][0].get("leaf") != "bounds" else "smt"
    file.write_bytes(gzip.compress(json.dumps(raw).encode()))
    with pytest.raises(Exception, match="does not match the digest"):
        certify.load(file, digest)


def test_schema_command_prints_the_certificate_schema() -> None:
    out = CliRunner().invoke(cli, ["schema", "--certificate"])
    assert out.exit_code == 0
    schema = json.loads(out.output)
    assert schema["title"] == "MSL proof certificate" and "Refutation" in schema["$defs"]


def _proved_with_certificate(net: Path, prop: Path, cert: Path, *options: str) -> CliRunner:
    """``msl vnnlib NET PROP --certificate CERT``, which must answer unsat; the runner, for more."""
    runner = CliRunner()
    out = runner.invoke(cli, ["vnnlib", str(net), str(prop), *options, "--certificate", str(cert)])
    assert out.exit_code == 0 and out.output.splitlines()[0] == "unsat"
    return runner


@pytest.mark.skipif(not ACAS.is_dir(), reason="the ACAS Xu benchmark is not here")
def test_acasxu_unsat_certifies_through_the_cli(tmp_path: Path) -> None:
    net, prop, cert = ACAS / "ACASXU_run2a_2_1_batch_2000.onnx", ACAS / "prop_3.vnnlib", tmp_path / "proof.json.gz"
    runner = _proved_with_certificate(net, prop, cert)
    out = runner.invoke(cli, ["certify", str(cert), "--network", str(net), "--vnnlib", str(prop)])
    assert out.exit_code == 0, out.output
    assert "certified" in out.output and "not certified" not in out.output
    out = runner.invoke(cli, ["certify", str(cert), "--network", str(ACAS / "ACASXU_run2a_2_2_batch_2000.onnx")])
    assert out.exit_code == 1 and "not the one the certificate is for" in out.output
    out = runner.invoke(cli, ["certify", str(cert)])
    assert out.exit_code == 2


def test_check_saves_certificates_and_a_failing_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msl check stores each proof's certificate beside the findings (msl certify accepts
    them); a certificate the checker rejects makes the claim an error, never proved."""
    spec = Path(__file__).resolve().parents[1] / "specs" / "verify_relu.msl"
    out = tmp_path / "f.json"
    runner = CliRunner()
    res = runner.invoke(
        cli, ["check", str(spec), "-q", "--no-cache", "-o", str(out), "--select", "margin_under_a_linear_constraint"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    digest = doc["findings"][0]["proof"]["certificate"]
    assert (tmp_path / "f.certificates" / f"{digest[7:]}.json.gz").is_file()
    res = runner.invoke(cli, ["certify", str(out)])
    assert res.exit_code == 0 and "certified" in res.output and "not certified" not in res.output, res.output

    def refuse(cert, path, expected=None):  # type: ignore[no-untyped-def]
        return certify.CheckReport(False, "region 0, node 7: disjunct 0 is not refuted", 1, 1, 0.0)

    monkeypatch.setattr(certify, "check", refuse)
    out2 = tmp_path / "g.json"
    res = runner.invoke(
        cli, ["check", str(spec), "-q", "--no-cache", "-o", str(out2), "--select", "margin_under_a_linear_constraint"]
    )
    finding = json.loads(out2.read_text())["findings"][0]
    assert finding["verdict"] == "error"
    assert "certificate does not check" in finding["error"]["message"] and "node 7" in finding["error"]["message"]


def test_replay_checks_proofs_by_their_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """msl replay checks a proved finding by its certificate (no solver) and says so; a
    certificate that does not check is not reproduced (exit 1)."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    out = tmp_path / "f.json"
    runner = CliRunner()
    select = ["--select", "margin_under_a_linear_constraint"]
    assert (
        runner.invoke(cli, ["check", "specs/verify_relu.msl", "-q", "--no-cache", "-o", str(out), *select]).exit_code
        == 0
    )

    def no_solver(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("replay ran the solver instead of checking the certificate")

    import sys

    monkeypatch.setattr(sys.modules["msl.engines.formal.verify"], "verify", no_solver)
    res = runner.invoke(cli, ["replay", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "reproduced by its proof certificate (no solver run" in res.output
    file = next((tmp_path / "f.certificates").iterdir())
    raw = json.loads(gzip.decompress(file.read_bytes()))
    node = next(n for n in raw["trees"][0] if n.get("refute"))
    node["refute"][0]["weights"] = [0.0] * len(node["refute"][0]["weights"])
    file.write_bytes(gzip.compress(json.dumps(raw).encode()))
    res = runner.invoke(cli, ["replay", str(out), "-q"])
    assert res.exit_code == 1 and "not reproduced by its proof certificate" in res.output and "digest" in res.output


def test_stated_bounds_need_not_be_trusted(tmp_path: Path) -> None:
    """A node's stated pre-activation bounds only shape the relaxation: the checker relaxes
    over their hull with its own, so a stated bound tighter than the truth changes nothing,
    and one widened far enough makes the refutation fail, naming the node."""
    path, _, cert = proved(tmp_path, 5)
    data = cert.model_dump()
    i = next(i for i, nd in enumerate(data["trees"][0]) if nd["refute"] and any(nd["unstable"]))
    k = next(k for k, u in enumerate(data["trees"][0][i]["unstable"]) if u)
    tight = json.loads(json.dumps(data))
    lo, hi = tight["trees"][0][i]["bounds"][k][0]
    tight["trees"][0][i]["bounds"][k][0] = [lo / 2, hi / 2]
    assert certify.check(certify.Certificate.model_validate(tight), path).certified
    wide = json.loads(json.dumps(data))
    wide["trees"][0][i]["bounds"] = [[[-1e6, 1e6] for _ in layer] for layer in wide["trees"][0][i]["bounds"]]
    report = certify.check(certify.Certificate.model_validate(wide), path)
    assert not report.certified and f"node {i}" in report.reason and "disjunct" in report.reason


@pytest.mark.parametrize("seed", [3, 5, 11])
def test_lp_leaves_carry_farkas_multipliers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Boxes closed by linear pieces carry each LP's multipliers; the checker recomputes the
    pieces itself and finds the combinations positive; one changed multiplier fails."""
    from msl.engines.formal import bab

    monkeypatch.setattr(bab, "PIECE_UNSTABLE", 12)  # every box the bounds leave open goes to LP pieces
    path = tiny_net(tmp_path / "tiny.onnx", seed)
    net = PLNetwork.from_onnx(path)
    grid = np.stack(np.meshgrid(np.linspace(-0.4, 0.4, 81), np.linspace(-0.4, 0.4, 81)), -1).reshape(-1, 2)
    y = net.forward(grid)
    top = int(np.argmax(net.forward(np.zeros(2))))
    expect = None
    for k in range(3):
        if k != top:
            gap = float(np.min(y[:, top] - y[:, k]))
            if gap <= 0:
                pytest.skip("output top does not win on the whole box")
            row = linear([1.0 if i == top else -1.0 if i == k else 0.0 for i in range(3)], ">=", 0.9 * gap)
            expect = row if expect is None else expect & row
    prop = Property.forall(InputRegion.box([-0.4, -0.4], [0.4, 0.4]), expect)
    result = verify(net, prop, 30.0, record=True)
    assert result.status == "unsat" and result.proof_tree is not None
    cert = build(result.proof_tree[0], prop, result.proof_tree[1], path)
    data = cert.model_dump()
    lp = [(i, nd) for i, nd in enumerate(data["trees"][0]) if nd["leaf"] == "lp"]
    if not lp:
        pytest.skip("the bounds closed every box")
    report = certify.check(cert, path)
    assert report.certified, report.reason
    i, nd = lp[0]
    mutated = json.loads(json.dumps(data))
    case = mutated["trees"][0][i]["lp"]["cases"][0]
    case["multipliers"] = [0.0] * len(case["multipliers"])
    report = certify.check(certify.Certificate.model_validate(mutated), path)
    assert not report.certified and f"node {i}" in report.reason and "LP leaf" in report.reason
    dropped = json.loads(json.dumps(data))
    dropped["trees"][0][i]["lp"]["cases"].pop()
    report = certify.check(certify.Certificate.model_validate(dropped), path)
    assert not report.certified and "no case for phases" in report.reason


# ── LP leaves: per-piece float32 margins ─────────────────────────────────────────────────

#: A point where float32 summation switches a ReLU on that is off over the reals (see
#: tests/test_formal_float32_pieces.py): z = sum(x) + BIAS is about -2^-22, and y = 2^24 relu(z).
S = 2.0**-24 + 2.0**-30
SWITCH_X = [1.0, S, S, S, S, 2.0**-26]
SWITCH_BIAS = -(1.0 + 2.0**-21)


def _switch_net(path: Path) -> Path:
    nodes = [
        node("Gemm", ["x", "w1", "b1"], "h", transB=1),
        node("Relu", ["h"], "r"),
        node("Gemm", ["r", "w2", "b2"], "y", transB=1),
    ]
    consts = {"w1": f32(np.ones((1, 6))), "b1": f32([SWITCH_BIAS]), "w2": f32([[2.0**24]]), "b2": f32([0.0])}
    return onnx_net(path, nodes, consts, [1, 6], [1, 1])


def _executed_outputs() -> list[float]:
    """y at SWITCH_X run in float32, the hidden sum in every order of its 7 terms (the bias
    one of them): the truth the certificates below are judged by."""
    import itertools

    terms = [np.float32(v) for v in [*SWITCH_X, SWITCH_BIAS]]
    out = []
    for perm in itertools.permutations(range(7)):
        z = np.float32(0.0)
        for i in perm:
            z = np.float32(z + terms[i])
        out.append(float(np.float32(2.0**24) * max(z, np.float32(0.0))))
    return out


def _switch_cert(path: Path, threshold: float, on_case: list[float]) -> certify.Certificate:
    """An LP leaf on the single point SWITCH_X for "y >= threshold is unsafe": the ReLU's off
    piece refuted by the output row, its on piece by the multipliers ``on_case`` (output row,
    phase row)."""
    lp = certify.LpEvidence(unstable=[[0]], cases=[
        certify.LpCase(phases=[0], disjunct=0, multipliers=[1.0, 0.0]),
        certify.LpCase(phases=[1], disjunct=0, multipliers=on_case),
    ])
    return certify.Certificate(
        network=certify.NetworkRef(sha256=certify_sha(path)),
        property=certify.PropertyText(inputs=6, regions=[certify.Region(lower=SWITCH_X, upper=SWITCH_X)],
                                      unsafe=[[certify.Constraint(coeffs=[-1.0], rhs=-threshold)]]),
        trees=[[certify.Node(leaf="lp", lp=lp)]],
    )


def test_lp_leaf_margins_are_per_piece_and_relax_the_phase_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the reals the ReLU is off at SWITCH_X and y = 0; float32 execution reaches y = 0.25.
    A certificate that y >= 0.125 is unreachable is false, whichever row refutes the on piece:
    the output row only looks positive without the piece's output margin, the phase row only
    without its relaxation. y >= 16 is unreachable in float32 (every summation order is
    tried; Higham's bound says < 11) and certifies with the on piece's own margin."""
    path = _switch_net(tmp_path / "switch.onnx")
    reached = _executed_outputs()
    assert max(reached) >= 0.25 and max(reached) < 16.0
    assert sum(Fraction(v) for v in SWITCH_X) + Fraction(SWITCH_BIAS) < 0  # off over the reals
    report = certify.check(_switch_cert(path, 16.0, [1.0, 0.0]), path)
    assert report.certified, report.reason
    false_certs = [_switch_cert(path, 0.125, [1.0, 0.0]), _switch_cert(path, 0.125, [0.0, 1.0])]
    for cert in false_certs:
        report = certify.check(cert, path)
        assert not report.certified and "LP leaf): phases [1]" in report.reason
    # The margins are what rejects them: without them (the checker's old flaw) both pass.
    monkeypatch.setattr(certify, "_margin", lambda coef, chain, err: 0.0)
    assert all(certify.check(cert, path).certified for cert in false_certs)


@pytest.mark.skipif(not ACAS.is_dir(), reason="the ACAS Xu benchmark is not here")
def test_acasxu_1_1_prop_5_lp_leaves_certify(tmp_path: Path) -> None:
    """The engine proves 1_1 prop 5 with LP leaves whose pieces need per-piece margins."""
    net, prop, cert = ACAS / "ACASXU_run2a_1_1_batch_2000.onnx", ACAS / "prop_5.vnnlib", tmp_path / "proof.json.gz"
    runner = _proved_with_certificate(net, prop, cert, "--timeout", "116")
    assert any(nd.leaf == "lp" for nd in certify.load(cert).trees[0])
    out = runner.invoke(cli, ["certify", str(cert), "--network", str(net), "--vnnlib", str(prop)])
    assert out.exit_code == 0 and "not certified" not in out.output, out.output


def test_a_refine_proof_over_one_of_two_networks_certifies_and_equivalence_says_it_has_none(tmp_path: Path) -> None:
    """A refine finding names both networks (base and refined) while its proof is about one:
    msl certify picks the network whose file the certificate names by sha256 (it failed with
    "certificates are about one network, the finding names 2"); an ε-equivalence proof has no
    certificate yet, and its message says so."""
    spec = Path(__file__).resolve().parents[1] / "specs" / "refine_relu.msl"
    out = tmp_path / "f.json"
    runner = CliRunner()
    select = ["--select", "pruned_keeps_class_2", "--select", "pruned_within_0_25"]
    res = runner.invoke(cli, ["check", str(spec), "-q", "-o", str(out), *select])
    assert res.exit_code == 0, res.output
    found = {f["claim"]["name"]: f for f in json.loads(out.read_text())["findings"]}
    assert len(found["pruned_keeps_class_2"]["models"]) == 2
    assert found["pruned_within_0_25"]["verdict"] == "proved"
    assert "no certificate: proofs of ε-equivalence" in found["pruned_within_0_25"]["message"]
    res = runner.invoke(cli, ["certify", str(out)])
    assert "pruned_keeps_class_2: certified" in res.output, res.output
    assert "pruned_within_0_25: not certified: the finding carries no certificate" in res.output
    assert res.exit_code == 1  # not every proof certifies
