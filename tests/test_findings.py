"""The finding model: round trips, content-addressed ids, the honesty contract, exit
codes, baselines, and hostile findings files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import findings_samples as samples
import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from msl.baseline import Baseline, BaselineEntry, apply_baseline, load_baseline, update_baseline, write_baseline
from msl.cli import cli
from msl.errors import ExitCode, UsageError
from msl.findings import (
    Finding,
    FindingsDocument,
    Verdict,
    collect_provenance,
    exit_code,
    finding_id,
    findings_json_schema,
    load_findings,
    make_finding,
    parse_findings,
)

SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(findings_json_schema())


# ── Round trips and the schema ─────────────────────────────────────────────────────────


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(samples.findings(), max_size=3))
def test_findings_round_trip_through_json(findings: list[Finding]) -> None:
    doc = FindingsDocument.of(findings)
    text = doc.model_dump_json()
    SCHEMA_VALIDATOR.validate(json.loads(text))
    loaded = parse_findings(text.encode())
    assert loaded == doc
    assert [f.id for f in loaded.findings] == [finding_id(f) for f in findings]


def test_schema_is_a_valid_json_schema_and_accepts_the_sample() -> None:
    schema = findings_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    SCHEMA_VALIDATOR.validate(json.loads(samples.sample_document().model_dump_json()))
    bad = json.loads(samples.sample_document().model_dump_json())
    bad["findings"][0]["verdict"] = "passed"
    assert not SCHEMA_VALIDATOR.is_valid(bad)


@pytest.mark.parametrize(
    ("index", "edit"),
    [
        (0, {"statistics": None}),  # holds without statistics
        (1, {"statistics": None, "counterexamples": []}),  # violated without evidence
        (2, {"counterexamples": []}),  # refuted without a counterexample
        (3, {"proof": None}),  # proved without a proof
        (5, {"error": None}),  # error without the error
        (0, {"error": {"message": "x"}}),  # an error on a holds finding
        (0, {"accepted": True}),  # accepting a pass
    ],
)
def test_schema_states_the_honesty_contract_too(index: int, edit: dict[str, Any]) -> None:
    """What the model refuses, the published schema refuses: other tools can rely on it."""
    doc = json.loads(samples.sample_document().model_dump_json())
    assert SCHEMA_VALIDATOR.is_valid(doc)
    doc["findings"][index].update(edit)
    assert not SCHEMA_VALIDATOR.is_valid(doc)
    with pytest.raises(ValidationError):
        Finding.model_validate(doc["findings"][index])


def test_msl_schema_prints_the_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == findings_json_schema()


def test_brief_minimum_shape_is_present() -> None:
    """The keys the brief promises in `msl check --format json`."""
    doc = json.loads(samples.sample_document().model_dump_json())
    assert {"msl_version", "findings"} <= doc.keys()
    for f in doc["findings"]:
        assert {
            "id",
            "claim",
            "verdict",
            "method",
            "models",
            "statistics",
            "counterexamples",
            "proof",
            "provenance",
            "duration_s",
        } <= f.keys()
        assert {"name", "kind", "file", "line", "text"} <= f["claim"].keys()
        for m in f["models"]:
            assert {"role", "ref", "fingerprint"} <= m.keys()


# ── Content-addressed ids ──────────────────────────────────────────────────────────────


def _violated_fields() -> dict[str, Any]:
    f = samples.violated()
    return f.model_dump(exclude={"id"})


def _with(fields: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``fields`` with the dotted ``path`` set to ``value``."""
    out = json.loads(json.dumps(fields, default=str))
    out["provenance"]["started_at"] = fields["provenance"]["started_at"]
    target = out
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    return out


