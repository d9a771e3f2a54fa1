"""Hostile folders, tiny inputs that cost much, and faults of the disk (issue 13).

Each case goes through the real CLI (a subprocess) or the pytest plugin and checks the
contract: the exit code, a located message, no traceback, no "internal error", within
seconds — and that nothing from outside the folder being checked is ever printed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from lang_helpers import LOCATION, run_cli

from msl.check import MAX_MEASURE_EXPANSION
from msl.cli import cli
from msl.evaluate import MAX_EVALUATIONS
from msl.values import MAX_ENUMERATION

pytest_plugins = ["pytester"]

#: Seconds one CLI run may take, start-up included (the machine is shared).
BOUND_S = 30.0

SECRET = "hunter2-CI-TOKEN-5f3a9c"


def answer(*args: str, cwd: Path, code: int, env: dict[str, str] | None = None) -> str:
    """Run the CLI and check the contract; the combined output."""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        result, elapsed = run_cli(*args, cwd=cwd, timeout=120)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    output = result.stdout + result.stderr
    assert result.returncode == code, (result.returncode, output[-3000:])
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    assert elapsed < BOUND_S, f"{elapsed:.1f}s"
    for line in output.splitlines():
        if ": error: " in line or ": warning: " in line:
            assert LOCATION.match(line), line
    return output


# ── Links and paths that lead outside the folder being checked ───────────────────────────


def _hostile_folder(tmp_path: Path) -> Path:
    """specs/ with links to the process environment and to a secret file beside it."""
    outside = tmp_path / "secret.env"
    outside.write_text(f"TOKEN={SECRET}\nmodel x: y\n", encoding="utf-8")
    specs = tmp_path / "specs"
    specs.mkdir()
    os.symlink("/proc/self/environ", specs / "notes.msl")
    os.symlink(outside, specs / "other.msl")
    (specs / "fine.msl").write_text('msl 1.0\nlet a = 1\nverify c { expect a > 0 }\n', encoding="utf-8")
    return specs


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="no /proc")
@pytest.mark.parametrize("command", ["check", "lint"])
def test_links_out_of_the_folder_are_not_read(tmp_path: Path, command: str) -> None:
    _hostile_folder(tmp_path)
    output = answer(command, "specs/", cwd=tmp_path, code=2, env={"MSL_TEST_SECRET": SECRET})
    assert SECRET not in output and "MSL_TEST_SECRET" not in output
    for name in ("notes.msl", "other.msl"):
        # named as the user reached it, never where the link leads
        assert f"specs/{name}:1:1: error: this file is not read: it leads outside the folder being checked" in output
    assert "secret.env" not in output and "environ" not in output


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="no /proc")
def test_a_named_link_is_refused_too(tmp_path: Path) -> None:
    """`msl check FILE`: the folder is the file's own."""
    _hostile_folder(tmp_path)
    output = answer("check", "specs/notes.msl", cwd=tmp_path, code=2, env={"MSL_TEST_SECRET": SECRET})
    assert SECRET not in output and "specs/notes.msl:1:1: error: this file is not read" in output


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="no /proc")
def test_the_pytest_plugin_does_not_print_a_linked_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSL_TEST_SECRET", SECRET)
    _hostile_folder(pytester.path)
    result = pytester.runpytest_subprocess("-p", "no:msl", "-p", "msl.pytest_plugin", "-p", "no:cacheprovider", "specs")
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=2, passed=1)
    assert SECRET not in output and "MSL_TEST_SECRET" not in output
    assert "specs/notes.msl:1:1: error: this file is not read" in output
    assert "Traceback" not in output


def test_a_link_inside_the_folder_is_followed(tmp_path: Path) -> None:
    """The rule is where the link leads, not that it is a link."""
    specs = tmp_path / "specs"
    (specs / "real").mkdir(parents=True)
    (specs / "real" / "spec.msl").write_text('msl 1.0\nlet a = 1\nverify c { expect a > 0 }\n', encoding="utf-8")
    os.symlink(specs / "real" / "spec.msl", specs / "alias.msl")
    output = answer("lint", "specs/", cwd=tmp_path, code=0)
    assert "2 spec(s) checked: 0 error(s)" in output


