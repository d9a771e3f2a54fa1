"""Steering: vectors from contrastive prompts or files, and interventions at sites.

Sites are named the same way for every architecture — ``lm.resid_pre[l]``,
``lm.resid_post[l]``, ``lm.attn_out[l]``, ``lm.mlp_out[l]`` (negative ``l`` counts from
the end) — and token selectors are ``"last"``, ``"all"``, ``"from K"`` or a position.
A vector computed in a run is labelled by the declaration that made it, saved beside the
findings and its hash recorded, so another lab can replay the claim with the very same
vector; a run given saved vectors (``--vectors``) uses them instead of computing
(:mod:`msl.vectors`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msl import ast
from msl import queries as q
from msl.builtins import builtin
from msl.builtins.data import Report, literal, spec_relative_file
from msl.errors import MslError
from msl.types import Type
from msl.values import Context, DataSet, EvalError, InterventionValue, SiteRef, as_text
from msl.vectors import INDEX_KEY as VECTORS_INDEX

_FROM = re.compile(r"from\s+(-?\d+)")


def token_selector(value: Any) -> q.TokenSel:
    """``"last"``, ``"all"``, ``"from K"`` or an integer position, as the runtime's selector."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
        return q.TokenSel("index", int(value))
    if value in ("last", "all"):
        return q.TokenSel(value)
    m = _FROM.fullmatch(str(value).strip())
    if m:
        return q.TokenSel("from", int(m.group(1)))
    raise EvalError(f'bad token selector {value!r}: use "last", "all", "from K" or a position')


