"""Everyday mistakes get a clear error (lint time where possible), never a wrong verdict.

Every case runs the real CLI and checks the contract: the exit code, a located message
that names what is wrong, no traceback and no "internal error". Where the error rests on
a fact about a model (its kind, labels, block count), the fact is read independently,
from the model's own config or from transformers.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from lang_helpers import run_cli

from msl.models.registry import ORGANISMS_DIR

SENTIMENT = ORGANISMS_DIR / "sentiment"
pytest_plugins = ["pytester"]


def cli(*args: str, cwd: Path, code: int) -> str:
    """Run ``msl ARGS``; assert the exit code and a clean failure; the combined output."""
    result, _ = run_cli(*args, cwd=cwd, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == code, (result.returncode, output[-3000:])
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    return output


def spec(folder: Path, body: str, name: str = "s.msl") -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("msl 1.0\n" + body, encoding="utf-8")
    return name


CLAIM = """
verify inv {
  for x in ["The food was good.", "The film was great."]
  expect lm.logprob(x, " good") > -50
}
"""


# ── Model kinds ──────────────────────────────────────────────────────────────────────────


def test_a_classifier_bound_as_a_causal_lm_is_a_lint_error(tmp_path: Path) -> None:
    # the truth: as a causal LM, the organism's LM head would be random
    import transformers

    _, info = transformers.AutoModelForCausalLM.from_pretrained(SENTIMENT, output_loading_info=True)
    assert info["missing_keys"]
    name = spec(tmp_path, 'model lm: causal_lm = "organism:sentiment"\n' + CLAIM)
    for command in ("lint", "check"):
        out = cli(command, name, cwd=tmp_path, code=2)
        assert "s.msl:2:1: error: model role `lm` is a causal_lm, but 'organism:sentiment' is a classifier" in out
        assert "holds" not in out and "violated" not in out


def test_an_encoder_bound_to_a_causal_lm_role_on_the_command_line(tmp_path: Path) -> None:
    name = spec(tmp_path, "model lm: causal_lm\n" + CLAIM)
    out = cli("check", name, "--model", "lm=minilm-l6", cwd=tmp_path, code=2)
    assert "--model lm=minilm-l6: model role `lm` is a causal_lm, but 'minilm-l6' is an encoder" in out


def test_missing_weights_at_load_are_a_model_error_naming_role_and_kind(tmp_path: Path) -> None:
    """A checkpoint whose config does not say what it is passes lint; loading it finds the
    newly initialised head and fails the claim (exit 3) instead of giving a verdict."""
    model = tmp_path / "models" / "plain"
    shutil.copytree(SENTIMENT, model)
    config = json.loads((model / "config.json").read_text())
    del config["architectures"]
    (model / "config.json").write_text(json.dumps(config))
    # a relative path in a spec is relative to the spec's folder, not to the working directory
    name = spec(tmp_path, 'model lm: causal_lm = "../models/plain"\n' + CLAIM, name="specs/s.msl")
    out = cli("check", name, "--no-cache", "-q", cwd=tmp_path, code=3)
    assert "model role `lm` (causal_lm)" in out and "is not a causal_lm model" in out
    assert "newly initialised" in out and "cls.predictions" in out
    assert "1 claim: 1 error" in out
    # and the same spec from another folder finds the same model
    out = cli("check", str(tmp_path / name), "--no-cache", "-q", cwd=tmp_path / "models", code=3)
    assert "is not a causal_lm model" in out


def test_a_relative_model_path_resolves_against_the_spec_folder(tmp_path: Path) -> None:
    shutil.copytree(SENTIMENT, tmp_path / "ckpt")
    body = ('model clf: classifier = "../ckpt"\nverify v {\n  for x in ["The food was great."]\n'
            '  expect clf.prob(x, "positive") > 0.5\n}\n')
    name = spec(tmp_path, body, name="specs/s.msl")
    out = cli("check", name, "--no-cache", "-q", cwd=tmp_path, code=0)
    assert "1 holds" in out
    cli("lint", "s.msl", cwd=tmp_path / "specs", code=0)


@pytest.mark.parametrize(
    ("ref", "message", "suggestion"),
    [
        ("organism:sentimnet", "no model organism named 'sentimnet'", "organism:sentiment"),
        ("smollm2-135", "unknown model 'smollm2-135'", "smollm2-135m"),
        ("./ckpt-v3", "no model at", "ckpt-v2"),
        ("./elsewhere", "no model at", None),
    ],
)
def test_references_that_name_nothing_are_lint_errors(
    tmp_path: Path, ref: str, message: str, suggestion: str | None
) -> None:
    (tmp_path / "ckpt-v2").mkdir()
    name = spec(tmp_path, f'model lm: causal_lm = "{ref}"\n' + CLAIM)
    out = cli("lint", name, cwd=tmp_path, code=2)
    assert "s.msl:2:1: error: " + message in out
    if suggestion is not None:
        assert re.search(f"did you mean '[^']*{suggestion}'", out), out


# ── Types, labels, units, sites ──────────────────────────────────────────────────────────


CLASSIFY = 'model clf: classifier = "organism:sentiment"\n'


def test_a_label_compared_with_a_number(tmp_path: Path) -> None:
    name = spec(tmp_path, CLASSIFY + 'verify v {\n  for x in ["good"]\n  expect clf.label(x) == 1\n}\n')
    out = cli("lint", name, cwd=tmp_path, code=2)
    assert "s.msl:5:10: error: `==` between a string and a number is always false" in out


def test_a_misspelt_label(tmp_path: Path) -> None:
    labels = json.loads((SENTIMENT / "config.json").read_text())["id2label"].values()
    assert "postive" not in labels and "positive" in labels
    body = CLASSIFY + 'verify v {\n  for x in ["good"]\n  expect clf.label(x) == "postive"\n}\n'
    out = cli("lint", spec(tmp_path, body), cwd=tmp_path, code=2)
    assert 's.msl:5:26: error: classifier `clf` has no label "postive"' in out
    assert 'did you mean "positive"?' in out
    body = CLASSIFY + 'verify v {\n  for x in ["good"]\n  expect clf.label(x) == "positive"\n}\n'
    cli("lint", spec(tmp_path, body), cwd=tmp_path, code=0)


def test_an_empty_continuation(tmp_path: Path) -> None:
    body = 'model lm: causal_lm = "smollm2-135m"\nverify v {\n  for x in ["a"]\n  expect lm.logprob(x, "") < 0\n}\n'
    out = cli("lint", spec(tmp_path, body), cwd=tmp_path, code=2)
    assert "s.msl:5:24: error: the continuation is empty" in out


def test_a_percent_tolerance_on_log_probabilities(tmp_path: Path) -> None:
    body = (
        'model lm: causal_lm = "smollm2-135m"\nmodel clf: classifier = "organism:sentiment"\n'
        "transform up = uppercase()\nmeasure pos(x) = clf.prob(x, \"positive\")\n"
        'verify a {\n  for x in ["a"]\n  expect invariant lm.logprob(x, " a") under up within 5%\n}\n'
    )
    out = cli("lint", spec(tmp_path, body), cwd=tmp_path, code=2)
    assert "s.msl:8:56: error: 5% here is an absolute difference of 0.05" in out
    body = body.replace('lm.logprob(x, " a")', "pos(x)")  # a probability: 5% is 0.05 of it, fine
    cli("lint", spec(tmp_path, body), cwd=tmp_path, code=0)


def test_a_site_past_the_last_block(tmp_path: Path) -> None:
    model = tmp_path / "ckpt"
    shutil.copytree(SENTIMENT, model)
    blocks = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    assert blocks == 2
    template = (
        'model enc: encoder = "ckpt"\n'
        "vector v = mean_diff(enc.resid_post[{i}], [\"good\"], [\"bad\"])\n"
        "verify c {{\n  for x in [\"good\"]\n  expect cosine(enc.embed(x), v) > 0.5\n}}\n"
    )
    for bad in (2, -3):
        out = cli("lint", spec(tmp_path, template.format(i=bad)), cwd=tmp_path, code=2)
        assert f"error: `enc` has 2 blocks, so resid_post[{bad}] does not exist" in out
    for good in (1, -2):
        cli("lint", spec(tmp_path, template.format(i=good)), cwd=tmp_path, code=0)


# ── No spec, and the pytest plugin's options ─────────────────────────────────────────────


def test_no_spec_found_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for command in ("check", "lint"):
        out = cli(command, "empty", cwd=tmp_path, code=2)
        assert "empty:1:1: error: no spec found" in out
        assert "OK" not in out


PLUGIN = ("-p", "no:msl", "-p", "msl.pytest_plugin", "-p", "no:cacheprovider")
RELU = """msl 1.0

