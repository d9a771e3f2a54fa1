"""Activation sites and interventions: one naming scheme mapped onto each architecture.

A :class:`~msl.queries.Site` names ``resid_pre``, ``resid_post``, ``attn_out`` or
``mlp_out`` at a block. A :class:`Layout` says where those live in one family of
transformers modules (paths relative to ``model.base_model``); adding a family is one
decorated function. Sites are read and changed through forward hooks:

- ``resid_pre``: the first input of block ``l`` (a forward pre-hook);
- ``resid_post``: the output of block ``l``;
- ``attn_out`` / ``mlp_out``: the output of the attention / MLP sub-module, i.e. what it adds
  to the residual stream (for post-norm BERT, the output of the dense projection before the
  residual add and LayerNorm).

Token selectors are resolved per batch row from :class:`ForwardContext`, which knows, for
every padded position, its index among the row's real tokens; so left padding never shifts
a selector. Several operations and captures at the same site share one hook, applied in
the intervention's order, captures last (a capture sees the activation after the ops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from msl.models.base import UnsupportedArchitecture
from msl.queries import Add, Intervention, Patch, ProjectOut, QueryError, TokenSel, Zero

# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """Where the sites of one architecture family live (dotted paths).

    ``blocks`` is relative to ``model.base_model``; ``attn`` and ``mlp`` to one block;
    ``final_norm`` (for the logit lens) to ``model.base_model``, or ``None`` where the
    residual stream is not read out through a final norm.
    """

    blocks: str
    attn: str
    mlp: str
    final_norm: str | None


LAYOUTS: dict[str, Layout] = {}


def layout(*model_types: str) -> Callable[[Callable[[], Layout]], Callable[[], Layout]]:
    """Register the layout returned by the decorated function for these ``model_type`` values."""

    def register(fn: Callable[[], Layout]) -> Callable[[], Layout]:
        for name in model_types:
            LAYOUTS[name] = fn()
        return fn

    return register


@layout("llama", "mistral", "qwen2", "qwen3")
def _llama() -> Layout:
    return Layout(blocks="layers", attn="self_attn", mlp="mlp", final_norm="norm")


@layout("gpt2")
def _gpt2() -> Layout:
    return Layout(blocks="h", attn="attn", mlp="mlp", final_norm="ln_f")


@layout("bert", "roberta")
def _bert() -> Layout:
    return Layout(blocks="encoder.layer", attn="attention.output.dense", mlp="output.dense", final_norm=None)


def module_listing(module: torch.nn.Module, depth: int = 3, limit: int = 60) -> str:
    """The names of a module tree down to ``depth`` levels, for error messages."""
    names = [n for n, _ in module.named_modules() if n and n.count(".") < depth]
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


@dataclass
class SiteMap:
    """The concrete modules of one loaded model's sites."""

    blocks: list[torch.nn.Module]
    attn: list[torch.nn.Module]
    mlp: list[torch.nn.Module]
    final_norm: torch.nn.Module | None

    @classmethod
    def of(cls, model: torch.nn.Module, model_type: str) -> SiteMap:
        base = getattr(model, "base_model", model)
        spec = LAYOUTS.get(model_type)
        if spec is None:
            raise UnsupportedArchitecture(
                f"activation sites are not mapped for model type '{model_type}'; its modules are: "
                f"{module_listing(model)}",
                hint=f"known model types: {', '.join(sorted(LAYOUTS))}",
            )
        try:
            blocks = list(base.get_submodule(spec.blocks))
            attn = [b.get_submodule(spec.attn) for b in blocks]
            mlp = [b.get_submodule(spec.mlp) for b in blocks]
            norm = base.get_submodule(spec.final_norm) if spec.final_norm else None
        except (AttributeError, TypeError) as exc:
            raise UnsupportedArchitecture(
                f"model type '{model_type}' does not have the expected modules ({exc}); its modules are: "
                f"{module_listing(model)}"
            ) from None
        return cls(blocks, attn, mlp, norm)

    def module(self, point: str, layer: int) -> torch.nn.Module:
        if point in ("resid_pre", "resid_post"):
            return self.blocks[layer]
        return (self.attn if point == "attn_out" else self.mlp)[layer]


# --------------------------------------------------------------------------- forward context