def _check_tokens(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("tokens")
    value = literal(node)
    if node is None or value is None:
        return
    try:
        token_selector(value)
    except EvalError as exc:
        report(exc.message, node.span)


def _site(site: SiteRef) -> q.Site:
    return q.Site(site.point, site.layer)


def _activations(ctx: Context, site: SiteRef, texts: DataSet, tokens: Any, then: Any) -> Any:
    """Captures of every text at one site, averaged over the selected tokens, stacked."""
    selector = token_selector(tokens)
    queries = [q.Capture(as_text(t), _site(site), selector) for t in texts]
    if not queries:
        raise EvalError("a contrastive set is empty")

    def stack(results: list[Any]) -> Any:
        rows = [np.asarray(r, np.float64).reshape(-1, np.asarray(r).shape[-1]).mean(axis=0) for r in results]
        return then(np.stack(rows))

    return ctx.query_all(site.model, queries, stack)


def labelled(ctx: Context, compute: Callable[[Callable[[np.ndarray], np.ndarray]], Any]) -> Any:
    """Make a vector under its label (see :mod:`msl.vectors`): the pinned one when the run
    was given it (nothing is computed), else ``compute(keep)``, which hands its result to
    ``keep``; either way it is saved with its hash beside the findings."""
    label = ctx.vector_label()

    def keep(vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, np.float32).ravel()
        if not np.all(np.isfinite(vector)):
            raise EvalError(f"vector {label}: not finite")
        ctx.save_vector(label, vector)
        return vector

    pinned = ctx.pinned(label)
    return keep(pinned) if pinned is not None else compute(keep)


@builtin(
    'mean_diff(at: site, positive: set[text], negative: set[text], tokens: tokens = "last") -> vector',
    validate=_check_tokens,
)
def mean_diff(ctx: Context, at: SiteRef, positive: DataSet, negative: DataSet, tokens: Any = "last") -> Any:
    """Mean activation on ``positive`` minus mean on ``negative`` at a site: a steering vector.

    ``mean_diff(lm.resid_post[6], love, hate)`` — saved beside the findings with its hash.
    """

    def compute(keep: Callable[[np.ndarray], np.ndarray]) -> Any:
        def finish(pos: np.ndarray) -> Any:
            return _activations(ctx, at, negative, tokens, lambda neg: keep(pos.mean(axis=0) - neg.mean(axis=0)))

        return _activations(ctx, at, positive, tokens, finish)

    return labelled(ctx, compute)


@builtin(
    'pca_diff(at: site, positive: set[text], negative: set[text], tokens: tokens = "last") -> vector',
    validate=_check_tokens,
)
def pca_diff(ctx: Context, at: SiteRef, positive: DataSet, negative: DataSet, tokens: Any = "last") -> Any:
    """First principal direction of the paired differences (positive[i] − negative[i]),
    signed to agree with their mean and scaled to the mean difference's norm — so it can
    replace ``mean_diff`` at the same scales."""
    if len(positive) != len(negative):
        raise EvalError(f"pca_diff pairs its sets: they have {len(positive)} and {len(negative)} items")
    if len(positive) < 2:
        raise EvalError("pca_diff needs at least two pairs")

    def compute(keep: Callable[[np.ndarray], np.ndarray]) -> Any:
        def finish(pos: np.ndarray) -> Any:
            return _activations(ctx, at, negative, tokens, lambda neg: keep(principal_direction(pos - neg)))

        return _activations(ctx, at, positive, tokens, finish)

    return labelled(ctx, compute)


def principal_direction(diffs: np.ndarray) -> np.ndarray:
    """The first principal direction of the rows (uncentred: the direction the pairs
    differ along), signed like their mean and as long as it."""
    mean = diffs.mean(axis=0)
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    v = vt[0] if float(vt[0] @ mean) >= 0 else -vt[0]
    return v * np.linalg.norm(mean)


def vector_path(spec_dir: Path, path: str) -> Path:
    """A vector file's path: a .safetensors file inside the spec's directory (specs are
    untrusted); raises ValueError otherwise."""
    try:
        return spec_relative_file(spec_dir, path, (".safetensors",), "vector")
    except ValueError:
        raise ValueError("vectors are .safetensors files inside the spec's directory") from None


def _check_vector_path(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    """The checker rejects a path outside the spec's directory before anything runs."""
    node = args.get("path")
    path = literal(node)
    if node is None or not isinstance(path, str):
        return
    try:
        vector_path(Path(node.span.file).parent, path)
    except ValueError as exc:
        report(str(exc), node.span)


@builtin('load_vector(path: str, key: str = "vector") -> vector', validate=_check_vector_path)
def load_vector(ctx: Context, path: str, key: str = "vector") -> Any:
    """A vector from a safetensors file next to the spec (never a pickle).

    ``key`` names a tensor of the file, or — in a vectors file that ``msl check -o``
    saved — the label of a vector (``load_vector("run.vectors.safetensors", key: "love")``).
    """

    def compute(keep: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        try:
            candidate = vector_path(ctx.spec_dir, path)
        except ValueError as exc:
            raise EvalError(str(exc)) from None
        return keep(_read_vector(candidate, path, key))  # its hash is in the finding's vectors

    return labelled(ctx, compute)


def _read_vector(file: Path, path: str, key: str) -> np.ndarray:
    from safetensors import safe_open

    from msl.vectors import MAX_BYTES, VectorFile

    try:
        if file.stat().st_size > MAX_BYTES:
            raise EvalError(f"{path} is larger than {MAX_BYTES:,} bytes")
        with safe_open(str(file), framework="numpy") as handle:
            keys = set(handle.keys())
            if key in keys:
                return np.asarray(handle.get_tensor(key), np.float32).ravel()
            labelled_file = VECTORS_INDEX in (handle.metadata() or {})
    except EvalError:
        raise
    except Exception as exc:
        raise EvalError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if labelled_file:
        try:
            pins = VectorFile.load(file).pins(path)  # labels the file gives one vector
        except MslError as exc:
            raise EvalError(f"{path}: {exc.message}") from None
        if key in pins:
            return pins[key]
        keys |= set(pins)
    raise EvalError(f"{path} has no vector {key!r}; it has {sorted(keys)[:20]}")


# ── Interventions ────────────────────────────────────────────────────────────────────────


def _intervention(at: SiteRef, op: Any, label: str) -> InterventionValue:
    return InterventionValue(at.model.role, q.Intervention((op,)), label)


def _vector(v: Any) -> q.Vector:
    array = np.asarray(v, np.float32).ravel()
    if not np.all(np.isfinite(array)):
        raise EvalError("an intervention vector is not finite")
    return q.Vector(array)


@builtin(
    'add(vector: vector, at: site, scale: number = 1, tokens: tokens = "all") -> intervention',
    validate=_check_tokens,
)
def add(ctx: Context, vector: Any, at: SiteRef, scale: float = 1, tokens: Any = "all") -> InterventionValue:
    """Add ``scale × vector`` to the activation at a site.

    Scale 0 is no intervention at all — the very queries of the unsteered model, so a
    dose–response starts from an effect of exactly zero, not a batching-noise one."""
    op = q.Add(_site(at), _vector(vector), float(scale), token_selector(tokens))
    label = f"add(scale {scale:g}) at {at.point}[{at.layer}]"
    if scale == 0:
        return InterventionValue(at.model.role, q.Intervention(()), label)
    return _intervention(at, op, label)


@builtin(
    'project_out(direction: vector, at: site, tokens: tokens = "all") -> intervention',
    validate=_check_tokens,
)
def project_out(ctx: Context, direction: Any, at: SiteRef, tokens: Any = "all") -> InterventionValue:
    """Remove the component along ``direction`` (ablation). It has no dose: no ``scale``."""
    op = q.ProjectOut(_site(at), _vector(direction), token_selector(tokens))
    return _intervention(at, op, f"project_out at {at.point}[{at.layer}]")


@builtin('patch(source: text, at: site, tokens: tokens = "last") -> intervention', validate=_check_tokens)
def patch(ctx: Context, source: Any, at: SiteRef, tokens: Any = "last") -> InterventionValue:
    """Replace the activation at a site by the one ``source`` produces there."""
    op = q.Patch(_site(at), as_text(source), token_selector(tokens))
    return _intervention(at, op, f"patch from {as_text(source)!r} at {at.point}[{at.layer}]")


@builtin('zero(at: site, tokens: tokens = "all") -> intervention', validate=_check_tokens)
def zero(ctx: Context, at: SiteRef, tokens: Any = "all") -> InterventionValue:
    """Set the activation at a site to zero."""
    op = q.Zero(_site(at), token_selector(tokens))
    return _intervention(at, op, f"zero at {at.point}[{at.layer}]")