def test_imports_and_preserves_stay_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "x.msl").write_text(f"msl 1.0\n# {SECRET}\nmodel lm: causal_lm\nlet y = 1\n", encoding="utf-8")
    specs = tmp_path / "specs"
    (specs / "lib").mkdir(parents=True)
    (specs / "lib" / "shared.msl").write_text("msl 1.0\nlet s = 1\n", encoding="utf-8")
    (specs / "lib" / "up.msl").write_text('msl 1.0\nimport "../../x.msl"\n', encoding="utf-8")
    os.symlink(tmp_path / "x.msl", specs / "lib" / "alias.msl.txt")
    (specs / "a.msl").write_text(
        'msl 1.0\nimport "../x.msl"\nimport "lib/shared.msl"\nverify c { expect s > 0 }\n', encoding="utf-8"
    )
    (specs / "b.msl").write_text('msl 1.0\nimport "lib/up.msl"\n', encoding="utf-8")
    (specs / "c.msl").write_text(
        'msl 1.0\nmodel lm: causal_lm\nrefine r {\n  base = lm\n  refined = lm\n  preserves "../x.msl" role lm\n}\n',
        encoding="utf-8",
    )
    output = answer("lint", "specs/a.msl", "specs/b.msl", "specs/c.msl", cwd=tmp_path, code=2)
    assert "specs/a.msl:2:1: error: this import is not read: it leads outside the folder being checked" in output
    assert "specs/lib/up.msl:2:1: error: this import is not read" in output
    assert "specs/c.msl:6:3: error: this spec is not read: it leads outside the folder being checked" in output
    assert SECRET not in output


def test_the_folder_is_the_one_named(tmp_path: Path) -> None:
    """Checked as part of specs/, a file may import from a sibling folder of specs/;
    named on its own, its folder is its own and the same import is refused."""
    specs = tmp_path / "specs"
    (specs / "lib").mkdir(parents=True)
    (specs / "sub").mkdir()
    (specs / "lib" / "shared.msl").write_text("msl 1.0\nlet s = 1\n", encoding="utf-8")
    (specs / "sub" / "d.msl").write_text(
        'msl 1.0\nimport "../lib/shared.msl"\nverify c { expect s > 0 }\n', encoding="utf-8"
    )
    assert "2 spec(s) checked: 0 error(s)" in answer("lint", "specs/", cwd=tmp_path, code=0)
    output = answer("lint", "specs/sub/d.msl", cwd=tmp_path, code=2)
    assert "specs/sub/d.msl:2:1: error: this import is not read: it leads outside the folder being checked" in output


def test_a_file_that_is_not_a_spec_is_quoted_no_further_than_its_start(tmp_path: Path) -> None:
    value = "A" * 20 + SECRET
    (tmp_path / "notes.msl").write_text(f"KEY={value}\nOTHER=model lm: causal_lm\n", encoding="utf-8")
    (tmp_path / "blob.msl").write_bytes(b"\x00\x01\xff" + SECRET.encode() + b"\n\xfe" + SECRET.encode())
    output = answer("lint", ".", cwd=tmp_path, code=2)
    assert "notes.msl:1:1: error: a spec starts with its language version" in output
    assert "blob.msl:1:3: error: file is not valid UTF-8 text (byte 0xff)" in output
    assert SECRET not in output and "OTHER" not in output


# ── Tiny inputs that would cost much ─────────────────────────────────────────────────────


def test_a_huge_range_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """It was a MemoryError ("internal error") after building 10^12 integers."""
    (tmp_path / "s.msl").write_text(
        "msl 1.0\nverify big {\n  for i in range(0, 1000000000000)\n  expect i >= 0\n}\n", encoding="utf-8"
    )
    output = answer("check", "s.msl", cwd=tmp_path, code=2)
    assert (
        f"s.msl:3:18: error: this range has 1,000,000,000,000 numbers; a set has at most {MAX_ENUMERATION:,}" in output
    )


