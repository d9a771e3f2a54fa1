"""Hostile files through the real CLI: whatever the bytes, exit 0 or 2, a location, no
traceback, an answer within seconds — and nothing in a spec is ever executed.

Each case builds its files in a fresh folder and runs `python -m msl lint` (and sometimes
`fmt`) there in a subprocess. The time bound is generous (the machine is shared); the
cases that would take minutes or hours without their fix are cheap now.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lang_helpers import LOCATION, run_cli

from msl.check import MAX_PRESERVES_DEPTH
from msl.load import MAX_IMPORTS
from msl.parse import MAX_DEPTH, MAX_ERRORS
from msl.source import MAX_SPEC_BYTES

#: Seconds one hostile file may take through the CLI, start-up included.
BOUND_S = 20.0

HEADER = "msl 1.0\nmodel lm: causal_lm\n"


def answer(*args: str, cwd: Path, codes: tuple[int, ...] = (0, 2)) -> str:
    """Run the CLI and check the contract; the combined output."""
    result, elapsed = run_cli(*args, cwd=cwd, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode in codes, (result.returncode, output[-3000:])
    assert "Traceback" not in output, output[-3000:]
    assert elapsed < BOUND_S, f"{elapsed:.1f}s"
    if result.returncode == 2:
        assert LOCATION.search(output), output[-3000:]
    for line in output.splitlines():
        if ": error: " in line or ": warning: " in line:
            assert LOCATION.match(line), line
    return output


def write(folder: Path, name: str, data: str | bytes) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return name


# ── Bytes that are not a spec ────────────────────────────────────────────────────────────

def _nested(n: int, open_: str, close: str, inner: str = "1") -> str:
    return HEADER + f"let x = {open_ * n}{inner}{close * n}\nverify c {{ expect lm.prob(\"a\", \" b\") > x }}\n"


Case = tuple[Callable[[], bytes | str], int, str]

#: The brief's hostile files: each through its own CLI process in every run.
CASES: dict[str, Case] = {
    # name: (content, exit code, a phrase the output must hold)
    "binary_garbage": (lambda: random.Random(0).randbytes(5000), 2, "is not valid UTF-8 text"),
    "nul_bytes": (lambda: b"msl 1.0\n\x00\x00model lm: causal_lm\n", 2, "unexpected character `\\x00`"),
    "latin_1": (lambda: "msl 1.0\n# caf\xe9\n".encode("latin-1"), 2,
                "2:6: error: file is not valid UTF-8 text (byte 0xe9)"),
    "utf8_bom": (lambda: b"\xef\xbb\xbf" + (HEADER + 'verify c { expect lm.prob("a", " b") > 0.5 }\n').encode(), 0,
                 "1 spec(s) checked: 0 error(s)"),
    "nested_parens": (lambda: _nested(20_000, "(", ")"), 0, "1 spec(s) checked"),
    "nested_brackets": (lambda: _nested(20_000, "[", "]"), 2, f"more than {MAX_DEPTH} levels"),
    "unary_minus": (lambda: HEADER + "let x = " + "-" * 10_000 + "1\n", 2, f"more than {MAX_DEPTH} levels"),
    "three_megabytes": (lambda: "msl 1.0\n" + "# padding padding padding padding padding padding\n" * 60_000, 2,
                        "is too large for a spec"),
    "empty_file": (lambda: b"", 2, "1:1: error: the file is empty"),
    "huge_integer": (lambda: HEADER + f"let x = {'9' * 5000}\n", 2, "integer literal is too large"),
}

#: More hostile files: together through one CLI process (and each timed in-process) in
#: the default run, each through its own process with `-m slow`.
MORE_CASES: dict[str, Case] = {
    "crlf_lines": (lambda: (HEADER + 'verify c {\n  expect lm.prob("a", " b") > 2\n}\n').replace("\n", "\r\n"), 2,
                   "4:31: error: a rate or probability is at most 1, so 2 is out of reach\n"
                   "    expect lm.prob(\"a\", \" b\") > 2\n"),
    "nested_records": (lambda: _nested(2_000, "{a: ", "}"), 2, f"more than {MAX_DEPTH} levels"),
    "nested_calls": (lambda: _nested(2_000, "abs(", ")"), 2, f"more than {MAX_DEPTH} levels"),
    "not_not_not": (lambda: HEADER + "verify c { expect " + "not " * 3_000 + "true }\n", 2,
                    f"more than {MAX_DEPTH} levels"),
    "long_sum": (lambda: HEADER + "let x = " + " + ".join(["1"] * 3_000) + "\n", 2, f"more than {MAX_DEPTH} levels"),
    "long_comparison_chain": (lambda: HEADER + "verify c { expect 0.5 < lm.prob(\"a\", \" b\") <= "
                              + " <= ".join(["1"] * 2_000) + " }\n", 0, "1 spec(s) checked"),
    "unclosed_brackets": (lambda: HEADER + "let x = " + "([" * 2_000 + "\n", 2, "is not closed"),
    "closing_brackets": (lambda: HEADER + "let x = 1" + ")]}" * 2_000 + "\n", 2, "error: unexpected `)`"),
    "only_whitespace": (lambda: " \n\t\n\r\n", 2, "error: the file is empty"),
    "only_a_comment": (lambda: "# nothing else\n", 2, "unexpected end of file; expected `msl`"),
    "many_syntax_errors": (lambda: HEADER + "data x = ]\n" * 1_000, 2, "data x = ]"),
    "control_characters_in_a_string": (lambda: HEADER + 'let x = "\x1b[2J\u202e" 5\n', 2, 'unexpected number `5`'),
    "huge_float": (lambda: HEADER + "let y = 1e99999\n", 2, "number literal is out of range"),
    "long_string": (lambda: HEADER + 'let s = "' + "x" * 50_000 + '"\nverify c { expect lm.top(s) == "y" }\n', 0,
                    "1 spec(s) checked"),
    "many_unknown_names": (lambda: "msl 1.0\n" + "".join(f"let a{i} = {i}\n" for i in range(1500))
                           + "".join(f"let b{i} = z{i}\n" for i in range(1500)), 2, "unknown name `z0`"),
    "measures_doubling": (lambda: HEADER + 'data s = ["a"]\nmeasure m0(t) = lm.prob(t, " a")\n'
                          + "".join(f"measure m{i}(t) = m{i - 1}(t) + m{i - 1}(t)\n" for i in range(1, 40))
                          + "verify c { for x in s\n expect m39(x) > 1 }\n", 2,
                          "one call of `m14` evaluates more than 100,000 expressions"),  # 2^39 at run time
}


def _check_case(folder: Path, name: str, case: Case) -> None:
    content, code, phrase = case
    write(folder, f"{name}.msl", content())
    output = answer("lint", f"{name}.msl", cwd=folder, codes=(code,))
    assert phrase in output, output[-3000:]
    # a 40 000-character line is quoted as a window around the caret
    assert max(len(line) for line in output.splitlines()) < 200


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file(tmp_path: Path, name: str) -> None:
    _check_case(tmp_path, name, CASES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MORE_CASES))
def test_more_hostile_files_one_process_each(tmp_path: Path, name: str) -> None:
    _check_case(tmp_path, name, MORE_CASES[name])


def test_more_hostile_files(tmp_path: Path) -> None:
    """Each file timed through the whole pipeline in-process, then all of them through
    one `lint` and one `fmt --check` process."""
    import time

    from lang_helpers import assert_well_formed, run_pipeline

    names = []
    for name, (content, code, _) in MORE_CASES.items():
        path = tmp_path / f"{name}.msl"
        write(tmp_path, path.name, content())
        names.append(path.name)
        start = time.perf_counter()
        outcome = run_pipeline(path)
        assert time.perf_counter() - start < BOUND_S / 2, name
        for problem in outcome.problems:
            assert_well_formed(problem)
        errors = [p for p in outcome.problems if ": error: " in p.render()]
        assert bool(errors) == (code == 2), (name, [p.message for p in outcome.problems])
    output = answer("lint", *names, cwd=tmp_path, codes=(2,))
    for name, (_, code, phrase) in MORE_CASES.items():
        if "spec(s) checked" not in phrase:
            assert phrase in output, name
        if code == 2:
            assert re.search(rf"^{name}\.msl:\d+:\d+: error: ", output, re.MULTILINE), name
    # syntax errors are capped per file, and no terminal control character reaches the user
    assert len(re.findall(r"^many_syntax_errors\.msl:\d+:\d+: error: ", output, re.MULTILINE)) == MAX_ERRORS
    assert "\x1b" not in output and "\u202e" not in output
    assert "\\x1b[2J\\u202e" in output
    assert max(len(line) for line in output.splitlines()) < 200
    fmt, elapsed = run_cli("fmt", "--check", *names, cwd=tmp_path, timeout=120)
    assert fmt.returncode == 2 and "Traceback" not in fmt.stdout + fmt.stderr
    assert elapsed < 3 * BOUND_S


def test_just_under_the_size_limit(tmp_path: Path) -> None:
    """A spec of valid declarations just under the limit is read, checked and linted."""
    lines = [HEADER.rstrip("\n"), 'data prompts = ["a", "b"]']
    i = 0
    while sum(len(line) + 1 for line in lines) < MAX_SPEC_BYTES - 200:
        lines.append(f'let v{i} = lm.prob("text {i}", " a") + {i}')
        i += 1
    lines.append("verify c { for p in prompts\n expect lm.prob(p, \" a\") > v0 }")
    text = "\n".join(lines) + "\n"
    assert MAX_SPEC_BYTES - 300 < len(text.encode()) <= MAX_SPEC_BYTES
    write(tmp_path, "big.msl", text)
    output = answer("lint", "big.msl", cwd=tmp_path, codes=(0,))
    assert "1 spec(s) checked: 0 error(s)" in output


# ── Paths, imports, datasets ─────────────────────────────────────────────────────────────


def test_a_folder_without_specs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path, "empty/notes.txt", "not a spec")
    for command in ("lint", "check"):  # a CI job pointed at the wrong folder must not pass
        output = answer(command, "empty", cwd=tmp_path, codes=(2,))
        assert "empty:1:1: error: no spec found: no .msl file under empty" in output


def test_a_missing_path(tmp_path: Path) -> None:
    output = answer("lint", "missing.msl", cwd=tmp_path, codes=(2,))
    assert "missing.msl:1:1: error: no such file or folder: missing.msl" in output


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_not_read(tmp_path: Path) -> None:
    output = answer("lint", "/dev/zero", cwd=tmp_path, codes=(2,))
    assert "/dev/zero:1:1: error: not a regular file" in output


def test_a_symlink_loop(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.msl", tmp_path / "a.msl")
    os.symlink(tmp_path / "a.msl", tmp_path / "b.msl")
    output = answer("lint", "a.msl", cwd=tmp_path, codes=(2,))
    assert "a.msl:1:1: error:" in output


def test_an_import_cycle_names_its_path(tmp_path: Path) -> None:
    write(tmp_path, "a.msl", 'msl 1.0\nimport "b.msl"\nlet a = 1\n')
    write(tmp_path, "b.msl", 'msl 1.0\nimport "sub/c.msl"\nlet b = 1\n')
    write(tmp_path, "sub/c.msl", 'msl 1.0\nimport "../a.msl"\nlet c = 1\n')
    output = answer("lint", "a.msl", cwd=tmp_path, codes=(2,))
    assert "sub/c.msl:2:1: error: import cycle: a.msl → b.msl → sub/c.msl → a.msl" in output


def test_a_spec_importing_itself(tmp_path: Path) -> None:
    write(tmp_path, "self.msl", 'msl 1.0\nimport "self.msl"\n')
    output = answer("lint", "self.msl", cwd=tmp_path, codes=(2,))
    assert "self.msl:2:1: error: import cycle: self.msl → self.msl" in output


BAD_IMPORTS = {
    "evil.py": "only .msl files can be imported",
    "data.jsonl": "only .msl files can be imported",
    "/etc/passwd.msl": "imports are relative to the importing file",
    "nowhere.msl": "no file 'nowhere.msl' to import",
    "folder.msl": "no file 'folder.msl' to import",
}


def test_bad_imports(tmp_path: Path) -> None:
    """Each importer in its own file, all through one process."""
    write(tmp_path, "evil.py", "import os; os.system('touch PWNED')\n")
    write(tmp_path, "data.jsonl", '{"a": 1}\n')
    (tmp_path / "folder.msl").mkdir()
    names = []
    for i, target in enumerate(BAD_IMPORTS):
        names.append(write(tmp_path, f"main{i}.msl", f'msl 1.0\nimport "{target}"\n'))
    output = answer("lint", *names, cwd=tmp_path, codes=(2,))
    for name, message in zip(names, BAD_IMPORTS.values(), strict=True):
        assert f"{name}:2:1: error: {message}" in output
    assert not (tmp_path / "PWNED").exists()


def test_a_long_import_chain(tmp_path: Path) -> None:
    """Without an explicit stack, 1 500 chained imports crashed with RecursionError."""
    n = 1_500
    for i in range(n):
        following = f'import "f{i + 1}.msl"\n' if i + 1 < n else ""
        write(tmp_path, f"f{i}.msl", f"msl 1.0\n{following}let v{i} = {i}\n")
    output = answer("lint", "f0.msl", cwd=tmp_path, codes=(2,))
    assert f"error: this spec imports more than {MAX_IMPORTS} files" in output


def test_a_long_preserves_chain(tmp_path: Path) -> None:
    n = 200
    for i in range(n):
        body = (f'refine r {{ base = lm\n refined = lm\n preserves "p{i + 1}.msl" role lm }}\n' if i + 1 < n
                else 'verify v { expect lm.prob("a", " b") > 0.5 }\n')
        write(tmp_path, f"p{i}.msl", HEADER + body)
    output = answer("lint", "p0.msl", cwd=tmp_path, codes=(2,))
    assert f"`preserves` is nested more than {MAX_PRESERVES_DEPTH} specs deep" in output


ESCAPES = {
    'dataset("../../etc/passwd")': "dataset paths must stay inside the spec's directory",
    'dataset("/etc/passwd")': "dataset paths must be relative to the spec file",
    'dataset("link.jsonl")': "dataset paths must stay inside the spec's directory",
    'dataset("spec0.msl")': "datasets are .jsonl or .csv files",
    'load_vector("../../etc/passwd.safetensors")': "vectors are .safetensors files inside the spec's directory",
    'load_vector("link.safetensors")': "vectors are .safetensors files inside the spec's directory",
}


def test_data_paths_escaping_the_spec_folder(tmp_path: Path) -> None:
    """Datasets and vectors are read from inside the spec's folder only, symlinks
    included; each case in its own file, all through one process."""
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"text": "secret"}\n', encoding="utf-8")
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    os.symlink(outside, spec_dir / "link.jsonl")
    os.symlink(outside, spec_dir / "link.safetensors")
    names = []
    for i, call in enumerate(ESCAPES):
        keyword = "vector" if "vector" in call else "data"
        names.append(write(spec_dir, f"spec{i}.msl", HEADER + f"{keyword} d = {call}\n"))
    output = answer("lint", *names, cwd=spec_dir, codes=(2,))
    for name, message in zip(names, ESCAPES.values(), strict=True):
        assert f"{name}:3:" in output and message in output.split(f"{name}:3:", 1)[1].split("\n", 1)[0]
    assert "secret" not in output


# ── Nothing is executed ──────────────────────────────────────────────────────────────────


def test_code_in_strings_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = f"__import__('os').system('touch {marker}')"
    spec = (
        "msl 1.0\n"
        f'model lm: causal_lm = "{payload}"\n'
        f'data d = ["{payload}", "{{{{{payload}}}}}"]\n'
        f'data t = template("{{x}} {{{{{payload}}}}}", x: ["a"])\n'
        f'transform r = replace("{payload}", "eval(\\"1\\")")\n'
        "verify c {\n"
        f'  description "{payload}"\n'
        "  for p in d\n"
        f'  expect lm.prob(r(p), "{payload}") > 0.5\n'
        "}\n"
    )
    write(tmp_path, "code.msl", spec)
    output = answer("lint", "code.msl", cwd=tmp_path, codes=(2,))
    # the only error: the model reference names nothing (it is looked up, never run)
    assert "1 spec(s) checked: 1 error(s)" in output and "no model at" in output
    fmt, _ = run_cli("fmt", "code.msl", cwd=tmp_path)
    assert fmt.returncode == 0
    assert payload in (tmp_path / "code.msl").read_text(encoding="utf-8")
    assert not marker.exists()


def test_a_bad_template_slot_with_code_is_an_error_not_a_format_call(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    write(tmp_path, "t.msl", HEADER + f'data t = template("{{__import__(\'os\').system(\'touch {marker}\')}}")\n')
    output = answer("lint", "t.msl", cwd=tmp_path, codes=(2,))
    assert "bad template" in output
    assert not marker.exists()


# ── Slow: the full-size versions of the denial-of-service cases ─────────────────────────


@pytest.mark.slow
def test_thousands_of_claims_over_one_large_set(tmp_path: Path) -> None:
    """Each claim re-walked every declaration it used: this took 3 minutes, lint with one
    z3 question per pair of expectations would have taken hours."""
    items = ", ".join(str(i % 10) for i in range(30_000))
    lines = [HEADER.rstrip("\n"), f"data big = [{items}]"]
    i = 0
    while sum(len(line) + 1 for line in lines) < MAX_SPEC_BYTES - 100:
        lines.append(f"verify c{i} {{ expect len(big) > {i % 7} }}")
        i += 1
    write(tmp_path, "many.msl", "\n".join(lines) + "\n")
    output = answer("lint", "many.msl", cwd=tmp_path, codes=(0,))
    assert "lint stopped searching for contradictions" in output


@pytest.mark.slow
def test_many_unknown_names_among_many_declarations(tmp_path: Path) -> None:
    text = (
        "msl 1.0\n"
        + "".join(f"let a{i} = {i}\n" for i in range(7000))
        + "".join(f"let b{i} = z{i}\n" for i in range(7000))
    )
    write(tmp_path, "names.msl", text)
    output = answer("lint", "names.msl", cwd=tmp_path, codes=(2,))
    assert re.search(r"0 spec\(s\) checked: 7000 error\(s\)", output)
