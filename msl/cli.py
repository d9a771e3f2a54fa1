"""The ``msl`` command line: check, lint, fmt, replay, vnnlib, schema, catalog.

Each command is a thin shell over one pipeline stage. Every :class:`~msl.errors.MslError`
is rendered as ``file:line:col: message`` with the exit code of the brief's contract;
no Python traceback reaches the user.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from msl import __version__
from msl.errors import ExitCode, MslError, Severity, SpecErrors

EXAMPLES = """
\b
Examples:
  msl check specs/                        check every claim in every .msl file
  msl check specs/verify_lm.msl --model lm=./my-checkpoint
  msl check specs/ --format sarif -o msl.sarif --select tag:fairness
  msl lint specs/                         parse and check specs without running models
  msl fmt --check specs/                  is every spec canonically formatted?
  msl replay findings.json                re-check another lab's findings on your model
  msl vnnlib net.onnx prop.vnnlib --timeout 116
  msl schema > findings.schema.json
"""


def _guarded(fn: Callable[..., int]) -> Callable[..., None]:
    """Run a command body; turn MSL errors into rendered diagnostics and exit codes."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except SpecErrors as exc:
            for err in exc.errors:
                click.echo(err.render(), err=True)
            code = max(e.exit_code for e in exc.errors)
        except MslError as exc:
            click.echo(exc.render(), err=True)
            code = exc.exit_code
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            code = 130
        sys.exit(int(code))

    return wrapper


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="msl")
def cli() -> None:
    """MSL, the Model Specification Language: state claims about how trained models
    behave (verify, explore, steer, refine) and check them against the real model."""


def _paths_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))(fn)


def _report(problems: list[MslError]) -> None:
    """Print diagnostics in file order, errors and warnings together, to stderr."""
    for problem in sorted(problems, key=_location):
        click.echo(problem.render(), err=True)


def _location(e: MslError) -> tuple[str, int, int]:
    return (e.span.file, e.span.line, e.span.column) if e.span else ("", 0, 0)


@cli.command()
@_paths_argument
@_guarded
def lint(paths: tuple[Path, ...]) -> int:
    """Parse and check specs without running any model.

    Reports syntax and type errors, names unknown across imports, measurements used on
    the wrong kind of model, percent/fraction mix-ups, and — with z3 — expectations that
    contradict each other or can never fail. Exit 0 when clean (warnings allowed), 2 on
    any error.

    \b
    Example:
      msl lint specs/
    """
    from msl.check import any_errors, check_paths
    from msl.lint import lint_spec

    specs, problems = check_paths(list(paths))
    for spec in specs:
        problems.extend(lint_spec(spec))
    _report(problems)
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    warnings = len(problems) - errors
    click.echo(f"{len(specs)} spec(s) checked: {errors} error(s), {warnings} warning(s)", err=True)
    return ExitCode.USAGE if any_errors(problems) else ExitCode.OK


@cli.command()
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.option("--diff", is_flag=True, help="Show what would change as a unified diff.")
@_paths_argument
@_guarded
def fmt(paths: tuple[Path, ...], check_only: bool, diff: bool) -> int:
    """Rewrite specs in the canonical layout (comments are kept).

    Formatting never changes what a spec means, and formatting twice changes nothing.
    Files are replaced atomically. Exit 0, 1 when --check finds a file to change, 2 on
    a file that does not parse.

    \b
    Examples:
      msl fmt specs/
      msl fmt --check specs/        # in CI
    """
    import difflib

    from msl.check import display_path, iter_specs
    from msl.fmt import format_parsed
    from msl.parse import parse_file

    changed, broken = 0, 0
    for path in iter_specs(list(paths)):
        try:
            parsed = parse_file(path, display_path(path))
        except SpecErrors as exc:
            _report(list(exc.errors))
            broken += 1
            continue
        formatted = format_parsed(parsed)
        if formatted == parsed.source.text:
            continue
        changed += 1
        if diff:
            click.echo("".join(difflib.unified_diff(
                parsed.source.text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                parsed.source.name, parsed.source.name + " (formatted)",
            )))
        if check_only:
            click.echo(f"would reformat {parsed.source.name}", err=True)
        else:
            _write_atomic(path, formatted)
            click.echo(f"reformatted {parsed.source.name}", err=True)
    if broken:
        return ExitCode.USAGE
    return ExitCode.FAILED if check_only and changed else ExitCode.OK


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a crash never leaves half a file."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@cli.command()
@click.argument("net", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("prop", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=116.0, show_default=True, help="Seconds before answering timeout.")
@_guarded
def vnnlib(net: Path, prop: Path, timeout: float) -> int:
    """VNN-COMP-style run of one ONNX network against one VNN-LIB property.

    Prints `sat`, `unsat`, `unknown` or `timeout` on the first line; for `sat`, the
    witness as `((X_0 v) ... (Y_0 v) ...)`, replayed through onnxruntime first.
    """
    from msl.engines.formal.vnnlib import run_vnnlib

    answer = run_vnnlib(net, prop, timeout)
    click.echo(answer.render())
    return ExitCode.OK


def main() -> None:
    cli(prog_name="msl")