def test_a_huge_range_or_sample_met_at_run_time_is_a_located_error(tmp_path: Path) -> None:
    """Sizes the checker cannot see (a `let`, a fraction) are refused when met, as the
    claim's error; the other claims still get their verdicts."""
    (tmp_path / "s.msl").write_text(
        'msl 1.0\nlet n = 1000000000000\nlet w = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]\n'
        'let big = template("{a}{b}{c}{d}{e}{f}", a: w, b: w, c: w, d: w, e: w, f: w)\n'
        "verify r {\n  for i in range(0, n)\n  expect i >= 0\n}\n"
        "verify s {\n  for t in sample(big, 50%)\n  expect len(t) > 0\n  tolerate 1%\n}\n"
        "verify fine {\n  for i in range(0, 3)\n  expect i >= 0\n}\n",
        encoding="utf-8",
    )
    output = answer("check", "s.msl", "--no-cache", cwd=tmp_path, code=3)
    assert "this range has 1,000,000,000,000 numbers (at s.msl:6:12)" in output.replace(
        "; a set has at most 20,000", ""
    )
    assert f"a sample has at most {MAX_ENUMERATION:,} elements, not 500,000 (at s.msl:10:12)" in output
    assert re.search(r"^\[\d/\d\] fine holds \d+\.\d s$", output, re.M), output  # its progress line


def test_measures_that_double_are_refused(tmp_path: Path) -> None:
    """40 measures each calling the previous twice were 2^40 evaluations: a hang."""
    lines = ["msl 1.0", "measure m0(x) = x + 1"]
    lines += [f"measure m{k}(x) = m{k - 1}(x) + m{k - 1}(x)" for k in range(1, 41)]
    lines += ["verify dbl {", "  for i in [1, 2]", "  expect m40(i) > 0", "}"]
    (tmp_path / "s.msl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = answer("check", "s.msl", cwd=tmp_path, code=2)
    # reported once, at the first measure over the limit (2^14 calls of m0, 5 expressions each)
    assert output.count("error:") == 1
    assert f"s.msl:16:9: error: one call of `m14` evaluates more than {MAX_MEASURE_EXPANSION:,} expressions" in output


def test_a_sample_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.msl").write_text(
        'msl 1.0\nverify c {\n  for t in sample(["a", "b"], 1000000000000)\n  expect len(t) > 0\n  tolerate 1%\n}\n',
        encoding="utf-8",
    )
    output = answer("lint", "s.msl", cwd=tmp_path, code=2)
    assert f"s.msl:3:31: error: a sample has at most {MAX_ENUMERATION:,} elements" in output


# ── Faults: nothing lost ─────────────────────────────────────────────────────────────────

NETWORKS = """msl 1.0
model net: network = "organism:relu-net"
model pruned: network = "organism:relu-net-pruned"
verify a {
  for x in [[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5]]
  expect argmax(net(x)) == 2
}
verify b {
  for x in [[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5]]
  expect argmax(pruned(x)) == 2
}
"""