def test_equal_inputs_give_equal_ids() -> None:
    assert samples.violated().id == samples.violated().id
    assert make_finding(**_violated_fields()).id == samples.violated().id
    assert samples.violated().id.startswith("sha256:") and len(samples.violated().id) == 71


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("claim.name", "other_claim"),
        ("claim.kind", "steer"),
        ("claim.file", "specs/other.msl"),
        ("claim.text", "verify changed { }"),
        ("models.0.fingerprint", "sha256:" + "c" * 64),
        ("models.0.role", "base"),
        ("provenance.data_hash", "sha256:" + "e" * 64),
        ("provenance.seeds", {"run": 8}),
        ("verdict", "holds"),
        ("method", "property-based"),
        ("statistics.violations", 13),
        ("statistics.values", {"mean_effect": 0.41}),
        ("counterexamples.0.input", "Mary is a doctor"),
        ("counterexamples.0.values", {"delta": 1.5, "top_token": " he", "flagged": True}),
        ("counterexamples.0.values", {"delta": 1.5}),
        ("counterexamples.0.edit", "swap 'Jim' → 'Mary'"),
        ("counterexamples.0.replayed", False),
        ("tables", [{"title": "t", "columns": ["a"], "rows": [[1]]}]),
        ("series", [{"name": "s", "x_label": "x", "y_label": "y", "points": [[0, 1]]}]),
    ],
)
def test_any_evidence_change_changes_the_id(path: str, value: Any) -> None:
    base = _violated_fields()
    changed = make_finding(**_with(base, path, value))
    assert changed.id != samples.violated().id


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("duration_s", 99.0),
        ("provenance.started_at", samples.START + timedelta(days=30)),
        ("provenance.hostname", "lab-gpu-7"),
        ("provenance.libraries", {"torch": "2.99"}),
        ("provenance.device", "cuda:0"),
        ("provenance.dtype", "bfloat16"),
        ("provenance.msl_version", "9.9.9"),
        ("provenance.spec_hash", "sha256:" + "9" * 64),
        ("claim.line", 99),
        ("claim.description", "reworded"),
        ("message", "a note for people"),
        ("accepted", True),
    ],
)
def test_circumstances_do_not_change_the_id(path: str, value: Any) -> None:
    changed = make_finding(**_with(_violated_fields(), path, value))
    assert changed.id == samples.violated().id


@given(
    mean=st.floats(allow_nan=False, allow_infinity=False),
    delta=st.floats(allow_nan=False, allow_infinity=False),
    interval=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
)
def test_no_float_is_part_of_the_id(mean: float, delta: float, interval: list[float]) -> None:
    """Batch composition, BLAS kernels and CPUs move float32 results in their last bits
    (measured on the steer spec: 1.1322799 against 1.1322804), and rounding to any number of
    digits still flips some values: an id must not depend on any float, so that the same
    claim on the same models, data and seed has the same id on every machine."""
    base = _violated_fields()
    changed = _with(base, "statistics.values", {"mean_delta": mean})
    changed["statistics"]["interval"] = interval
    changed["statistics"]["rate"] = interval[0]
    changed["counterexamples"][0]["values"]["delta"] = delta
    finding = make_finding(**changed)
    assert finding.id == samples.violated().id
    assert finding.statistics.values["mean_delta"] == mean  # the finding keeps every digit


def test_a_computed_vector_counts_by_its_label_not_its_bytes() -> None:
    """A steering vector computed in the run is a model output (its bytes move with batching:
    8 of the steer spec's ids changed between a cold and a warm run before); its label is part
    of the id, its digest is not. Pinned vectors enter the data hash instead (run.py)."""
    one = samples.violated(vectors={"love": "sha256:" + "1" * 64})
    other = samples.violated(vectors={"love": "sha256:" + "2" * 64})
    renamed = samples.violated(vectors={"hate": "sha256:" + "1" * 64})
    assert one.id == other.id != renamed.id


def test_six_digit_rounding_would_have_flipped_the_id() -> None:
    """The regression: two batchings of one steer query gave 1.13228499 and 1.13228501, which
    round to different 6-digit values; the ids are equal now."""
    base = _violated_fields()
    one = make_finding(**_with(base, "statistics.values", {"mean_delta": 1.13228499}))
    other = make_finding(**_with(base, "statistics.values", {"mean_delta": 1.13228501}))
    assert f"{1.13228499:.6g}" != f"{1.13228501:.6g}"
    assert one.id == other.id


