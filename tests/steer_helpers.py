"""Running specs on the session's smollm2 in tests, without the user's result cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msl.cache import ResultCache
from msl.findings import Finding, FindingsDocument
from msl.pipeline import any_errors, check_paths
from msl.plan import Planner
from msl.run import Runner, RunOptions

SPECS = Path(__file__).resolve().parent.parent / "specs"


def runner(model: Any, *, cache: Path | None = None, **options: Any) -> Runner:
    """A runner on the already loaded ``model`` (as role ``smollm2-135m``), with no disk
    cache unless ``cache`` names one."""
    run = Runner(RunOptions(cache=False, progress=False, **options))
    if cache is not None:
        run.planner = Planner(ResultCache(cache))
    run._models[("smollm2-135m", "causal_lm")] = model
    return run


def check(run: Runner, path: Path) -> FindingsDocument:
    specs, problems = check_paths([path])
    assert not any_errors(problems), [p.render() for p in problems]
    return run.check(specs)


def write_spec(folder: Path, body: str, name: str = "spec.msl") -> Path:
    path = folder / name
    path.write_text('msl 1.0\n\nmodel lm: causal_lm = "smollm2-135m"\n\n' + body, encoding="utf-8")
    return path


def by_name(doc: FindingsDocument) -> dict[str, Finding]:
    return {f.claim.name: f for f in doc.findings}


def table(finding: Finding, title_start: str) -> Any:
    found = [t for t in finding.tables if t.title.startswith(title_start)]
    assert found, [t.title for t in finding.tables]
    return found[0]
