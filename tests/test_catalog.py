"""The SQLite catalogue: storing, querying, locating it, concurrent writers, and its CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import findings_samples as samples
import pytest
from click.testing import CliRunner

from msl.catalog import DEFAULT_PATH, ENV_VAR, Catalog, catalog_path
from msl.cli import cli
from msl.errors import UsageError
from msl.findings import Finding, FindingsDocument, Verdict

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    with Catalog(tmp_path / "cat.sqlite") as catalog:
        catalog.add(samples.sample_document())
        yield catalog


def test_add_is_idempotent_because_ids_are_content_hashes(cat: Catalog) -> None:
    again = cat.add(samples.sample_document())
    assert (again.added, again.already_present) == (0, 7)
    assert cat.count() == 7


def test_list_is_newest_first_and_show_round_trips(cat: Catalog) -> None:
    entries = cat.latest()
    assert len(entries) == 7
    assert [e.started_at for e in entries] == sorted((e.started_at for e in entries), reverse=True)
    for f in samples.all_findings():
        assert cat.show(f.id) == f
    assert cat.show(samples.violated().short_id) == samples.violated()
    assert len(cat.latest(limit=2)) == 2


def test_show_rejects_unknown_ambiguous_and_malformed_ids(cat: Catalog) -> None:
    with pytest.raises(UsageError, match="no finding"):
        cat.show("sha256:" + "0" * 64)
    with pytest.raises(UsageError, match="not a finding id"):
        cat.show("xyz")
    with pytest.raises(UsageError, match="not a finding id"):
        cat.show("abc")  # too short to be safe
    # Two ids sharing a prefix are ambiguous (ids set by hand: the catalogue stores what it is given).
    twins = [samples.holds().model_copy(update={"id": f"sha256:abcdef{d * 58}"}) for d in "01"]
    cat.add(twins)
    with pytest.raises(UsageError, match="several"):
        cat.show("abcdef")
    assert cat.show("sha256:abcdef0").id == twins[0].id


def test_search_filters(cat: Catalog) -> None:
    def names(**filters: object) -> set[str]:
        return {e.claim for e in cat.search(**filters)}  # type: ignore[arg-type]

    assert names(model="acasxu_1_1.onnx") == {"clear_of_conflict", "bounded_advisory"}
    assert names(model=samples.FP_NET) == {"clear_of_conflict", "bounded_advisory"}
    assert names(model=samples.FP_NET[:15]) == {"clear_of_conflict", "bounded_advisory"}
    assert names(model="sha256:bbb") == set()  # prefixes need 8 hex digits
    assert names(kinds=["explore"]) == {"probe_sentiment", "sentiment_decodable"}
    assert names(verdicts=[Verdict.VIOLATED, "refuted"]) == {"name_swap_invariance", "clear_of_conflict"}
    assert names(tags=["fairness", "probe"]) == {"name_swap_invariance", "sentiment_decodable"}
    assert names(claim="capitals_answered") == {"capitals_answered"}
    assert names(since=datetime(2025, 3, 2)) == {"clear_of_conflict", "bounded_advisory"}
    assert len(names(until=datetime(2025, 3, 2, tzinfo=UTC))) == 5
    assert names(model="smollm2-135m", verdicts=["holds"], kinds=["verify"]) == {"capitals_answered"}
    assert names(model="no-such-model") == set()


def test_models_and_datasets_are_recorded(cat: Catalog) -> None:
    assert {(m.fingerprint, m.ref, m.kind) for m in cat.models()} == {
        (samples.FP_LM, "smollm2-135m", "causal_lm"),
        (samples.FP_NET, "acasxu_1_1.onnx", "network"),
    }
    assert [d.hash for d in cat.datasets()] == [samples.DATA]


def test_catalogue_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert catalog_path() == DEFAULT_PATH == Path(".msl/catalog.sqlite")
    with Catalog() as default:
        default.add([samples.holds()])
    assert (tmp_path / ".msl" / "catalog.sqlite").exists()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.sqlite"))
    assert catalog_path() == tmp_path / "env.sqlite"
    assert catalog_path(tmp_path / "opt.sqlite") == tmp_path / "opt.sqlite"


def test_a_file_that_is_not_a_catalogue_is_a_usage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageError, match="cannot use catalogue"):
        Catalog(bogus)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot open catalogue"):
        Catalog(blocker / "cat.sqlite")


def test_a_hand_edited_catalogue_is_a_usage_error(cat: Catalog, tmp_path: Path) -> None:
    with sqlite3.connect(cat.path) as raw:
        raw.execute("UPDATE findings SET verdict = 'passed' WHERE claim_name = 'capitals_answered'")
        raw.execute("UPDATE models SET first_seen = 'yesterday'")
        raw.execute("UPDATE findings SET json = '{}' WHERE claim_name = 'bounded_advisory'")
    with pytest.raises(UsageError, match="damaged"):
        cat.latest()
    with pytest.raises(UsageError, match="damaged"):
        cat.models()
    with pytest.raises(UsageError, match="no longer valid"):
        cat.show(samples.proved().id)


def test_a_failed_add_stores_nothing(cat: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(Exception):
        pass

    original = Catalog._add_one

    def failing(db: sqlite3.Connection, f: Finding, now: str) -> int:
        if f.claim.name == "capitals_answered":
            raise Boom
        return original(db, f, now)

    monkeypatch.setattr(Catalog, "_add_one", staticmethod(failing))
    before = cat.count()
    with pytest.raises(Boom):
        cat.add([samples.violated(claim=samples.claim("new", 1)), samples.holds()])
    assert cat.count() == before  # "new" was inserted first, and rolled back


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import findings_samples as samples
from msl.catalog import Catalog
from msl.findings import FindingsDocument
who, path, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
docs = [FindingsDocument.of([samples.violated(claim=samples.claim(f"{{who}}-{{i}}-{{j}}", 1)) for j in range(5)])
        for i in range(60)]
while not go.exists():
    time.sleep(0.01)
for doc in docs:
    with Catalog(path) as cat:
        assert cat.add(doc).added == 5
    time.sleep(0.005)  # let the other writer in, so that the two really interleave
print("done", who)
"""


