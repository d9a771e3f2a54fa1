"""pytest plugin: every claim of every `.msl` file is a test item.

``pytest specs/`` collects the claims; the first item to run checks every collected claim
together (one batched, cached run, as ``msl check`` would), and each item then reports its
claim's verdict: ``proved``/``holds`` pass, ``violated``/``refuted`` and ``error`` fail with
the finding's evidence in the message, ``inconclusive`` is skipped (a failure with
``--msl-strict``). Options: ``--msl-model ROLE=REF`` (repeatable), ``--msl-seed N``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msl.errors import errors_in


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("msl", "MSL specs")
    group.addoption("--msl-model", action="append", default=[], metavar="ROLE=REF", help="bind a model role")
    group.addoption("--msl-seed", type=int, default=0, help="seed for samples and searches")
    group.addoption("--msl-strict", action="store_true", help="inconclusive claims fail")


def pytest_configure(config: pytest.Config) -> None:
    """Check ``--msl-model`` once, before anything is collected, as ``msl check`` does: a
    malformed binding is a usage error, not an error repeated on every item."""
    _bindings(config)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """A binding for a role no collected spec declares is a usage error (a typo would
    otherwise leave the role on its default model, silently)."""
    specs = {id(i.spec): i.spec for i in items if isinstance(i, ClaimItem)}
    if not specs:
        return
    roles = {role for spec in specs.values() for role in spec.roles}
    for role in _bindings(config):
        if role not in roles:
            raise pytest.UsageError(
                f"--msl-model {role}=…: no collected spec declares a model role `{role}` "
                f"(roles: {', '.join(sorted(roles)) or 'none'})"
            )


def _bindings(config: pytest.Config) -> dict[str, str]:
    """``--msl-model ROLE=REF`` options as a dict; :class:`pytest.UsageError` when malformed."""
    out: dict[str, str] = {}
    for value in config.getoption("msl_model") or []:
        role, sep, ref = value.partition("=")
        if not sep or not role or not ref:
            raise pytest.UsageError(f"--msl-model {value!r} is not ROLE=REF (e.g. lm=smollm2-135m)")
        out[role] = ref
    return out


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".msl":
        return SpecFile.from_parent(parent, path=file_path)
    return None


class SpecFile(pytest.File):
    """A spec; its items are its claims (a spec with errors is one failing item)."""

    def collect(self) -> Iterator[pytest.Item]:
        from msl.pipeline import any_errors, check_and_lint

        specs, problems = check_and_lint([self.path], _bindings(self.config), _folder(self.config, self.path))
        if any_errors(problems):  # a warning does not stop the claims
            # a spec that did not check shows its warnings too, one that did not lint only its errors
            yield SpecErrorItem.from_parent(self, name="spec", errors=errors_in(problems) if specs else problems)
            return
        (spec,) = specs
        for claim in spec.claims:
            yield ClaimItem.from_parent(self, name=claim.name, spec=spec, claim=claim)


def _folder(config: pytest.Config, path: Path) -> Path:
    """The folder a collected spec's reads must stay inside, as for ``msl check``: the
    deepest folder named on pytest's command line that holds it (for a named file, its
    folder), else pytest's rootdir."""
    here = config.invocation_params.dir
    named = [here / arg.split("::", 1)[0] for arg in config.args]
    folders = [p if p.is_dir() else p.parent for p in named]
    holding = [f for f in folders if path.absolute().is_relative_to(f.absolute())]
    return max(holding, key=lambda f: len(f.absolute().parts), default=config.rootpath)


class SpecErrorItem(pytest.Item):
    def __init__(self, *, errors: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = errors

    def runtest(self) -> None:
        raise SpecFailure("\n".join(e.render() for e in self.errors))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: spec errors"


class SpecFailure(Exception):
    """A claim's verdict, or a spec's errors, as a test failure."""


class ClaimItem(pytest.Item):
    def __init__(self, *, spec: Any, claim: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.claim = claim

    def runtest(self) -> None:
        from msl.reporters.describe import verdict_line
        from msl.reporters.text import finding_details

        finding = _session_findings(self.session)[(str(self.spec.path), self.claim.name)]
        strict = self.config.getoption("msl_strict")
        if finding.verdict.value in ("proved", "holds"):
            return
        if finding.verdict.value == "inconclusive" and not strict:
            pytest.skip(f"inconclusive: {verdict_line(finding)}")
        raise SpecFailure(f"{finding.claim.file}:{finding.claim.line}: {finding_details(finding).plain}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.claim.claim.span.line - 1, f"{self.claim.kind} {self.claim.name}"


_FINDINGS = pytest.StashKey[dict[tuple[str, str], Any]]()


def _session_findings(session: pytest.Session) -> dict[tuple[str, str], Any]:
    """Check every collected claim at once, the first time any claim item runs."""
    if _FINDINGS in session.stash:
        return session.stash[_FINDINGS]
    from msl.run import Runner, RunOptions

    config = session.config
    bindings = _bindings(config)
    items = [i for i in session.items if isinstance(i, ClaimItem)]
    specs: dict[str, Any] = {}
    wanted: dict[str, set[str]] = {}
    for item in items:
        specs[str(item.spec.path)] = item.spec
        wanted.setdefault(str(item.spec.path), set()).add(item.claim.name)
    runner = Runner(RunOptions(seed=config.getoption("msl_seed"), bindings=bindings, progress=False))
    findings: dict[tuple[str, str], Any] = {}
    runs = []
    for key, spec in specs.items():
        claims = [c for c in spec.claims if c.name in wanted[key]]
        runs.append((key, spec, runner.runs_for(spec, claims)))
    runner.drive([r for _, _, rs in runs for r in rs])
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for key, spec, rs in runs:
        for run in rs:
            findings[(key, run.claim.name)] = runner.finding(spec, run, run.seconds, now)
    session.stash[_FINDINGS] = findings
    return findings
