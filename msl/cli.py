"""The ``msl`` command line: check, lint, fmt, replay, vnnlib, schema, catalog.

Each command is a thin shell over one pipeline stage. Every :class:`~msl.errors.MslError`
is rendered as ``file:line:col: message`` with the exit code of the brief's contract;
no Python traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from msl import __version__
from msl.defaults import DEFAULT_BASELINE, DEFAULT_CATALOG, DEFAULT_REASON, ENV_VAR
from msl.errors import ExitCode, MslError, Severity, SpecErrors, UsageError
from msl.source import Span

if TYPE_CHECKING:
    from rich.console import Console

# Everything else (findings and pydantic, the reporters and rich, the catalogue, the engines,
# torch) is imported by the command that uses it, so that `msl vnnlib` and `msl --help` start
# without it: tests/test_startup.py holds the line.

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
  msl lsp                                 the language server, for editors (docs/editors.md)
"""


class _LazyChoice(click.Choice):
    """A :class:`click.Choice` whose choices are loaded when first needed (help, parsing), so
    that declaring ``--format`` or ``--verdict`` does not import the findings and reporters."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._loaded: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._loaded is None:
            self._loaded = tuple(self._load())
        return self._loaded

    @choices.setter
    def choices(self, value: Iterable[str]) -> None:
        self._loaded = tuple(value) or None  # click.Choice.__init__ sets () here: still to load


def _formats() -> list[str]:
    from msl.reporters import formats

    return formats()


def _claim_kinds() -> list[str]:
    from msl.findings import ClaimKind

    return [k.value for k in ClaimKind]


def _verdicts() -> list[str]:
    from msl.findings import Verdict

    return [v.value for v in Verdict]


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
        except Exception as exc:  # a bug in MSL: one line, the traceback only on request
            if os.environ.get("MSL_DEBUG"):
                raise
            click.echo(f"internal error (a bug in MSL, please report it): {type(exc).__name__}: {exc}", err=True)
            click.echo("  hint: run again with MSL_DEBUG=1 to see the traceback", err=True)
            code = ExitCode.RUNTIME
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


def _require_specs(specs: list[Any], problems: list[MslError], paths: tuple[Path, ...]) -> None:
    """No spec at all under the paths given is a usage error: a CI job pointed at the
    wrong folder would otherwise pass with nothing checked."""
    if not specs and not any(p.severity is Severity.ERROR for p in problems):
        raise UsageError(
            f"no spec found: no .msl file under {', '.join(str(p) for p in paths)}",
            Span.point(str(paths[0])),
            hint="give .msl files, or folders that hold some",
        )


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
    from msl.pipeline import any_errors, check_and_lint

    specs, problems = check_and_lint(list(paths))
    _report(problems)
    _require_specs(specs, problems, paths)
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    warnings = len(problems) - errors
    click.echo(f"{len(specs)} spec(s) checked: {errors} error(s), {warnings} warning(s)", err=True)
    return ExitCode.USAGE if any_errors(problems) else ExitCode.OK


@cli.command()
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.option(
    "--diff",
    is_flag=True,
    help="Show what would change as a unified diff; change nothing (exit 1 if a file would change).",
)
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

    from msl.fmt import format_parsed
    from msl.jsonio import write_text_atomic
    from msl.load import display_path, iter_specs
    from msl.parse import parse_file

    check_only = check_only or diff
    changed, broken = 0, 0
    for path, folder in iter_specs(list(paths)):
        try:
            parsed = parse_file(path, display_path(path), folder)
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
            write_text_atomic(path, formatted, mode=path.stat().st_mode & 0o777)  # keep its permissions
            click.echo(f"reformatted {parsed.source.name}", err=True)
    if broken:
        return ExitCode.USAGE
    return ExitCode.FAILED if check_only and changed else ExitCode.OK


def _check_select(patterns: tuple[str, ...], claims: list[Any]) -> None:
    """A ``--select`` pattern that matches no claim is a mistake (a typo in a CI job would
    otherwise pass with nothing checked): a usage error naming the closest claim names."""
    import difflib

    from msl.run import selected

    for pattern in patterns:
        if not any(selected(c, (pattern,)) for c in claims):
            names = sorted({c.name for c in claims} | {f"tag:{t}" for c in claims for t in c.tags})
            close = difflib.get_close_matches(pattern, names, n=3)
            raise UsageError(
                f"--select {pattern}: no claim matches",
                hint=f"did you mean {', '.join(close)}?" if close else "patterns: NAME-GLOB, kind:KIND, tag:TAG",
            )


@cli.command()
@click.argument("net", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("prop", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=116.0, show_default=True, help="Seconds before answering timeout.")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="For an unsat, also write its proof certificate (gzip JSON) to FILE; check it with `msl certify`.")
@_guarded
def vnnlib(net: Path, prop: Path, timeout: float, certificate: Path | None) -> int:
    """VNN-COMP-style run of one ONNX network against one VNN-LIB property.

    Prints `sat`, `unsat`, `unknown` or `timeout` on the first line; for `sat`, the
    witness as `((X_0 v) ... (Y_0 v) ...)`, replayed through onnxruntime first. The answer
    comes within the timeout + 1 s of the process start (the search is killed otherwise);
    stderr says the search's peak memory.
    """
    from msl.engines.formal.runtime import process_age
    from msl.engines.formal.vnnlib import answer_by

    answer = answer_by(
        net,
        prop,
        timeout,
        process_age() if _AS_PROCESS else 0.0,
        hard=_AS_PROCESS,
        certificate=certificate is not None,
    )
    click.echo(answer.render())
    if answer.reason:
        click.echo(f"reason: {answer.reason}", err=True)
    if answer.peak_rss_bytes is not None:
        click.echo(f"peak memory: {answer.peak_rss_bytes / 2**20:.0f} MiB", err=True)
    if certificate is not None and answer.status == "unsat":
        if answer.certificate is None:
            click.echo("no certificate: this proof records none (a file of several properties, constraints mixing "
                       "inputs and outputs, or ReLU splitting)", err=True)
        else:
            from msl.certify import encode
            from msl.jsonio import write_bytes_atomic

            write_bytes_atomic(certificate, encode(answer.certificate)[1])  # type: ignore[arg-type]
            click.echo(f"certificate written to {certificate}", err=True)
    if _AS_PROCESS:
        # The answer is out: end now rather than after the interpreter's teardown, which on a
        # loaded machine can take a good part of the second the deadline allows.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.OK)
    return ExitCode.OK


# ── Findings: schema, report, baseline, catalogue ───────────────────────────────────────


@cli.command(short_help="Print the JSON Schema of findings files.")
@click.option("--certificate", "certificate", is_flag=True, help="Print the schema of proof certificates instead.")
@_guarded
def schema(certificate: bool) -> int:
    """Print the JSON Schema of findings files (what `msl check --format json` writes), or
    with --certificate of proof certificates (what `msl certify` checks)."""
    if certificate:
        from msl.certify import certificate_json_schema

        click.echo(json.dumps(certificate_json_schema(), indent=2, ensure_ascii=False))
        return ExitCode.OK
    from msl.findings import findings_json_schema

    click.echo(json.dumps(findings_json_schema(), indent=2, ensure_ascii=False))
    return ExitCode.OK


@cli.command(short_help="Render a findings file as text, JSON, JUnit, SARIF or HTML.")
@click.argument("findings_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=_LazyChoice(_formats), default="text", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option(
    "--baseline", type=click.Path(dir_okay=False, path_type=Path), help="Mark the findings it lists as accepted."
)
@click.option("--strict", is_flag=True, help="Report inconclusive claims as failures.")
@_guarded
def report(findings_file: Path, fmt: str, output: Path | None, baseline: Path | None, strict: bool) -> int:
    """Render a findings file in another format (text, JUnit, SARIF, HTML) without
    running any model. The file is validated first; nothing in it is trusted."""
    from msl.baseline import apply_baseline, load_baseline
    from msl.findings import load_findings
    from msl.reporters import write_report

    doc = load_findings(findings_file)
    if baseline is not None:
        doc = apply_baseline(doc, load_baseline(baseline))
    write_report(doc, fmt, output, strict=strict)
    return ExitCode.OK


@cli.command("baseline", short_help="Accept the violations of a findings file into a baseline.")
@click.argument("findings_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_BASELINE, show_default=True,
    help="The baseline file to create or update.",
)
@click.option("--reason", default=DEFAULT_REASON, show_default=True, help="Why these violations are accepted.")
@click.option("--strict", is_flag=True, help="Accept inconclusive claims too.")
@click.option("--prune", is_flag=True, help="Drop entries whose finding is not in FINDINGS_FILE.")
@_guarded
def baseline_cmd(findings_file: Path, output: Path, reason: str, strict: bool, prune: bool) -> int:
    """Accept the current violations of a findings file into a baseline, so that
    `msl check --baseline FILE` reports them as accepted instead of failing."""
    from msl.baseline import load_baseline, update_baseline, write_baseline
    from msl.findings import load_findings

    doc = load_findings(findings_file)
    old = load_baseline(output) if output.exists() else None
    new = update_baseline(doc, old, reason=reason, strict=strict, prune=prune)
    write_baseline(new, output)
    added = len(new.ids - (old.ids if old else frozenset()))
    click.echo(f"{output}: {len(new.accepted)} accepted findings ({added} new)")
    return ExitCode.OK


def _catalog_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--catalog", "catalog_file", type=click.Path(dir_okay=False, path_type=Path),
        help=f"Catalogue database (default: ${ENV_VAR}, else {DEFAULT_CATALOG}).",
    )(fn)


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO date or time; a bare date given to --until means the end of that day."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO date or time, e.g. 2025-03-01 or 2025-03-01T12:00") from None
    try:
        if param.name == "until" and len(value) == len("2025-03-01"):
            moment += timedelta(days=1)
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # the catalogue compares times in UTC
    except OverflowError:
        # past either end of the calendar (9999-12-31, or year 1 in a zone east of UTC):
        # the earliest or latest time there is, which every stored time is after or before
        moment = (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
    return moment


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 120)


@cli.group()
def catalog() -> None:
    """The local catalogue of findings, models and datasets (SQLite)."""


@catalog.command("add")
@click.argument("findings_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_catalog_option
@_guarded
def catalog_add(findings_files: tuple[Path, ...], catalog_file: Path | None) -> int:
    """Store findings files (validated first) in the catalogue."""
    from msl.catalog import Catalog
    from msl.findings import load_findings

    docs = [load_findings(path) for path in findings_files]
    with Catalog(catalog_file) as cat:
        results = [cat.add(doc) for doc in docs]
        click.echo(
            f"{cat.path}: added {sum(r.added for r in results)} findings "
            f"({sum(r.already_present for r in results)} already present)"
        )
    return ExitCode.OK


@catalog.command("list")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@_catalog_option
@_guarded
def catalog_list(limit: int, catalog_file: Path | None) -> int:
    """The most recent findings."""
    from msl.catalog import Catalog
    from msl.reporters.text import catalog_table

    with Catalog(catalog_file) as cat:
        _console().print(catalog_table(cat.latest(limit)))
    return ExitCode.OK


@catalog.command("show")
@click.argument("finding_id")
@click.option("--json", "as_json", is_flag=True, help="Print the finding as JSON.")
@_catalog_option
@_guarded
def catalog_show(finding_id: str, as_json: bool, catalog_file: Path | None) -> int:
    """One finding, by its id or a unique prefix of it (at least 6 hex digits)."""
    from msl.catalog import Catalog
    from msl.reporters.text import finding_details, finding_table

    with Catalog(catalog_file) as cat:
        finding = cat.show(finding_id)
    if as_json:
        click.echo(finding.model_dump_json(indent=2))
    else:
        console = _console()
        console.print(finding_table(finding))
        console.print(finding_details(finding), soft_wrap=True)
    return ExitCode.OK


@catalog.command("search")
@click.option("--model", help="A model reference, fingerprint, or fingerprint prefix (sha256:1234abcd…).")
@click.option("--kind", "kinds", multiple=True, type=_LazyChoice(_claim_kinds), help="Claim kind (repeatable).")
@click.option("--verdict", "verdicts", multiple=True, type=_LazyChoice(_verdicts), help="Verdict (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Claim tag (repeatable; any matches).")
@click.option("--claim", help="Claim name.")
@click.option("--since", callback=_moment, help="Runs started at or after this ISO date/time.")
@click.option("--until", callback=_moment, help="Runs started before this ISO time, or on or before this date.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many findings.")
@_catalog_option
@_guarded
def catalog_search(
    model: str | None,
    kinds: tuple[str, ...],
    verdicts: tuple[str, ...],
    tags: tuple[str, ...],
    claim: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    catalog_file: Path | None,
) -> int:
    """Findings matching every filter given, most recent first."""
    from msl.catalog import Catalog
    from msl.reporters.text import catalog_table

    with Catalog(catalog_file) as cat:
        entries = cat.search(
            model=model, kinds=kinds, verdicts=verdicts, tags=tags, claim=claim, since=since, until=until, limit=limit
        )
    _console().print(catalog_table(entries))
    return ExitCode.OK


@catalog.command("models")
@_catalog_option
@_guarded
def catalog_models(catalog_file: Path | None) -> int:
    """The models (fingerprints and references) findings were recorded for."""
    from msl.catalog import Catalog
    from msl.reporters.text import models_table

    with Catalog(catalog_file) as cat:
        records = cat.models()
    _console().print(models_table(records))
    return ExitCode.OK


@catalog.command("datasets")
@_catalog_option
@_guarded
def catalog_datasets(catalog_file: Path | None) -> int:
    """The datasets (content hashes) findings were recorded for."""
    from msl.catalog import Catalog
    from msl.reporters.text import datasets_table

    with Catalog(catalog_file) as cat:
        records = cat.datasets()
    _console().print(datasets_table(records))
    return ExitCode.OK


def _binding(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        role, sep, ref = value.partition("=")
        if not sep or not role or not ref:
            raise click.BadParameter(f"{value!r} is not ROLE=REF (e.g. lm=smollm2-135m)")
        out[role] = ref
    return out


@cli.command()
@_paths_argument
@click.option("--format", "fmt", type=_LazyChoice(_formats), default=None,
              help="Also write the findings in this format (to -o, or to stdout).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the --format output (json when no --format is given).")
@click.option("--model", "bindings", multiple=True, callback=_binding, metavar="ROLE=REF",
              help="Bind a model role to a model: registry name, local path, HF id or .gguf file.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for samples, typos and searches.")
@click.option("--select", multiple=True, metavar="PATTERN",
              help="Only claims matching: a name glob, kind:verify, tag:fairness (repeatable).")
@click.option("--strict", is_flag=True, help="Inconclusive claims fail the run too (exit 1).")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Known violations accepted by finding id (see `msl baseline`).")
@click.option("--record", is_flag=True, help="Store the findings in the local catalogue.")
@_catalog_option
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Run model batches on N Ray workers (a local Ray runtime, or N workers on the --ray cluster).")
@click.option("--ray", "ray_address", envvar="RAY_ADDRESS", default=None, metavar="ADDRESS",
              help="Join the Ray cluster at ADDRESS (default: $RAY_ADDRESS) and run model batches on its workers.")
@click.option(
    "--vectors",
    "vectors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Use the steering vectors saved by an earlier run (FILE.vectors.safetensors) instead of computing them.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the final table.")
@click.option("-v", "--verbose", is_flag=True, help="Progress with a line per model batch group too.")
@_guarded
def check(
    paths: tuple[Path, ...], fmt: str | None, output: Path | None, bindings: dict[str, str], seed: int,
    select: tuple[str, ...], strict: bool, baseline_file: Path | None, record: bool, catalog_file: Path | None,
    dtype: str, device: str, no_cache: bool, workers: int | None, ray_address: str | None,
    vectors_file: Path | None, quiet: bool, verbose: bool,
) -> int:
    """Check every claim of the specs against the real models.

    Specs are linted first (exit 2 on any error). Claims then run together: every model
    query of every claim is batched, deduplicated and cached, so an unchanged re-run is
    near-instant. The verdicts: proved, refuted, holds, violated, inconclusive, error.

    Exit 0 when every claim is proved or holds (or is an accepted known violation), 1 when
    any is violated or refuted (inconclusive too with --strict), 2 for a usage or spec
    error, 3 when a model or runtime error left a claim unchecked.

    With -o FILE, the steering vectors the claims computed are saved beside it as
    FILE's stem + .vectors.safetensors (their hashes are in the findings); --vectors
    gives them back to a later run, which then uses them instead of computing.

    Progress goes to stderr: in a terminal, a bar over the claims with an ETA; in a CI
    log, a line per finished claim ("[12/56] name verdict 3.1 s", the claim's own time)
    and, during long model work, a line every 30 s saying what runs. -q shows only the
    final table; -v adds a line per model batch group.

    \b
    Examples:
      msl check specs/
      msl check specs/ --format sarif -o msl.sarif --select tag:fairness
      msl check specs/steer_lm.msl --model lm=./my-finetune --seed 3
      msl check specs/steer_lm.msl --vectors findings.vectors.safetensors
      msl check specs/ --workers 4            # model batches on 4 local Ray workers
    """
    from rich.console import Console

    from msl.baseline import apply_baseline, load_baseline
    from msl.catalog import Catalog
    from msl.findings import exit_code
    from msl.pipeline import any_errors, check_and_lint
    from msl.reporters import write_report
    from msl.run import Runner, RunOptions
    from msl.vectors import VectorFile, vectors_path

    if quiet and verbose:
        raise UsageError("-q and -v contradict each other", hint="give one of them")
    specs, problems = check_and_lint(list(paths), bindings)
    if problems:
        _report(problems)
    if any_errors(problems):
        return ExitCode.USAGE
    _require_specs(specs, problems, paths)
    roles = {role for spec in specs for role in spec.roles}
    for role in bindings:
        if role not in roles:
            raise UsageError(f"--model {role}=…: no spec declares a model role `{role}`",
                             hint=f"roles: {', '.join(sorted(roles)) or 'none'}")
    _check_select(select, [c for spec in specs for c in spec.claims])
    accepted = load_baseline(baseline_file) if baseline_file is not None else None
    pinned = VectorFile.load(vectors_file) if vectors_file is not None else None
    console = Console(stderr=True, quiet=quiet)
    runner = Runner(RunOptions(seed=seed, select=select, bindings=bindings, dtype=dtype, device=device,
                               cache=not no_cache, progress=not quiet, verbose=verbose, vectors=pinned,
                               workers=workers, ray_address=ray_address or None))
    doc = runner.check(specs)
    if accepted is not None:
        doc = apply_baseline(doc, accepted)
    write_report(doc, "text", strict=strict, stream=sys.stderr)
    if fmt is not None or output is not None:
        write_report(doc, fmt or "json", output, strict=strict)
    if output is not None and str(output) != "-" and runner.vectors:
        saved = VectorFile.of(runner.vectors)
        saved.save(vectors_path(output))
        console.print(f"{len(saved)} vector(s) saved to {vectors_path(output)}", markup=False, highlight=False)
    if output is not None and str(output) != "-" and runner.certificates:
        from msl.certify import certificates_dir, save

        for cert in runner.certificates:
            save(cert, certificates_dir(output))
        console.print(f"{len(runner.certificates)} proof certificate(s) saved to {certificates_dir(output)}/",
                      markup=False, highlight=False)
    if record:
        with Catalog(catalog_file) as cat:
            cat.add(doc)
    return exit_code(doc, strict=strict)


@cli.command()
@click.argument("findings_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "bindings", multiple=True, callback=_binding, metavar="ROLE=REF",
              help="Bind a model role to the local model to re-check on.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_guarded
def replay(findings_file: Path, bindings: dict[str, str], dtype: str, device: str, no_cache: bool, quiet: bool) -> int:
    """Re-check another lab's findings on the local models, instead of trusting them.

    The findings file is validated and size-limited; nothing in it runs. Each finding's
    claim is re-run from the local spec it names (a .msl file under the current
    directory), with the finding's seed and — when the file beside it holds them — the
    very steering vectors it used; its counterexamples are replayed first. Each
    finding is then reported as reproduced, not reproduced or not comparable (with
    warnings when the weights or data differ). Exit 0 when all reproduce, else 1.

    \b
    Example:
      msl replay their-findings.json --model lm=./our-copy-of-the-model
    """
    from msl.agreement import replay_exit_code
    from msl.findings import load_findings
    from msl.replay import replay as run_replay
    from msl.reporters.text import comparisons_table
    from msl.run import RunOptions
    from msl.vectors import VectorFile, vectors_path

    doc = load_findings(findings_file)
    saved = vectors_path(findings_file)  # the vectors the findings were made with, when shared
    vectors = VectorFile.load(saved) if saved.is_file() else None
    console = _console()
    doc, certificates_ok = _replay_by_certificate(doc, findings_file, bindings, console)
    result = run_replay(doc, RunOptions(bindings=bindings, dtype=dtype, device=device, cache=not no_cache,
                                        progress=not quiet, vectors=vectors))
    for problem in result.problems:
        console.print(f"not comparable: {problem}", markup=False)
    for c in result.comparisons:
        ok, tried = result.counterexamples.get(c.shared.id, (0, 0))
        if tried:
            console.print(
                f"{c.shared.claim.name}: {ok} of {tried} shared counterexample(s) fail here too", markup=False
            )
    if result.comparisons or not doc.findings:
        console.print(comparisons_table(result.comparisons))
    code = replay_exit_code(result.comparisons)
    return code if certificates_ok else ExitCode.FAILED


def _replay_by_certificate(doc: Any, findings_file: Path, bindings: dict[str, str], console: Any) -> tuple[Any, bool]:
    """Proved findings whose certificate is beside the findings file are checked by it (fast,
    no solver) instead of re-run; returns the findings left to re-run, and whether every
    certificate checked. A proof with a certificate that does not check is not reproduced."""
    from msl.certify import certificates_dir, check_finding
    from msl.findings import FindingsDocument

    if not certificates_dir(findings_file).is_dir():
        return doc, True
    ok = True
    rest = []
    for f in doc.findings:
        if f.verdict.value != "proved" or f.proof is None or f.proof.certificate is None:
            rest.append(f)
            continue
        report = check_finding(f, findings_file, bindings)
        ok = ok and report.certified
        verdict = "reproduced" if report.certified else "not reproduced"
        console.print(
            f"{f.claim.name}: {verdict} by its proof certificate (no solver run; "
            f"the property it states): {report.line()}",
            markup=False,
            highlight=False,
        )
    if len(rest) == len(doc.findings):
        return doc, ok
    return FindingsDocument.of(rest, msl_version=doc.msl_version), ok


@cli.command(short_help="Check proof certificates, independently of the engine.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "bindings", multiple=True, callback=_binding, metavar="ROLE=PATH",
              help="The ONNX file of a network role (default: the finding's model reference).")
@click.option("--network", "network", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="For a certificate file (msl vnnlib --certificate): the ONNX file it is about.")
@click.option("--vnnlib", "vnnlib_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="For a certificate file: the VNN-LIB property it must prove (else the one it states).")
@_guarded
def certify(file: Path, bindings: dict[str, str], network: Path | None, vnnlib_file: Path | None) -> int:
    """Check every proof certificate of a findings file (or one certificate file) against the
    network's ONNX file, with a checker that shares no bound code with the engine.

    Prints per proved finding `certified` or why not (which leaf, which bound, by how much).
    Exit 0 when all certify, 1 otherwise, 2 for unusable input.

    \b
    Examples:
      msl certify findings.json --model net=./net.onnx
      msl certify proof.json.gz --network net.onnx --vnnlib prop.vnnlib
    """
    from msl.certify import certify_command

    return certify_command(file, bindings, network, vnnlib_file, _console())


@cli.command()
@_guarded
def lsp() -> int:
    """Run the MSL language server over stdio (for editors).

    Diagnostics as `msl lint` gives them, updated as you type; hover, completion, go to
    definition, the outline and formatting. Editors start it themselves: see
    docs/editors.md for VS Code, Neovim and others. Needs pygls (`pip install 'msl[lsp]'`).
    """
    try:
        from msl.lsp import serve
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in ("pygls", "lsprotocol"):
            raise
        raise UsageError(f"`msl lsp` needs {missing}, which is not installed", hint="pip install 'msl[lsp]'") from None
    serve()
    return ExitCode.OK


#: True when this process is the ``msl`` command (not a test's CliRunner): its start-up then
#: counts against ``msl vnnlib --timeout``, as a harness timing it from outside sees it.
_AS_PROCESS = False


def main() -> None:
    global _AS_PROCESS
    _AS_PROCESS = True
    cli(prog_name="msl")
