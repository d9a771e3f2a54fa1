"""Mutation fuzz of valid specs: whatever the bytes, the static pipeline answers cleanly.

Each mutant of a corpus spec (or of `specs/*.msl`) goes through parse → check → lint, and
fmt on whatever parses. It must either pass or raise `SpecErrors` whose every diagnostic
has a sane location and renders — never another exception, never a RecursionError, and
within a few seconds. A sample also goes through the real CLI in a subprocess.

The default run checks a few hundred mutants; `-m slow` checks thousands.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lang_helpers import CORPUS, LOCATION, assert_well_formed, example_specs, run_cli, run_pipeline

from msl.parse import keywords

#: Seconds one mutant may take through the whole in-process pipeline.
PER_FILE_SECONDS = 5.0

#: The lexical shape of MSL, for token-level mutations (strings first: they hold anything).
_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?%?|[A-Za-z_]\w*'
    r"|<=|>=|==|!=|[^\sA-Za-z0-9_]|\s+"
)
_PUNCTUATION = list("{}()[],:.=<>+-*/%#\"'\\@$;!?`~^&|") + ["<=", ">=", "==", "!=", "\n", "\t", '"', "\x00"]
_STRANGE = ["\x00", "\ufeff", "\u202e", "\u2028", "\x1b[31m", "é", "💥", "\r", "\x0c", "𝕏"]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _nonspace(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if not t.isspace()]


# ── Mutation operators: (rng, text) → bytes ──────────────────────────────────────────────

Mutation = Callable[[random.Random, str], bytes]


def delete_token(rng: random.Random, text: str) -> bytes:
    tokens = _tokens(text)
    del tokens[rng.choice(_nonspace(tokens))]
    return "".join(tokens).encode()


def duplicate_token(rng: random.Random, text: str) -> bytes:
    tokens = _tokens(text)
    i = rng.choice(_nonspace(tokens))
    tokens.insert(i, tokens[i] + rng.choice(["", " "]))
    return "".join(tokens).encode()


def swap_tokens(rng: random.Random, text: str) -> bytes:
    tokens = _tokens(text)
    candidates = _nonspace(tokens)
    i, j = rng.sample(candidates, 2) if rng.random() < 0.5 else _adjacent(rng, candidates)
    tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(tokens).encode()


def _adjacent(rng: random.Random, candidates: list[int]) -> tuple[int, int]:
    k = rng.randrange(len(candidates) - 1)
    return candidates[k], candidates[k + 1]


def insert_keyword(rng: random.Random, text: str) -> bytes:
    tokens = _tokens(text)
    word = rng.choice(sorted(keywords()))
    tokens.insert(rng.randrange(len(tokens) + 1), rng.choice([f" {word} ", word, f"\n{word}"]))
    return "".join(tokens).encode()


def insert_punctuation(rng: random.Random, text: str) -> bytes:
    tokens = _tokens(text)
    for _ in range(rng.randint(1, 3)):
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(_PUNCTUATION))
    return "".join(tokens).encode()


def replace_token(rng: random.Random, text: str) -> bytes:
    """A token replaced by another of the same file, a keyword, or something strange."""
    tokens = _tokens(text)
    i = rng.choice(_nonspace(tokens))
    pool = [tokens[j] for j in _nonspace(tokens)] + sorted(keywords()) + _STRANGE
    tokens[i] = rng.choice(pool)
    return "".join(tokens).encode()


def misspell_word(rng: random.Random, text: str) -> bytes:
    """A name or keyword with one letter dropped, doubled or changed (the human mistake)."""
    tokens = _tokens(text)
    words = [i for i, t in enumerate(tokens) if re.fullmatch(r"[A-Za-z_]\w+", t)]
    i = rng.choice(words)
    word = tokens[i]
    k = rng.randrange(len(word))
    tokens[i] = rng.choice([word[:k] + word[k + 1 :], word[:k] + word[k] + word[k:], word[:k] + "x" + word[k + 1 :]])
    return "".join(tokens).encode()


def replace_name(rng: random.Random, text: str) -> bytes:
    """A name replaced by another name of the file: still parses, stresses the checker."""
    tokens = _tokens(text)
    words = [i for i, t in enumerate(tokens) if re.fullmatch(r"[A-Za-z_]\w*", t) and t not in keywords()]
    tokens[rng.choice(words)] = tokens[rng.choice(words)]
    return "".join(tokens).encode()


def replace_number(rng: random.Random, text: str) -> bytes:
    """A literal replaced by an extreme one: huge, tiny, a percent, a string, a list."""
    tokens = _tokens(text)
    literals = [i for i, t in enumerate(tokens) if t[:1].isdigit() or t.startswith('"')]
    tokens[rng.choice(literals)] = rng.choice([
        "0", "1e999", "99999999999999999999999", "1e-999", "0%", "100%", "1000%", "0.5", "-1",
        "[]", '""', '"\\u0000"', "[1, [2, [3]]]", "{}", "true",
    ])
    return "".join(tokens).encode()


def truncate(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    return data[: rng.randrange(len(data))]


def flip_bytes(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def insert_nul(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    k = rng.randrange(len(data) + 1)
    return data[:k] + b"\x00" * rng.randint(1, 3) + data[k:]


def invalid_utf8(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    k = rng.randrange(len(data) + 1)
    bad = rng.choice([b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    return data[:k] + bad + data[k:]


def random_bytes(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    k = rng.randrange(len(data) + 1)
    return data[:k] + rng.randbytes(rng.randint(1, 16)) + data[k:]


def delete_span(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    a = rng.randrange(len(data))
    return data[:a] + data[a + rng.randint(1, 200) :]


def duplicate_span(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 300))
    return data[:b] + data[a:b] + data[b:]


def duplicate_line(rng: random.Random, text: str) -> bytes:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "\n".join(lines).encode()


MUTATIONS: dict[str, Mutation] = {
    f.__name__: f
    for f in (
        delete_token,
        duplicate_token,
        swap_tokens,
        insert_keyword,
        insert_punctuation,
        replace_token,
        misspell_word,
        replace_name,
        replace_number,
        truncate,
        flip_bytes,
        insert_nul,
        invalid_utf8,
        random_bytes,
        delete_span,
        duplicate_span,
        duplicate_line,
    )
}


def mutants(count: int, seed: int) -> Iterator[tuple[str, Path, bytes]]:
    """``count`` mutants, spread over every example spec and every operator, reproducibly."""
    rng = random.Random(seed)
    specs = example_specs()
    names = sorted(MUTATIONS)
    for k in range(count):
        spec = specs[k % len(specs)]
        op = names[(k // len(specs)) % len(names)]
        text = spec.read_text(encoding="utf-8")
        yield f"{spec.stem}-{op}-{k}", spec, MUTATIONS[op](random.Random(rng.getrandbits(64)), text)


# ── The tests ────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the corpus (imports, datasets and preserved specs resolve), where each
    mutant is written beside the file it came from."""
    target = tmp_path_factory.mktemp("fuzz") / "corpus"
    shutil.copytree(CORPUS, target)
    return target