def test_proof_time_sizes_and_certificate_are_not_part_of_the_id_but_its_answer_is() -> None:
    fields = samples.proved().model_dump(exclude={"id"})
    faster = make_finding(**{**fields, "proof": {**fields["proof"], "time_s": 0.3}})
    bigger = make_finding(**{**fields, "proof": {**fields["proof"], "constraints": 9999, "branches": 7}})
    other = make_finding(**{**fields, "proof": {**fields["proof"], "solver": "another solver"}})
    assert faster.id == bigger.id == samples.proved().id
    assert other.id != samples.proved().id


def test_model_order_does_not_change_the_id() -> None:
    models = samples.LM + samples.NET
    one = samples.violated(models=models)
    other = samples.violated(models=list(reversed(models)))
    assert one.id == other.id


def test_make_finding_refuses_an_explicit_id() -> None:
    with pytest.raises(TypeError):
        make_finding(id="sha256:" + "0" * 64, **_violated_fields())


# ── The honesty contract ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("verdict", "missing"),
    [
        ("proved", "proof"),
        ("refuted", "counterexamples"),
        ("holds", "statistics"),
        ("violated", "statistics and counterexamples"),
        ("error", "error"),
    ],
)
def test_no_verdict_without_its_evidence(verdict: str, missing: str) -> None:
    with pytest.raises(ValidationError):
        make_finding(
            claim=samples.claim("c", 1),
            verdict=verdict,
            method="statistical",
            provenance=samples.provenance(),
            duration_s=0.0,
        )


def test_only_error_verdicts_carry_errors_and_only_failures_are_accepted() -> None:
    fields = samples.holds().model_dump(exclude={"id"})
    with pytest.raises(ValidationError, match="error verdict"):
        make_finding(**{**fields, "error": {"message": "boom"}})
    with pytest.raises(ValidationError, match="accepted"):
        make_finding(**{**fields, "accepted": True})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_never_evidence(bad: float) -> None:
    with pytest.raises(ValidationError):
        samples.violated(statistics={"n": 10, "violations": 1, "values": {"mean": bad}})
    with pytest.raises(ValidationError):
        samples.violated(counterexamples=[{"input": [0.0, bad]}])


def test_statistics_are_consistent() -> None:
    with pytest.raises(ValidationError, match="exceed n"):
        samples.violated(statistics={"n": 10, "violations": 11})
    with pytest.raises(ValidationError, match="interval"):
        samples.violated(statistics={"n": 10, "violations": 1, "interval": (0.5, 0.1)})
    with pytest.raises(ValidationError):
        samples.violated(statistics={"n": 10, "violations": 1, "rate": 1.5})


def test_fingerprints_must_be_sha256() -> None:
    with pytest.raises(ValidationError):
        samples.violated(models=[{"role": "lm", "ref": "x", "fingerprint": "md5:abc"}])


def test_collect_provenance_records_versions_but_not_the_host_by_default() -> None:
    p = collect_provenance(seeds={"run": 3}, device="cpu")
    assert p.msl_version and "pydantic" in p.libraries and p.hostname is None
    assert p.started_at.tzinfo is not None
    assert collect_provenance(include_hostname=True).hostname


# ── Exit codes ─────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("builders", "strict", "code"),
    [
        ([], False, ExitCode.OK),
        ([samples.holds, samples.proved], False, ExitCode.OK),
        ([samples.holds, samples.violated], False, ExitCode.FAILED),
        ([samples.refuted], False, ExitCode.FAILED),
        ([samples.holds, samples.error], False, ExitCode.RUNTIME),
        ([samples.violated, samples.error], False, ExitCode.FAILED),  # 1 beats 3
        ([samples.inconclusive], False, ExitCode.OK),
        ([samples.inconclusive], True, ExitCode.FAILED),
        ([samples.inconclusive, samples.error], True, ExitCode.FAILED),
    ],
)
def test_exit_code(builders: list[Any], strict: bool, code: ExitCode) -> None:
    assert exit_code([b() for b in builders], strict=strict) == code


def test_accepted_violations_do_not_fail_the_run() -> None:
    doc = FindingsDocument.of([samples.holds(), samples.violated(), samples.inconclusive()])
    accepted = apply_baseline(doc, update_baseline(doc, strict=True))
    assert exit_code(accepted, strict=True) == ExitCode.OK
    with_error = FindingsDocument.of([*accepted.findings, samples.error()])
    assert exit_code(with_error) == ExitCode.RUNTIME