class _FullDisk:
    """A connection whose writes fail the way SQLite's do on a full disk, after ``ok``
    successful ones: the statement fails and SQLite has rolled the transaction back."""

    def __init__(self, db: sqlite3.Connection, ok: int) -> None:
        self._db, self._ok = db, ok

    def executemany(self, sql: str, rows: object) -> object:
        if self._ok <= 0:
            self._db.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        self._ok -= 1
        return self._db.executemany(sql, rows)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_a_full_disk_costs_the_cache_not_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was `OperationalError: cannot rollback` and no report at all."""
    from msl.cache import ResultCache

    monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.msl").write_text(NETWORKS, encoding="utf-8")
    real = ResultCache._connect
    budget = {"ok": 1}  # the first group's results are written, the second's are not

    def full(self: ResultCache) -> object:
        db = real(self)
        return db if isinstance(db, _FullDisk) else _FullDisk(db, budget["ok"])

    monkeypatch.setattr(ResultCache, "_connect", lambda self: _shared(self, full))
    result = CliRunner().invoke(cli, ["check", "s.msl", "-q", "-o", "out.json"])
    output = result.output
    assert result.exit_code == 0, output
    assert "Traceback" not in output and "internal error" not in output
    assert output.count("cannot be written (database or disk is full); going on without caching") == 1
    findings = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["findings"]
    assert sorted((f["claim"]["name"], f["verdict"]) for f in findings) == [("a", "holds"), ("b", "holds")]


def _shared(cache: object, make: object) -> object:
    """One wrapped connection per cache (as the real one keeps one per thread)."""
    if not hasattr(cache, "_test_db"):
        cache._test_db = make(cache)  # type: ignore[attr-defined, operator]
    return cache._test_db  # type: ignore[attr-defined]


def _damaged_pages(cache: Path, tmp_path: Path) -> bytes:
    """A real cache whose pages after the first (the schema) are overwritten: it opens,
    and the first read finds the damage."""
    answer("check", "s.msl", cwd=tmp_path, code=0, env={"MSL_CACHE_DIR": str(cache)})
    with sqlite3.connect(cache / "results.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray((cache / "results.sqlite").read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)
    return bytes(data)


@pytest.mark.parametrize("damage", ["garbage", "damaged_pages"])
def test_a_damaged_cache_is_set_aside_and_rebuilt(tmp_path: Path, damage: str) -> None:
    """It made every claim `error`, on every run."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "s.msl").write_text(NETWORKS, encoding="utf-8")
    garbage = random.Random(0).randbytes(50_000) if damage == "garbage" else _damaged_pages(cache, tmp_path)
    (cache / "results.sqlite").write_bytes(garbage)
    for run in range(2):
        output = answer("check", "s.msl", "-o", "out.json", cwd=tmp_path, code=0, env={"MSL_CACHE_DIR": str(cache)})
        verdicts = [f["verdict"] for f in json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["findings"]]
        assert verdicts == ["holds", "holds"]
        notices = [line for line in output.splitlines() if "damaged" in line]
        assert len(notices) == (1 if run == 0 else 0), output
    (aside,) = cache.glob("results.sqlite.damaged-*")
    assert aside.read_bytes() == garbage  # kept for a post-mortem
    with sqlite3.connect(cache / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 4


TINY = "test-tiny-classifier"

WITH_TINY = NETWORKS + f"""model clf: classifier = "{TINY}"
verify c {{
  expect clf.prob("a fine film", "positive") > 0.000001
}}
"""


@pytest.fixture
def tiny_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A registered model built into a fresh store (a copy of the sentiment organism),
    and how many times it was built."""
    from msl.models import registry

    builds = {"n": 0, "fail": 0}

    def tiny(store: registry.ModelStore) -> Path:
        def build(tmp: Path, step: registry.Step) -> None:
            if builds["fail"]:
                raise registry.ModelLoadError(f"cannot build {TINY}: the package index is unreachable")
            builds["n"] += 1
            shutil.copytree(registry.ORGANISMS_DIR / "sentiment", tmp, dirs_exist_ok=True)

        return store.materialize(TINY, build)

    monkeypatch.setitem(registry.REGISTRY, TINY, registry.Registered(TINY, ("classifier",), "test", tiny))
    monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.msl").write_text(WITH_TINY, encoding="utf-8")
    return builds


def _run(*args: str) -> tuple[int, str, dict[str, str]]:
    result = CliRunner().invoke(cli, ["check", "s.msl", "-q", "-o", "out.json", *args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert Path("out.json").exists(), (result.exit_code, result.output, result.exception)
    findings = json.loads(Path("out.json").read_text(encoding="utf-8"))["findings"]
    return result.exit_code, result.output, {f["claim"]["name"]: f["verdict"] for f in findings}


def test_a_truncated_cached_model_is_built_again(tmp_path: Path, tiny_store: dict[str, int]) -> None:
    code, _, verdicts = _run()
    assert (code, verdicts, tiny_store["n"]) == (0, {"a": "holds", "b": "holds", "c": "holds"}, 1)
    weights = tmp_path / "cache" / "models" / TINY / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, 1000)
    code, output, verdicts = _run("--no-cache")
    assert (code, verdicts, tiny_store["n"]) == (0, {"a": "holds", "b": "holds", "c": "holds"}, 2), output
    notices = [line for line in output.splitlines() if "damaged" in line]
    assert notices == [f"warning: the cached model {TINY} is damaged (model.safetensors has 1,000 bytes, "
                       f"not the {size:,} it was built with); building it again"]
    assert weights.stat().st_size == size


def test_a_cached_model_that_cannot_be_rebuilt_fails_its_claims_only(
    tmp_path: Path, tiny_store: dict[str, int]
) -> None:
    """It aborted every claim and wrote no -o file."""
    _run()
    os.truncate(tmp_path / "cache" / "models" / TINY / "model.safetensors", 1000)
    tiny_store["fail"] = 1
    code, output, verdicts = _run("--no-cache")
    assert (code, verdicts) == (3, {"a": "holds", "b": "holds", "c": "error"}), output
    assert "the package index is unreachable" in output


def test_a_damaged_model_file_fails_only_the_claims_that_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated model outside the store (a local path) is an `error` of its claims;
    the other claims get their verdicts and the -o report is written."""
    shutil.copytree(Path(__file__).resolve().parent.parent / "msl" / "organisms" / "sentiment", tmp_path / "clf")
    os.truncate(tmp_path / "clf" / "model.safetensors", 1000)
    (tmp_path / "s.msl").write_text(WITH_TINY.replace(f'"{TINY}"', '"./clf"'), encoding="utf-8")
    monkeypatch.setenv("MSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, output, verdicts = _run()
    assert (code, verdicts) == (3, {"a": "holds", "b": "holds", "c": "error"}), output
    assert "model role `clf` (classifier): cannot load the weights" in output
    (message,) = [
        f["message"] for f in json.loads(Path("out.json").read_text())["findings"] if f["claim"]["name"] == "c"
    ]
    assert "cannot load the weights of classifier '" in message and "/clf'" in message


def test_an_interrupted_build_is_cleaned_up_by_the_next(tmp_path: Path, tiny_store: dict[str, int]) -> None:
    from filelock import FileLock

    from msl.models.registry import STALE_AFTER_S

    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    old = time.time() - STALE_AFTER_S - 60
    stale = {
        ".tmp-smollm2-135m-abcd1234": True,   # killed mid-build: old, lock free
        ".dl-minilm-l6-efgh5678": True,
        ".dl-ijkl9012": True,                 # an older version's download folder
        ".tmp-minilm-l6-recent00": False,     # too young to call stale
        ".tmp-busy-model-mnop3456": False,    # old, but its build is running
    }
    for name, _ in stale.items():
        (models / name).mkdir()
        (models / name / "model.safetensors").write_bytes(b"x" * 1000)
        if "recent" not in name:
            os.utime(models / name, (old, old))
    with FileLock(str(models / ".busy-model.lock")):
        code, _, _ = _run()
    assert code == 0
    left = {p.name for p in models.iterdir() if p.name.startswith((".tmp-", ".dl-"))}
    assert left == {name for name, gone in stale.items() if not gone}


def test_nested_comprehensions_over_large_sets_end_in_an_error(tmp_path: Path) -> None:
    """4·10^8 evaluations per instance, which no static count sees: the claim's error
    names the limit, within seconds; the other claim still holds."""
    (tmp_path / "s.msl").write_text(
        "msl 1.0\nlet w = range(0, 20000)\nmeasure m(x) = mean([mean([a + x for a in w]) for b in w])\n"
        "verify n {\n  for i in [1, 2]\n  expect m(i) > 0\n}\nverify fine {\n  for i in [1, 2]\n  expect i > 0\n}\n",
        encoding="utf-8",
    )
    output = answer("check", "s.msl", "--no-cache", cwd=tmp_path, code=3)
    assert f"evaluating this took more than {MAX_EVALUATIONS:,} steps (at s.msl:6:10)" in output
    assert re.search(r"^\[\d/\d\] fine holds \d+\.\d s$", output, re.M), output  # its progress line