def _check_mutant(workdir: Path, name: str, data: bytes) -> list[str]:
    path = workdir / f"{name}.msl"
    path.write_bytes(data)
    start = time.perf_counter()
    outcome = run_pipeline(path)
    elapsed = time.perf_counter() - start
    assert elapsed < PER_FILE_SECONDS, f"{name}: {elapsed:.1f}s"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    files = {str(path): text} if text is not None else None
    return [assert_well_formed(p, files) for p in outcome.problems]


def _run(workdir: Path, count: int, seed: int) -> None:
    failures = []
    rejected = 0
    for name, _, data in mutants(count, seed):
        try:
            rendered = _check_mutant(workdir, name, data)
        except Exception as exc:  # collect, so one run reports every failing mutant
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:400]}")
            continue
        rejected += any(": error: " in r for r in rendered)
    assert not failures, f"{len(failures)} of {count} mutants failed:\n" + "\n".join(failures[:20])
    # the operators do break specs (else this tests nothing), and some mutants survive
    # to exercise the checker, lint and fmt on unusual but valid input
    assert count * 0.5 < rejected < count, rejected


#: Default-run size: every operator on every example spec at least once or twice.
DEFAULT_MUTANTS = 300


def test_mutants_answer_cleanly(workdir: Path) -> None:
    _run(workdir, DEFAULT_MUTANTS, seed=20260101)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_many_mutants_answer_cleanly(workdir: Path, seed: int) -> None:
    _run(workdir, 500, seed=seed)


def test_every_operator_is_used() -> None:
    used = {name.split("-")[1] for name, _, _ in mutants(DEFAULT_MUTANTS, seed=20260101)}
    assert used == set(MUTATIONS)


def test_cli_on_a_sample_of_mutants(workdir: Path) -> None:
    """The real CLI: exit 0 or 2, `file:line:col` for every failing file, no traceback."""
    batch = workdir.parent / "cli_batch"
    shutil.copytree(CORPUS, batch)  # the siblings that imports and datasets name
    names = []
    for name, _, data in mutants(40, seed=77):
        (batch / f"{name}.msl").write_bytes(data)
        names.append(name)
    result, elapsed = run_cli("lint", *(f"{n}.msl" for n in names), cwd=batch)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 2), output
    assert "Traceback" not in output
    assert elapsed < 20 + len(names) * PER_FILE_SECONDS / 5, f"{elapsed:.1f}s for {len(names)} files"
    for name in names:
        single, _ = run_pipeline_quiet(batch / f"{name}.msl")
        if single:
            assert re.search(rf"^{re.escape(name)}\.msl:\d+:\d+: error: ", output, re.MULTILINE), (name, output)
    assert LOCATION.search(output)
    fmt, _ = run_cli("fmt", "--check", *(f"{n}.msl" for n in names), cwd=batch)
    assert fmt.returncode in (0, 1, 2) and "Traceback" not in fmt.stdout + fmt.stderr


def run_pipeline_quiet(path: Path) -> tuple[bool, list[str]]:
    """Whether the file has errors in-process (the CLI must then show one for it)."""
    from msl.errors import Severity

    outcome = run_pipeline(path)
    errors = [
        p for p in outcome.problems if p.severity is Severity.ERROR and p.span and p.span.file.endswith(path.name)
    ]
    return bool(errors), [e.message for e in errors]