# ── Baselines ──────────────────────────────────────────────────────────────────────────


def test_baseline_marks_listed_failures_and_never_errors(tmp_path: Path) -> None:
    doc = samples.sample_document()
    baseline = update_baseline(doc, reason="tracked in #12")
    assert {e.claim for e in baseline.accepted} == {"name_swap_invariance", "clear_of_conflict"}
    assert all(e.reason == "tracked in #12" for e in baseline.accepted)
    path = tmp_path / "msl-baseline.json"
    write_baseline(baseline, path)
    assert load_baseline(path) == baseline
    # An entry for an error finding (hand-written) is ignored: errors are never accepted.
    err = samples.error()
    sneaky = Baseline(
        accepted=[*baseline.accepted, BaselineEntry(id=err.id, claim="x", file="f", verdict=Verdict.ERROR)]
    )
    marked = apply_baseline(doc, sneaky)
    assert {f.claim.name for f in marked.findings if f.accepted} == {"name_swap_invariance", "clear_of_conflict"}
    assert marked.summary.accepted == 2 and exit_code(marked) == ExitCode.RUNTIME


def test_baseline_is_by_evidence_a_changed_violation_fails_again() -> None:
    doc = FindingsDocument.of([samples.violated()])
    baseline = update_baseline(doc)
    worse = samples.violated(statistics={"n": 200, "violations": 30, "rate": 0.15})
    assert exit_code(apply_baseline(FindingsDocument.of([worse]), baseline)) == ExitCode.FAILED


def test_update_keeps_reasons_and_prunes_only_when_asked() -> None:
    first = update_baseline(FindingsDocument.of([samples.violated()]), reason="old reason")
    doc = FindingsDocument.of([samples.refuted()])
    kept = update_baseline(doc, first, reason="new reason")
    assert {(e.claim, e.reason) for e in kept.accepted} == {
        ("name_swap_invariance", "old reason"),
        ("clear_of_conflict", "new reason"),
    }
    pruned = update_baseline(doc, kept, prune=True)
    assert [e.claim for e in pruned.accepted] == ["clear_of_conflict"]


def test_baseline_cli_writes_and_updates(tmp_path: Path) -> None:
    findings = tmp_path / "f.json"
    findings.write_text(samples.sample_document().model_dump_json())
    out = tmp_path / "bl.json"
    runner = CliRunner()
    result = runner.invoke(cli, ["baseline", str(findings), "-o", str(out), "--reason", "known"])
    assert result.exit_code == 0, result.output
    assert "2 accepted findings (2 new)" in result.output
    result = runner.invoke(cli, ["baseline", str(findings), "-o", str(out)])
    assert "(0 new)" in result.output
    assert {e.reason for e in load_baseline(out).accepted} == {"known"}


@pytest.mark.parametrize(
    "content",
    [
        b'{"msl_baseline": 1, "accepted": [{"id": "nope", "claim": "c", "file": "f", "verdict": "violated"}]}',
        b'{"msl_baseline": 2, "accepted": []}',
        b'{"msl_baseline": 1, "accepted": [], "extra": 1}',
        b"[]",
        b"\xff\xfe",
    ],
)
def test_hostile_baselines_are_usage_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bl.json"
    path.write_bytes(content)
    with pytest.raises(UsageError):
        load_baseline(path)


# ── Hostile findings files ─────────────────────────────────────────────────────────────


def _sample_json() -> dict[str, Any]:
    return json.loads(samples.sample_document().model_dump_json())


