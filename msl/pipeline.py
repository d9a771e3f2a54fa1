"""The pipeline every entry point shares: load → check → lint, then run → report.

``msl check``, ``msl lint`` and the pytest plugin all get their specs and diagnostics
from :func:`check_and_lint`, so a spec is refused, warned about and quoted the same way
wherever it is checked; running the claims is :class:`msl.run.Runner`'s, reporting the
findings :mod:`msl.reporters`'.
"""

from __future__ import annotations

from pathlib import Path

from msl.check import check_file
from msl.errors import MslError, Severity, SpecError, SpecErrors, quote_lines
from msl.ir import CheckedSpec
from msl.lint import lint_models, lint_spec
from msl.load import ParseCache, display_path, iter_specs
from msl.source import Span


def check_and_lint(
    paths: list[Path], bindings: dict[str, str] | None = None, folder: Path | None = None
) -> tuple[list[CheckedSpec], list[MslError]]:
    """Every spec under ``paths`` checked, then linted (``bindings`` are the command
    line's ``ROLE=REF``): the specs without errors, and every error and warning found,
    each once, quoting its line."""
    specs, problems = check_paths(paths, folder)
    for spec in specs:
        found = lint_spec(spec) + lint_models(spec, bindings)
        quote_lines(found, spec.sources())
        problems.extend(found)
    return specs, _unique(problems)  # a binding is checked once per spec declaring its role


def check_paths(paths: list[Path], folder: Path | None = None) -> tuple[list[CheckedSpec], list[MslError]]:
    """Check every spec under ``paths``; errors of one file do not stop the others. Each
    spec's reads stay inside the folder it was found in, or ``folder`` when given."""
    specs: list[CheckedSpec] = []
    problems: list[MslError] = []
    cache: ParseCache = {}
    for root in paths:
        where = Span.point(display_path(root))
        if not root.exists():
            problems.append(SpecError(f"no such file or folder: {root}", where))
            continue
        found = list(iter_specs([root]))
        if not found:  # a CI job pointed at the wrong folder would otherwise pass silently
            problems.append(SpecError(f"no .msl files under {root}", where, severity=Severity.WARNING))
        for path, found_in in found:
            try:
                spec = check_file(path, cache=cache, folder=folder or found_in)
            except SpecErrors as exc:
                problems.extend(exc.errors)
                continue
            specs.append(spec)
            problems.extend(spec.warnings)
    return specs, _unique(problems)


def _unique(problems: list[MslError]) -> list[MslError]:
    """Each diagnostic once: a file imported by several specs is reported with each."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for p in problems:
        key = (p.span, p.message, p.severity)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def any_errors(problems: list[MslError]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)