model net: network = "organism:relu-net"

verify points_of_class_two {
  for x in [[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5]]
  expect argmax(net(x)) == 2
}

verify again {
  for x in [[1, 1, 1, 1]]
  expect argmax(net(x)) == 2
}
"""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("net", "--msl-model 'net' is not ROLE=REF"),
        ("nte=organism:relu-net", "no collected spec declares a model role `nte` (roles: net)"),
    ],
)
def test_pytest_plugin_options_are_checked_once(pytester: pytest.Pytester, option: str, message: str) -> None:
    pytester.makefile(".msl", relu=RELU)
    result = pytester.runpytest_subprocess(*PLUGIN, "--msl-model", option, "relu.msl")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert output.count(message) == 1, output
    assert "ValueError" not in output and "Traceback" not in output


def test_pytest_plugin_checks_a_binding_s_kind(pytester: pytest.Pytester) -> None:
    pytester.makefile(".msl", relu=RELU)
    result = pytester.runpytest_subprocess(*PLUGIN, "--msl-model", "net=organism:sentiment", "relu.msl")
    result.assert_outcomes(failed=1)  # one spec item with the error, instead of a verdict per claim
    assert "model role `net` is a network, but 'organism:sentiment' is a classifier" in result.stdout.str()


# ── Crashes: times at the ends of the calendar ───────────────────────────────────────────


def _document(tmp_path: Path, started_at: str | None = None) -> Path:
    import findings_samples as samples

    from msl.findings import FindingsDocument

    data = json.loads(FindingsDocument.of([samples.holds()]).model_dump_json())
    if started_at is not None:
        data["findings"][0]["provenance"]["started_at"] = started_at
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(data))
    return path


def test_a_time_out_of_range_in_utc_is_refused_on_reading(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    with pytest.raises(OverflowError):  # the truth: this moment has no UTC equivalent
        datetime.fromisoformat("0001-01-01T00:00:00+01:00").astimezone(UTC)
    _document(tmp_path, "0001-01-01T00:00:00+01:00")
    for args in (
        ("catalog", "add", "findings.json", "--catalog", "c.sqlite"),
        ("report", "findings.json", "--format", "junit"),
    ):
        out = cli(*args, cwd=tmp_path, code=2)
        assert "started_at" in out and "out of range once converted to UTC" in out


def test_catalogue_search_at_the_ends_of_the_calendar(tmp_path: Path) -> None:
    _document(tmp_path)  # started 2025-03-01T12:00Z
    cli("catalog", "add", "findings.json", "--catalog", "c.sqlite", cwd=tmp_path, code=0)
    for bound, found in [
        (("--until", "9999-12-31"), True),
        (("--until", "9999-12-31T23:00:00-05:00"), True),
        (("--until", "0001-01-01T00:00:00+01:00"), False),
        (("--since", "0001-01-01T00:00:00+01:00"), True),
        (("--since", "9999-12-31"), False),
    ]:
        out = cli("catalog", "search", *bound, "--catalog", "c.sqlite", cwd=tmp_path, code=0)
        assert ("holds" in out) is found, (bound, out)


# ── Crashes: datasets ────────────────────────────────────────────────────────────────────

LONG = 200_000  # longer than the csv module's default field limit of 131,072


@pytest.mark.parametrize(
    ("name", "content", "code", "expected"),
    [
        # a BOM is not part of the first column's name; the long field is read whole (rate 50%)
        ("d.csv", "\ufefftext,label\nshort,a\n" + "x" * LONG + ",b\n", 0, "2 claims: 2 holds"),
        ("d.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", 3, "d.jsonl:1: JSON nested too deeply"),
        ("d.csv", "text,label\na,b,c\n", 3, "d.csv:2: more fields than the header has columns"),
    ],
)
def test_datasets_that_used_to_crash(tmp_path: Path, name: str, content: str, code: int, expected: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    body = (
        f'data d = dataset("{name}", text: "text")\n'
        "verify lengths {\n  for x in d\n  expect len(x.text) >= 1\n}\n"
        f"verify longest {{\n  for x in d\n  expect rate(len(x.text) == {LONG}) == 50%\n}}\n"
    )
    out = cli("check", spec(tmp_path, body), "--no-cache", "-q", cwd=tmp_path, code=code)
    assert expected in out


def test_show_on_a_damaged_catalogue_is_a_usage_error_like_list(tmp_path: Path) -> None:
    """Damage each page of a catalogue in turn: `show` and `list` either work or say the
    catalogue is damaged (exit 2), never an internal error."""
    import sqlite3

    import findings_samples as samples
    from click.testing import CliRunner

    from msl.cli import cli as msl

    (tmp_path / "f.json").write_text(samples.sample_document().model_dump_json())
    good = tmp_path / "good.sqlite"
    runner = CliRunner()
    assert runner.invoke(msl, ["catalog", "add", str(tmp_path / "f.json"), "--catalog", str(good)]).exit_code == 0
    finding_id = samples.sample_document().findings[0].id
    data = good.read_bytes()
    page = 4096
    damaged_shows = 0
    for start in range(page, len(data), page):
        broken = bytearray(data)
        broken[start + 100 : start + page : 3] = b"Z" * len(range(start + 100, start + page, 3))
        path = tmp_path / f"damaged-{start // page}.sqlite"
        path.write_bytes(bytes(broken))
        for args in (
            ["catalog", "show", finding_id, "--catalog", str(path)],
            ["catalog", "list", "--catalog", str(path)],
        ):
            result = runner.invoke(msl, args)
            assert result.exit_code in (0, 2), (args, result.output)
            assert "internal error" not in result.output, (args, result.output)
            if args[1] == "show" and result.exit_code == 2:
                assert "damaged" in result.output or "cannot use catalogue" in result.output, result.output
                with sqlite3.connect(path) as db:  # the truth: sqlite finds the damage too
                    try:
                        ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                    except sqlite3.DatabaseError:
                        ok = False
                assert not ok
                damaged_shows += 1
    assert damaged_shows > 0


# ── Crashes: domains and indices of forall claims ────────────────────────────────────────


def test_empty_boxes_and_negative_radii_are_spec_errors(tmp_path: Path) -> None:
    body = 'model net: network = "organism:relu-net"\n' + "".join(
        f"verify c{i} {{\n  forall x in {domain}\n  expect argmax(net(x)) != 0\n}}\n"
        for i, domain in enumerate([
            "box(lower: [1, 0, 0, 0], upper: [0, 1, 1, 1])",
            "linf_ball([0, 0, 0, 0], -0.1)",
            "l2_ball([0, 0, 0, 0], -1)",
            "box(lower: [], upper: [])",
        ])
    )
    out = cli("check", spec(tmp_path, body), cwd=tmp_path, code=2)
    assert "s.msl:4:26: error: the box is empty: lower[0] = 1 is above upper[0] = 0" in out
    assert "s.msl:8:39: error: a ball's radius must be ≥ 0" in out
    assert "s.msl:12:37: error: a ball's radius must be ≥ 0" in out
    assert "s.msl:16:26: error: a box needs at least one dimension" in out


def test_a_negative_output_index_in_a_forall_claim_is_the_last_output(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    onnx = ORGANISMS_DIR / "relu-net.onnx"
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    points = np.random.default_rng(0).uniform(0, 1, size=(2000, 4)).astype(np.float32)
    outputs = session.run(None, {name: points})[0]
    assert outputs.shape[1] == 3
    seen = float(outputs[:, 2].max())  # the truth: some input of the box reaches this
    for threshold, verdict, code in ((seen - 1e-3, "refuted", 1), (seen + 1e6, "proved", 0)):
        body = (
            'model net: network = "organism:relu-net"\n'
            "verify last {\n  forall x in box(lower: [0, 0, 0, 0], upper: [1, 1, 1, 1])\n"
            f"  expect net(x)[-1] <= {threshold:.6f}\n}}\n"
        )
        out = cli("check", spec(tmp_path, body), "--no-cache", "-q", cwd=tmp_path, code=code)
        assert f"1 {verdict}" in out, out


# ── Output details ───────────────────────────────────────────────────────────────────────


def test_an_inconclusive_sample_without_violations_says_how_many_samples_would_decide(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    points = [[i / 100, 0.5, 0.25, 0.0] for i in range(100)]
    session = ort.InferenceSession(str(ORGANISMS_DIR / "relu-net.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: np.array(points, dtype=np.float32)})[0]
    assert (outputs[:, 0] <= 1000).all()  # the truth: no point violates

    def run(n: int, code: int) -> str:
        body = (
            'model net: network = "organism:relu-net"\n'
            f"data points = {json.dumps(points)}\n"
            f"verify bounded {{\n  for x in sample(points, {n})\n  expect net(x)[0] <= 1000\n  tolerate 5%\n}}\n"
        )
        return cli("check", spec(tmp_path, body), "--no-cache", "-q", "--strict", cwd=tmp_path, code=code)

    out = run(50, 1)
    assert "inconclusive" in out and "a sample of 94 would show that it holds at 95% confidence" in out
    assert "1 holds" in run(94, 0)  # and it does
    assert "inconclusive" in run(93, 1)


def test_the_terminal_does_not_promise_rows_the_reports_lack() -> None:
    from rich.console import Console

    from msl.findings import Table
    from msl.reporters.text import result_table

    table = Table(title="per instance (the first 100 of 200)", columns=["input", "v"],
                         rows=[[f"x{i}", float(i)] for i in range(100)])
    console = Console(record=True, width=120)
    console.print(result_table(table))
    text = console.export_text()
    assert "have all" not in text and "more rows in the JSON and HTML reports" in text


def test_saved_vectors_are_keyed_by_name_with_their_hash_in_the_metadata(tmp_path: Path) -> None:
    import hashlib

    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from msl.vectors import INDEX_KEY, VectorFile

    love, other = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    path = tmp_path / "run.vectors.safetensors"
    VectorFile.of([("a.msl", "love", love), ("b.msl", "love", other), ("a.msl", "hate", -love)]).save(path)
    d = load_file(str(path))
    assert np.array_equal(d["hate"], -love)  # a label the run gives one vector: its own name
    assert np.array_equal(d["a.msl::love"], love) and np.array_equal(d["b.msl::love"], other)
    with safe_open(str(path), framework="numpy") as handle:
        rows = json.loads(handle.metadata()[INDEX_KEY])
    for _spec_file, _label, digest, key in rows:  # the truth: each hash is of the tensor's float32 bytes
        assert digest == "sha256:" + hashlib.sha256(d[key].astype("<f4").tobytes()).hexdigest()
    loaded = VectorFile.load(path)
    assert np.array_equal(loaded.pins("a.msl")["love"], love) and np.array_equal(loaded.pins("b.msl")["love"], other)


def test_sarif_rules_are_per_claim_and_keep_the_baseline_reason(tmp_path: Path) -> None:
    import findings_samples as samples

    from msl.findings import FindingsDocument, finding_id

    def violated(file: str, description: str):  # type: ignore[no-untyped-def]
        f = samples.violated(claim=samples.claim("name_swap", 12, file=file, description=description))
        return f.model_copy(update={"id": finding_id(f)})

    doc = FindingsDocument.of([violated("specs/a.msl", "names in reviews"), violated("specs/b.msl", "names in tweets")])
    (tmp_path / "f.json").write_text(doc.model_dump_json())
    cli("baseline", "f.json", "--reason", "tracked in #12", "-o", "b.json", cwd=tmp_path, code=0)
    cli("report", "f.json", "--baseline", "b.json", "--format", "sarif", "-o", "out.sarif", cwd=tmp_path, code=0)
    run = json.loads((tmp_path / "out.sarif").read_text())["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == 2 and len({r["id"] for r in rules}) == 2
    assert {r["shortDescription"]["text"] for r in rules} == {"names in reviews", "names in tweets"}
    for result in run["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] in rule["id"]
        assert "tracked in #12" in result["suppressions"][0]["justification"]


def _html(tmp_path: Path, *findings: object) -> str:
    from msl.findings import FindingsDocument

    (tmp_path / "f.json").write_text(FindingsDocument.of(list(findings)).model_dump_json())  # type: ignore[arg-type]
    cli("report", "f.json", "--format", "html", "-o", "r.html", cwd=tmp_path, code=0)
    return (tmp_path / "r.html").read_text()


def test_html_report_details(tmp_path: Path) -> None:
    import re

    import findings_samples as samples

    from msl.findings import FindingsDocument, make_finding

    # a formal finding whose statistics hold nothing to show
    proved = make_finding(**{**samples.proved().model_dump(exclude={"id"}), "statistics": {}})
    page = _html(tmp_path, proved)
    assert "1 claim " in page and "1 claims" not in page
    assert "<h3>Statistics</h3>" not in page and "<th></th>" not in page
    error = make_finding(**{**samples.error().model_dump(exclude={"id"}), "message": "model returned NaN logits"})
    page = _html(tmp_path, error)  # engines repeat an error's message as the finding's message
    shown = re.sub(r"<[^>]*>", "", page.split("<section", 1)[1])  # the text a reader sees, not attributes
    assert shown.count("model returned NaN logits") == 1  # once in its finding
    (tmp_path / "f.json").write_text(FindingsDocument.of([error]).model_dump_json())
    out = cli("report", "f.json", cwd=tmp_path, code=0)
    details = out.split("claim ", 1)[0]  # the lines above the results table
    assert details.count("model returned NaN logits") == 1, out
    text = "a " * 400 + "the end"
    vector = [i / 7 for i in range(12)]
    long_cx = make_finding(**{
        **samples.refuted().model_dump(exclude={"id"}),
        "counterexamples": [{"input": vector, "values": {"y0": 3.9, "top": text}, "replayed": True}],
    })
    page = _html(tmp_path, long_cx)
    assert "the end" in page and "…" not in page.split("<h3>Counterexample", 1)[1].split("</table>", 1)[0]
    assert all(f"{v:.9g}" in page for v in vector)  # every coordinate, at float32 precision
    assert not re.search(r"<th>\s*</th>", page) and "before shrinking" not in page


def test_per_instance_lets_are_listed_with_the_counterexamples(tmp_path: Path) -> None:
    import torch
    import transformers

    texts = ["The food was great.", "The film was awful."]
    body = (
        CLASSIFY + f"verify v {{\n  for x in {json.dumps(texts)}\n  let q = clf.prob(x, \"negative\")\n"
        '  expect clf.label(x) == "positive"\n}\n'
    )
    spec(tmp_path, body)
    cli("check", "s.msl", "--no-cache", "-q", "--format", "json", "-o", "f.json", cwd=tmp_path, code=1)
    finding = json.loads((tmp_path / "f.json").read_text())["findings"][0]
    assert "no instance could be checked" not in finding["message"]
    (cx,) = finding["counterexamples"]
    # the truth, from transformers directly
    tokenizer = transformers.AutoTokenizer.from_pretrained(SENTIMENT)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(SENTIMENT).eval()
    with torch.no_grad():
        probs = torch.softmax(model(**tokenizer(cx["input"], return_tensors="pt")).logits, -1)[0]
    negative = {v: int(k) for k, v in model.config.id2label.items()}["negative"]
    assert cx["input"] == "The film was awful." and cx["values"]["q"] == pytest.approx(float(probs[negative]), abs=1e-5)


def test_an_encoder_does_not_need_the_pooler_it_never_reads(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    stripped = tmp_path / "no-pooler"
    shutil.copytree(SENTIMENT, stripped)
    weights = load_file(str(stripped / "model.safetensors"))
    assert any("pooler" in k for k in weights)
    save_file({k: v for k, v in weights.items() if "pooler" not in k}, str(stripped / "model.safetensors"))
    body = (
        'model enc: encoder = "organism:sentiment"\nmodel bare: encoder = "no-pooler"\n'
        'verify same {\n  for x in ["The food was great.", "The film was awful."]\n'
        "  expect cosine(enc.embed(x), bare.embed(x)) >= 0.999999\n}\n"
    )
    out = cli("check", spec(tmp_path, body), "--no-cache", "-q", cwd=tmp_path, code=0)
    assert "1 holds" in out


def test_a_checkpoint_has_a_fingerprint_per_kind_whatever_ran_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memo of fingerprints is keyed by kind too: the classifier and the encoder read
    from one checkpoint hold other tensors, so their fingerprints differ."""
    claims = {
        "classifier": 'verify v {\n  for x in ["The food was great."]\n  expect m.prob(x, "positive") > 0.5\n}\n',
        "encoder": 'verify v {\n  for x in ["The food was great."]\n  expect norm(m.embed(x)) > 0.001\n}\n',
    }

    def fingerprint(kind: str, cache: str) -> str:
        monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path / cache))
        spec(tmp_path, f'model m: {kind} = "organism:sentiment"\n' + claims[kind])
        cli("check", "s.msl", "--no-cache", "-q", "-o", f"{kind}.json", cwd=tmp_path, code=0)
        (model,) = json.loads((tmp_path / f"{kind}.json").read_text())["findings"][0]["models"]
        return str(model["fingerprint"])

    # the truth: each kind alone, in a cache of its own
    truth = {kind: fingerprint(kind, f"alone-{kind}") for kind in ("classifier", "encoder")}
    assert truth["classifier"] != truth["encoder"]
    for kind in ("classifier", "encoder"):  # the classifier's fingerprint is memoised first
        assert fingerprint(kind, "shared") == truth[kind], kind