def _mutated(edit: Any) -> bytes:
    doc = _sample_json()
    edit(doc)
    return json.dumps(doc).encode()


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "garbage": bytes(range(256)) * 4,
    "not utf-8": b'{"msl_version": "\xff"}',
    "utf-16": '{"a": 1}'.encode("utf-16"),
    "truncated": samples.sample_document().model_dump_json().encode()[:500],
    "a list": b"[1, 2, 3]",
    "a string": b'"findings"',
    "nan literal": b'{"msl_version": "0.1", "findings": [], "summary": {"total": NaN}}',
    "infinity literal": b'{"x": Infinity}',
    "overflowing number": b'{"x": 1e999}',
    "huge integer": b'{"x": ' + b"9" * 5000 + b"}",
    "duplicate keys": b'{"msl_version": "0.1", "msl_version": "0.2", "findings": []}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "moderate nesting": b'{"x": ' + b"[" * 200 + b"]" * 200 + b"}",
    "lone surrogate": b'{"msl_version": "\\ud800", "findings": []}',
    "huge string": b'{"msl_version": "' + b"a" * 2_000_000 + b'", "findings": []}',
    "nan in statistics": _mutated(lambda d: d["findings"][1]["statistics"]["values"].update(mean_delta="NaN")),
    "string for a number": _mutated(lambda d: d["findings"][0]["claim"].update(line="3")),
    "wrong verdict": _mutated(lambda d: d["findings"][0].update(verdict="passed")),
    "extra field": _mutated(lambda d: d["findings"][0].update(trusted=True)),
    "extra top-level field": _mutated(lambda d: d.update(run_this="import os")),
    "missing provenance": _mutated(lambda d: d["findings"][0].pop("provenance")),
    "summary mismatch": _mutated(lambda d: d["summary"].update(violated=0)),
    "missing summary": _mutated(lambda d: d.pop("summary")),
    "tampered evidence": _mutated(lambda d: d["findings"][1]["statistics"].update(violations=0)),
    "tampered verdict": _mutated(lambda d: d["findings"][1].update(verdict="holds")),
    "holds without evidence": _mutated(lambda d: d["findings"][0].update(statistics=None)),
    "bad fingerprint": _mutated(lambda d: d["findings"][0]["models"][0].update(fingerprint="sha256:xyz")),
    "huge claim name": _mutated(lambda d: d["findings"][0]["claim"].update(name="n" * 10_000)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_findings_files_are_clean_usage_errors(tmp_path: Path, name: str) -> None:
    path = tmp_path / "findings.json"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(UsageError) as info:
        load_findings(path)
    rendered = info.value.render()
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value.message) and len(rendered) < 1000
    assert "Traceback" not in rendered


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # sparse: 100 MB of zeros
    with pytest.raises(UsageError, match="larger than the limit"):
        load_findings(path)
    small = tmp_path / "small.json"
    small.write_text(samples.sample_document().model_dump_json())
    with pytest.raises(UsageError, match="larger than the limit"):
        load_findings(small, max_bytes=1000)


def test_unreadable_paths_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_findings(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="directory"):
        load_findings(tmp_path)


def test_endless_device_is_refused() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    with pytest.raises(UsageError, match="larger than the limit"):
        load_findings("/dev/zero", max_bytes=1024)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_loaded_or_refused_cleanly(data: bytes) -> None:
    try:
        parse_findings(data)
    except UsageError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=20,
    )
)
def test_arbitrary_json_values_are_refused_cleanly(value: Any) -> None:
    with pytest.raises(UsageError):
        parse_findings(json.dumps(value).encode())


def test_a_valid_file_loads_and_ids_can_be_left_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "findings.json"
    path.write_bytes(HOSTILE["tampered evidence"])
    with pytest.raises(UsageError, match="does not match"):
        load_findings(path)
    loaded = load_findings(path, verify_ids=False)
    assert loaded.findings[1].statistics is not None and loaded.findings[1].statistics.violations == 0
    path.write_text(samples.sample_document().model_dump_json())
    assert load_findings(path) == samples.sample_document()
    path.write_bytes(b"\xef\xbb\xbf" + samples.sample_document().model_dump_json().encode())  # a BOM is fine
    assert load_findings(path) == samples.sample_document()


def test_cli_reports_hostile_files_with_exit_code_2_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "findings.json"
    path.write_bytes(HOSTILE["deep nesting"])
    result = CliRunner().invoke(cli, ["report", str(path)])
    assert result.exit_code == 2
    assert "nested too deeply" in result.output
    assert "Traceback" not in result.output


def test_started_at_must_carry_a_time_zone() -> None:
    with pytest.raises(ValidationError):
        samples.violated(provenance=samples.provenance(started_at=datetime(2025, 1, 1)))
    assert samples.violated(provenance=samples.provenance(started_at=datetime(2025, 1, 1, tzinfo=UTC)))