@dataclass
class ForwardContext:
    """What the hooks need to know about the batch being run.

    ``real_index[b, t]`` is the index of padded position ``t`` among row ``b``'s real tokens
    (``-1`` for padding); ``n_prompt[b]`` the number of real tokens of the row's input.
    During generation steps ``prompt_pass`` is false and positions are ``>= n_prompt``.
    ``captured`` receives the activation of each captured site, keyed by (point, layer).
    """

    real_index: torch.Tensor
    n_prompt: torch.Tensor
    prompt_pass: bool = True
    captured: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    _masks: dict[TokenSel, torch.Tensor] = field(default_factory=dict)

    def mask(self, sel: TokenSel) -> torch.Tensor:
        """Boolean ``[B, T]``: the positions ``sel`` selects in each row."""
        cached = self._masks.get(sel)
        if cached is not None:
            return cached
        ri, n = self.real_index, self.n_prompt[:, None]
        if sel.kind == "all":
            m = ri >= 0
        elif sel.kind == "last":
            m = ri == n - 1
        else:
            k = n + sel.k if sel.k < 0 else torch.full_like(n, sel.k)
            m = (ri == k) if sel.kind == "index" else (ri >= k)
        self._masks[sel] = m
        return m


# --------------------------------------------------------------------------- resolved ops


@dataclass(frozen=True)
class ResolvedOp:
    """An intervention operation bound to a model: block index resolved, vector a tensor.

    For a :class:`Patch`, ``source`` holds the source input's activation at the selected
    positions, ``[m, hidden]``, filled in by the adapter before the run.
    """

    op: Add | ProjectOut | Patch | Zero
    layer: int
    vector: torch.Tensor | None = None
    source: torch.Tensor | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.op.site.point, self.layer)

    def apply(self, h: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        op = self.op
        if isinstance(op, Patch):
            if not ctx.prompt_pass:
                return h
            mask = ctx.mask(op.tokens)
            rows = int(mask.any(dim=1).sum())
            out = h.clone()
            out[mask] = self.source.to(h.dtype).repeat(rows, 1)  # type: ignore[union-attr]
            return out
        m = ctx.mask(op.tokens)[..., None]
        if isinstance(op, Add):
            return torch.where(m, h + op.scale * self.vector, h)  # type: ignore[operator]
        if isinstance(op, ProjectOut):
            u = self.vector
            return torch.where(m, h - (h @ u)[..., None] * u, h)  # type: ignore[operator]
        return torch.where(m, torch.zeros((), dtype=h.dtype, device=h.device), h)


def resolve_ops(
    intervention: Intervention | None, num_layers: int, hidden_size: int, dtype: torch.dtype, device: torch.device
) -> list[ResolvedOp]:
    """Check an intervention against a model and bind it; :class:`QueryError` if it does not fit."""
    resolved = []
    for op in intervention.ops if intervention else ():
        layer = op.site.resolve(num_layers)
        vector = None
        if isinstance(op, Add | ProjectOut):
            if len(op.vector) != hidden_size:
                raise QueryError(
                    f"the vector at {op.site} has {len(op.vector)} dimensions; the model's hidden size is {hidden_size}"
                )
            v = torch.from_numpy(op.vector.data.copy())
            if isinstance(op, ProjectOut):
                norm = float(torch.linalg.vector_norm(v))
                if norm == 0.0:
                    raise QueryError(f"cannot project out a zero vector at {op.site}")
                v = v / norm
            vector = v.to(device=device, dtype=dtype)
        resolved.append(ResolvedOp(op, layer, vector))
    return resolved


# --------------------------------------------------------------------------- hooks


def _first(value: object) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value  # type: ignore[return-value]


def _replace_first(value: object, h: torch.Tensor) -> object:
    return (h, *value[1:]) if isinstance(value, tuple) else h


@contextmanager
def hooked(
    sites: SiteMap,
    ops: list[ResolvedOp],
    captures: set[tuple[str, int]],
    context: Callable[[], ForwardContext],
) -> Iterator[None]:
    """Install one hook per touched site for the duration of the block.

    ``context`` returns the :class:`ForwardContext` of the forward pass running now.
    """
    by_site: dict[tuple[str, int], list[ResolvedOp]] = {}
    for rop in ops:
        by_site.setdefault(rop.key, []).append(rop)
    handles = []

    def transform(key: tuple[str, int], h: torch.Tensor) -> torch.Tensor:
        ctx = context()
        for rop in by_site.get(key, ()):
            h = rop.apply(h, ctx)
        if key in captures:
            ctx.captured[key] = h.detach()
        return h

    try:
        for key in set(by_site) | captures:
            point, layer = key
            module = sites.module(point, layer)
            if point == "resid_pre":

                def pre_hook(mod, args, kwargs, key=key):  # type: ignore[no-untyped-def]
                    if args:
                        return (transform(key, args[0]), *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": transform(key, kwargs["hidden_states"])}

                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:

                def post_hook(mod, args, output, key=key):  # type: ignore[no-untyped-def]
                    return _replace_first(output, transform(key, _first(output)))

                handles.append(module.register_forward_hook(post_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
