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
from msl.errors import ExitCode, MslError, SpecErrors

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
