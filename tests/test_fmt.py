"""fmt: canonical layout that never changes meaning, keeps every comment, and is idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from ast_strategies import modules
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lang_helpers import CORPUS, assert_fmt_preserves, example_specs, run_cli

from msl import ast
from msl.fmt import WIDTH, format_module, format_parsed
from msl.parse import parse_file, parse_text

FMT = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fmt(text: str) -> str:
    return format_parsed(parse_text(text, "t.msl"))


# ── Properties ───────────────────────────────────────────────────────────────────────────


@FMT
@given(modules)
def test_idempotent_on_generated_modules(module: ast.Module) -> None:
    once = format_module(module)
    assert fmt(once) == once


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_idempotent_and_faithful_on_every_example_spec(path: Path) -> None:
    assert_fmt_preserves(parse_file(path))


comment_texts = st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), max_size=15)


@st.composite
def commented(draw: st.DrawFn, text: str) -> tuple[str, list[str]]:
    """``text`` with comments added at the ends of lines and on lines of their own."""
    lines = text.split("\n")
    out, comments = [], []
    for i, line in enumerate(lines):
        if draw(st.integers(0, 3)) == 0:
            indent = " " * draw(st.integers(0, 4))
            comment = f"#{i}a {draw(comment_texts)}".rstrip()
            out.append(indent + comment)
            comments.append(comment)
            if draw(st.booleans()):
                out.append("")
        if line.strip() and draw(st.integers(0, 2)) == 0:
            comment = f"#{i}b {draw(comment_texts)}".rstrip()
            line += " " * draw(st.integers(0, 3)) + comment
            comments.append(comment)
        out.append(line)
    return "\n".join(out), comments


@FMT
@given(st.data(), modules)
def test_comments_are_kept_in_generated_modules(data: st.DataObject, module: ast.Module) -> None:
    text, comments = data.draw(commented(format_module(module)))
    parsed = parse_text(text, "t.msl")
    assert parsed.module == module
    assert_fmt_preserves(parsed)
    out = format_parsed(parsed)
    for comment in comments:
        assert comment in out


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from(example_specs()))
def test_comments_are_kept_in_example_specs(data: st.DataObject, path: Path) -> None:
    text, comments = data.draw(commented(path.read_text(encoding="utf-8")))
    parsed = parse_text(text, "t.msl")
    assert_fmt_preserves(parsed)
    out = format_parsed(parsed)
    assert all(c in out for c in comments)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(modules, st.sampled_from(["\n", " \t ", "  "]))
def test_layout_of_the_input_does_not_matter(module: ast.Module, glue: str) -> None:
    """Re-spacing the tokens (without comments or blank lines, which fmt keeps) gives
    the same canonical text."""
    canonical = format_module(module)
    assume("\\" not in canonical and '"' not in canonical)  # keep re-spacing outside strings
    spaced = glue.join(canonical.replace("(", "( ").replace(",", " ,").split())
    assert fmt(spaced) == canonical


# ── The canonical layout ─────────────────────────────────────────────────────────────────


def test_canonical_layout_of_a_messy_spec() -> None:
    messy = (
        "  # leading comment\n"
        "msl   1.0\n"
        "model lm :causal_lm=\"smollm2-135m\"   # the model\n"
        "\n\n\n"
        "data d=[ \"a\",\"b\" , ]\n"
        "measure   m ( t , u )=lm.logprob(t,u)-(1+2)*3\n"
        "verify c{description \"x\" tags a,b severity high\n"
        "for x in d let y=m(x,\" a\")\n"
        "\n\n"
        "  # inside\n"
        "expect (y)>=-(1) and not(y<2)  # end\n"
        "tolerate 5 % at 95% confidence}\n"
        "refine r { base = lm refined = lm with (i) preserves \"core.msl\" role lm }\n"
    )
    assert fmt(messy) == (
        "# leading comment\n"
        "msl 1.0\n"
        "\n"
        "model lm: causal_lm = \"smollm2-135m\"  # the model\n"
        "\n"
        "data d = [\"a\", \"b\"]\n"
        "measure m(t, u) = lm.logprob(t, u) - (1 + 2) * 3\n"
        "\n"
        "verify c {\n"
        "  description \"x\"\n"
        "  tags a, b\n"
        "  severity high\n"
        "  for x in d\n"
        "  let y = m(x, \" a\")\n"
        "\n"
        "  # inside\n"
        "  expect y >= -1 and not y < 2  # end\n"
        "  tolerate 5% at 95% confidence\n"
        "}\n"
        "\n"
        "refine r {\n"
        "  base = lm\n"
        "  refined = lm with i\n"
        "  preserves \"core.msl\" role lm\n"
        "}\n"
    )


def test_long_lines_are_wrapped_one_item_a_line() -> None:
    items = ", ".join(f'"item number {i}"' for i in range(8))
    out = fmt(f"msl 1.0\ndata d = [{items}]\n")
    assert out.splitlines()[2:] == ["data d = ["] + [f'  "item number {i}",' for i in range(8)] + ["]"]
    assert all(len(line) <= WIDTH for line in out.splitlines())


def test_a_long_generator_call_is_wrapped_without_a_trailing_comma() -> None:
    """Regression: the wrapped generator got a trailing comma, which does not parse."""
    text = (
        "msl 1.0\nverify c {\n"
        '  let m = mean(lm.logprob(x, "a very long continuation that goes on and on and on") for x in prompts)\n'
        "}\n"
    )
    out = fmt(text)
    assert '(\n    lm.logprob(x, "a very long continuation that goes on and on and on") for x in prompts\n  )\n' in out
    assert_fmt_preserves(parse_text(text, "t.msl"))


def test_comments_inside_a_multi_line_declaration_are_kept() -> None:
    """Regression: comments inside a multi-line top-level declaration were dropped."""
    text = 'msl 1.0\ndata d = [\n  "a",  # first\n  # between\n  "b",\n]  # after\n'
    assert fmt(text) == 'msl 1.0\n\n# first\n# between\ndata d = ["a", "b"]  # after\n'


def test_comments_inside_a_multi_line_statement_move_before_it() -> None:
    text = 'msl 1.0\nverify c {\n  expect f(1,  # one\n    2) > 0  # two\n}\n'
    assert fmt(text) == 'msl 1.0\n\nverify c {\n  # one\n  expect f(1, 2) > 0  # two\n}\n'


def test_strings_are_printed_as_json() -> None:
    assert (
        fmt('msl 1.0\nlet s = "\\u00e9\\t\\"q\\"\\\\ \\u0007"\n').splitlines()[-1]
        == 'let s = "é\\t\\"q\\"\\\\ \\u0007"'
    )


# ── The CLI ──────────────────────────────────────────────────────────────────────────────


def test_cli_check_diff_and_rewrite(tmp_path: Path) -> None:
    messy = tmp_path / "messy.msl"
    messy.write_text("msl 1.0\nlet  x=1 # c\n", encoding="utf-8")
    tidy = tmp_path / "tidy.msl"
    tidy.write_text("msl 1.0\n\nlet x = 1\n", encoding="utf-8")
    broken = tmp_path / "broken.msl"
    broken.write_text("msl 1.0\nlet x = \n", encoding="utf-8")

    result, _ = run_cli("fmt", "--check", "tidy.msl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result, _ = run_cli("fmt", "--check", "--diff", "messy.msl", "tidy.msl", cwd=tmp_path)
    assert result.returncode == 1
    assert " msl 1.0\n-let  x=1 # c\n+\n+let x = 1  # c\n" in result.stdout
    assert "would reformat messy.msl" in result.stderr
    assert messy.read_text(encoding="utf-8") == "msl 1.0\nlet  x=1 # c\n"  # --check changes nothing
    result, _ = run_cli("fmt", "--diff", "messy.msl", cwd=tmp_path)
    assert result.returncode == 1 and "+let x = 1  # c" in result.stdout
    assert messy.read_text(encoding="utf-8") == "msl 1.0\nlet  x=1 # c\n"  # nor does --diff

    result, _ = run_cli("fmt", "messy.msl", cwd=tmp_path)
    assert result.returncode == 0
    assert messy.read_text(encoding="utf-8") == "msl 1.0\n\nlet x = 1  # c\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.msl", "messy.msl", "tidy.msl"]  # no temp left

    result, _ = run_cli("fmt", "broken.msl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("broken.msl:2:8: error: unexpected end of file")
    assert broken.read_text(encoding="utf-8") == "msl 1.0\nlet x = \n"


def test_the_corpus_is_canonical() -> None:
    result, _ = run_cli("fmt", "--check", str(CORPUS))
    assert result.returncode == 0, result.stderr
