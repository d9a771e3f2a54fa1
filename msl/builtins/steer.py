"""Steering: vectors from contrastive prompts or files, and interventions at sites.

Sites are named the same way for every architecture — ``lm.resid_pre[l]``,
``lm.resid_post[l]``, ``lm.attn_out[l]``, ``lm.mlp_out[l]`` (negative ``l`` counts from
the end) — and token selectors are ``"last"``, ``"all"``, ``"from K"`` or a position.
A vector computed in a run is saved beside the findings and its hash recorded, so
another lab can replay the claim with the very same vector.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from msl import ast
from msl import queries as q
from msl.builtins import builtin
from msl.builtins.data import Report, literal
from msl.types import Type
from msl.values import Context, DataSet, EvalError, InterventionValue, SiteRef, as_text

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


@builtin(
    'mean_diff(at: site, positive: set[text], negative: set[text], tokens: tokens = "last") -> vector',
    validate=_check_tokens,
)
def mean_diff(ctx: Context, at: SiteRef, positive: DataSet, negative: DataSet, tokens: Any = "last") -> Any:
    """Mean activation on ``positive`` minus mean on ``negative`` at a site: a steering vector.

    ``mean_diff(lm.resid_post[6], love, hate)`` — saved beside the findings with its hash.
    """
    label = f"mean_diff at {at.point}[{at.layer}]"

    def finish(pos: np.ndarray) -> Any:
        return _activations(
            ctx, at, negative, tokens,
            lambda neg: _saved(ctx, label, pos.mean(axis=0) - neg.mean(axis=0)),
        )

    return _activations(ctx, at, positive, tokens, finish)


@builtin(
    'pca_diff(at: site, positive: set[text], negative: set[text], tokens: tokens = "last") -> vector',
    validate=_check_tokens,
)
def pca_diff(ctx: Context, at: SiteRef, positive: DataSet, negative: DataSet, tokens: Any = "last") -> Any:
    """First principal direction of the paired differences (positive[i] − negative[i]),
    signed to agree with their mean and scaled to the mean difference's norm."""
    if len(positive) != len(negative):
        raise EvalError(f"pca_diff pairs its sets: they have {len(positive)} and {len(negative)} items")
    label = f"pca_diff at {at.point}[{at.layer}]"

    def finish(pos: np.ndarray) -> Any:
        def direction(neg: np.ndarray) -> Any:
            diffs = pos - neg
            mean = diffs.mean(axis=0)
            _, _, vt = np.linalg.svd(diffs, full_matrices=False)
            v = vt[0] if float(vt[0] @ mean) >= 0 else -vt[0]
            return _saved(ctx, label, v * np.linalg.norm(mean))

        return _activations(ctx, at, negative, tokens, direction)

    return _activations(ctx, at, positive, tokens, finish)


def _saved(ctx: Context, label: str, vector: np.ndarray) -> np.ndarray:
    vector = vector.astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise EvalError(f"{label}: the vector is not finite")
    ctx.save_vector(label, vector)
    return vector


def vector_path(spec_dir: Path, path: str) -> Path:
    """A vector file's path: a .safetensors file inside the spec's directory (specs are
    untrusted); raises ValueError otherwise."""
    candidate = (spec_dir / path).resolve()
    if Path(path).is_absolute() or (spec_dir.resolve() not in candidate.parents) or candidate.suffix != ".safetensors":
        raise ValueError("vectors are .safetensors files inside the spec's directory")
    return candidate


def _check_vector_path(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("path")
    path = literal(node)
    if node is None or not isinstance(path, str):
        return
    try:
        vector_path(Path(node.span.file).parent, path)
    except ValueError as exc:
        report(str(exc), node.span)


@builtin('load_vector(path: str, key: str = "vector") -> vector', validate=_check_vector_path)
def load_vector(ctx: Context, path: str, key: str = "vector") -> np.ndarray:
    """A vector from a safetensors file next to the spec (never a pickle)."""
    from safetensors.numpy import load_file

    try:
        candidate = vector_path(ctx.spec_dir, path)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    try:
        tensors = load_file(str(candidate))
    except Exception as exc:
        raise EvalError(f"cannot read {path}: {exc}") from None
    if key not in tensors:
        raise EvalError(f"{path} has no tensor {key!r}; it has {sorted(tensors)}")
    vector = np.asarray(tensors[key], np.float32).ravel()
    ctx.note_data(path, ctx.save_vector(f"load_vector({path!r})", vector))
    return vector


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
    """Add ``scale × vector`` to the activation at a site (scale 0 changes nothing)."""
    op = q.Add(_site(at), _vector(vector), float(scale), token_selector(tokens))
    return _intervention(at, op, f"add(scale {scale:g}) at {at.point}[{at.layer}]")


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