def test_two_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    go = tmp_path / "go"
    script = WRITER.format(tests=str(ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, who, str(db), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.startswith("done")
    with Catalog(db) as cat:
        assert cat.count() == 600
        names = {e.claim for e in cat.latest(limit=None)}
    assert names == {f"{who}-{i}-{j}" for who in "ab" for i in range(60) for j in range(5)}
    # The two writers really ran at the same time: their commits interleave.
    with sqlite3.connect(db) as raw:
        order = [name[0] for (name,) in raw.execute("SELECT claim_name FROM findings ORDER BY recorded_at")]
    switches = sum(1 for x, y in zip(order, order[1:], strict=False) if x != y)
    assert switches >= 2, "the writers did not overlap; the test proved nothing"


def test_a_writer_waits_for_another_and_gives_up_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    Catalog(path).close()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Catalog(path) as other, other._write():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        with Catalog(path, timeout_s=0.2) as impatient, pytest.raises(UsageError, match="locked"):
            impatient.add([samples.holds()])
        threading.Timer(0.3, release.set).start()
        started = time.perf_counter()
        with Catalog(path) as patient:
            assert patient.add([samples.holds()]).added == 1
        assert time.perf_counter() - started >= 0.2
    finally:
        release.set()
        holder.join()


# ── CLI ────────────────────────────────────────────────────────────────────────────────


def test_catalog_cli(tmp_path: Path) -> None:
    findings = tmp_path / "findings.json"
    findings.write_text(samples.sample_document().model_dump_json())
    db = tmp_path / "cli.sqlite"
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["catalog", *args, "--catalog", str(db)])
        assert result.exit_code == 0, result.output
        return result.output

    assert "added 7 findings (0 already present)" in run("add", str(findings))
    listing = run("list")
    for f in samples.all_findings():
        assert f.short_id in listing
    found = run("search", "--verdict", "violated", "--verdict", "refuted", "--until", "2025-03-01")
    assert samples.violated().short_id in found and samples.refuted().short_id not in found
    found = run("search", "--since", "2025-03-02", "--kind", "verify")
    assert samples.refuted().short_id in found and samples.violated().short_id not in found
    shown = run("show", samples.violated().short_id)
    assert samples.violated().id in shown and "12/200 violations" in shown
    as_json = json.loads(run("show", samples.violated().short_id, "--json"))
    assert as_json["id"] == samples.violated().id
    assert samples.FP_NET in run("models")
    assert samples.DATA in run("datasets")


def test_catalog_cli_uses_the_environment_and_reports_errors(tmp_path: Path) -> None:
    findings = tmp_path / "findings.json"
    findings.write_text(FindingsDocument.of([samples.holds()]).model_dump_json())
    runner = CliRunner(env={ENV_VAR: str(tmp_path / "env.sqlite")})
    assert runner.invoke(cli, ["catalog", "add", str(findings)]).exit_code == 0
    assert (tmp_path / "env.sqlite").exists()
    missing = runner.invoke(cli, ["catalog", "show", "abcdef"])
    assert missing.exit_code == 2 and "no finding" in missing.output
    bad_date = runner.invoke(cli, ["catalog", "search", "--since", "yesterday"])
    assert bad_date.exit_code == 2 and "ISO date" in bad_date.output
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(cli, ["catalog", "add", str(garbage)])
    assert result.exit_code == 2 and "Traceback" not in result.output
