"""Loading: which spec files a path names, and a root spec with the files it imports.

Every file read stays inside the folder being checked (links resolved); parse results are
shared by the specs of one run, so a file imported by many is read once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from msl import ast
from msl.errors import MslError, SpecError, SpecErrors
from msl.parse import Parsed, parse_file
from msl.source import INSIDE_HINT, confined, not_read


def display_path(path: Path) -> str:
    """A path as diagnostics show it: relative to the working directory when inside it.

    Links are not resolved: a diagnostic names the file as the user reached it, never
    where a link leads.
    """
    try:
        return str(Path(os.path.normpath(path.absolute())).relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside the working directory; the working directory is gone
        return str(path)


#: One spec may import at most this many files (directly or not): real specs import a
#: handful, and a hostile chain of thousands must stay cheap to reject.
MAX_IMPORTS = 100

#: Parse results by resolved path, shared by the specs of one `msl lint` run so that a
#: file imported by many specs is read once.
ParseCache = dict[Path, "Parsed | SpecErrors"]


def _parse_cached(path: Path, cache: ParseCache, folder: Path) -> Parsed | SpecErrors:
    # the folder is checked before the cache is asked: a file parsed for one folder
    # must not be handed to a spec under another through a link
    try:
        key = confined(path, folder)
    except ValueError as exc:
        return SpecErrors([not_read(display_path(path), exc)])
    if key not in cache:
        try:
            cache[key] = parse_file(path, display_path(path), folder)
        except SpecErrors as exc:
            cache[key] = exc
    return cache[key]


def load_modules(
    root: Path, cache: ParseCache | None = None, folder: Path | None = None
) -> tuple[Parsed, dict[Path, Parsed], list[MslError]]:
    """Parse ``root`` and, depth-first, every file it imports; report cycles.

    Every file read must lie inside ``folder`` (by default the root spec's own), links
    resolved. The walk keeps its own stack (an import chain is as long as a hostile
    folder makes it) and returns the modules imported-first, so declarations resolve in
    order.
    """
    cache = {} if cache is None else cache
    folder = root.parent if folder is None else folder
    parsed = _parse_cached(root, cache, folder)
    if isinstance(parsed, SpecErrors):
        raise parsed
    root_key = root.resolve()
    modules: dict[Path, Parsed] = {root_key: parsed}
    errors: list[MslError] = []
    order: list[Path] = []
    failed: set[Path] = set()
    stack: list[tuple[Path, Path, Iterator[ast.Import]]] = [(root_key, root, iter(parsed.module.imports))]
    while stack:
        key, path, pending = stack[-1]
        imp = next(pending, None)
        if imp is None:
            stack.pop()
            order.append(key)
            continue
        target = _import_target(path, imp, errors, folder)
        if target is None:
            continue
        target_key = target.resolve()
        chain = [frame[0] for frame in stack]
        if target_key in chain:
            cycle = " → ".join(display_path(p) for p in chain[chain.index(target_key):] + [target_key])
            errors.append(
                SpecError(f"import cycle: {cycle}", imp.span, hint="a file cannot import itself, even through others")
            )
            continue
        if target_key in modules or target_key in failed:
            continue
        if len(modules) >= MAX_IMPORTS:
            errors.append(SpecError(f"this spec imports more than {MAX_IMPORTS} files", imp.span))
            break
        result = _parse_cached(target, cache, folder)
        if isinstance(result, SpecErrors):
            errors.extend(result.errors)
            failed.add(target_key)
            continue
        modules[target_key] = result
        stack.append((target_key, target, iter(result.module.imports)))
    return parsed, {k: modules[k] for k in order}, errors


def _import_target(importer: Path, imp: ast.Import, errors: list[MslError], folder: Path) -> Path | None:
    target = Path(imp.path)
    if target.is_absolute():
        errors.append(SpecError("imports are relative to the importing file", imp.span))
        return None
    if target.suffix != ".msl":
        errors.append(SpecError("only .msl files can be imported", imp.span, hint="MSL never imports code"))
        return None
    resolved = importer.parent / target
    outside = _outside(resolved, folder, "import")
    if outside is not None:
        errors.append(SpecError(outside, imp.span, hint=INSIDE_HINT))
        return None
    if not resolved.is_file():
        errors.append(SpecError(f"no file {imp.path!r} to import", imp.span))
        return None
    return resolved


def _outside(path: Path, folder: Path, what: str) -> str | None:
    """Why ``path`` (named by an `import` or `preserves`) may not be read, or None."""
    try:
        confined(path, folder)
    except ValueError as exc:
        return f"this {what} is not read: {exc}"
    return None


def iter_specs(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Every .msl file named, or found under a named folder, in a stable order, each
    with the folder it was found in: the one its reads must stay inside (the folder
    named, or a named file's own folder)."""
    for path in paths:
        if path.is_dir():
            yield from ((p, path) for p in sorted(p for p in path.rglob("*.msl") if p.is_file() or p.is_symlink()))
        else:
            yield path, path.parent
