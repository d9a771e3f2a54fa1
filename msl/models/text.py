"""What the three Hugging Face adapters share: loading, tokenising, batching, hooks.

Loading is lazy: the config and tokenizer are read when the model is created (cheap, and
enough for ``token_id``, ``labels``, ``num_layers``), the weights on the first query or
fingerprint request that cannot be answered from the fingerprint memo. So a re-run whose
results are all in the disk cache never loads the weights at all.

Batching: the unique token sequences of a run are sorted by length and cut into batches
under a token budget (``batch_tokens`` padded tokens, at most ``max_batch`` rows), which
keeps padding small. Causal LMs pad on the left and get ``position_ids`` computed from the
attention mask, so an input's result does not depend on the batch it ran in; encoders and
classifiers pad on the right (absolute positions then start at 0 as in a batch of one).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from msl.models.base import (
    Model,
    ModelLoadError,
    ModelSource,
    ModelStats,
    ProgressFn,
    UnsupportedArchitecture,
    describe,
)
from msl.models.fingerprint import (
    FingerprintMemo,
    config_digest,
    model_fingerprint,
    tokenizer_digest,
    weights_fingerprint,
)
from msl.models.sites import ForwardContext, ResolvedOp, SiteMap, hooked, resolve_ops
from msl.queries import Capture, Intervention, Patch, Query, QueryError, QueryFailed, Result
from msl.types import with_article

T = TypeVar("T")

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Row:
    """One unique token sequence and the queries (by result slot) it answers."""

    ids: tuple[int, ...]
    queries: list[tuple[int, Query]] = field(default_factory=list)


@dataclass
class Batch:
    """Padded tensors of a batch; real token ``i`` of row ``b`` sits at ``offset[b] + i``."""

    rows: list[Row]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    real_index: torch.Tensor
    lengths: torch.Tensor
    offset: list[int]

    def span(self, b: int, start: int, stop: int) -> slice:
        """Padded positions of real tokens ``[start, stop)`` of row ``b``."""
        return slice(self.offset[b] + start, self.offset[b] + stop)


def buckets(rows: Sequence[Row], batch_tokens: int, max_batch: int) -> list[list[Row]]:
    """Length-sorted batches with at most ``batch_tokens`` padded tokens and ``max_batch`` rows."""
    ordered = sorted(rows, key=lambda r: (-len(r.ids), r.ids))
    out: list[list[Row]] = []
    for row in ordered:
        current = out[-1] if out else None
        if (
            current is not None
            and len(current) < max_batch
            and (len(current) + 1) * len(current[0].ids) <= batch_tokens
        ):
            current.append(row)
        else:
            out.append([row])
    return out


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory (CUDA, MPS or the CPU allocator)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def backing_off(group: list[T], run: Callable[[list[T]], None]) -> None:
    """``run(group)``; where the device runs out of memory, halve the batch and run each
    half (again halving as needed) instead of failing the run. A single row that does not
    fit raises. The halves are batches of another composition: their results equal the
    whole batch's to float32 rounding (left padding, position ids from the mask)."""
    try:
        run(group)
    except Exception as exc:
        if len(group) < 2 or not out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(group) // 2
        backing_off(group[:half], run)
        backing_off(group[half:], run)


def _parts(groups: list[list[Row]], results: Sequence[Result | None]) -> list[list[int]]:
    """Query indices per batch of ``groups``, with the already answered ``results`` in the first."""
    parts = [[slot for row in group for slot, _ in row.queries] for group in groups] or [[]]
    parts[0] = [i for i, r in enumerate(results) if r is not None] + parts[0]
    return [p for p in parts if p]


class TransformerModel(Model):
    """A Hugging Face transformers model (local directory, GGUF file or hub id)."""

    auto_class: ClassVar[str]
    padding_side: ClassVar[str] = "right"
    #: Prefixes of weights the adapter never reads: missing from a checkpoint, they are fine.
    unused_weights: ClassVar[tuple[str, ...]] = ()
    #: Defaults for CPU; ``batch_tokens`` padded tokens and ``max_batch`` rows per forward call.
    batch_tokens: int = 4096
    max_batch: int = 64

    def __init__(self, source: ModelSource, *, dtype: str, device: str, memo: FingerprintMemo | None) -> None:
        import transformers

        self.source = source
        self.ref = source.ref
        self.dtype = dtype
        self.device = device
        self.stats = ModelStats()
        self._memo = memo
        self._ctx: ForwardContext | None = None
        if source.path is not None and source.path.is_dir() and not any(source.path.glob("*.safetensors")):
            found = ", ".join(sorted(p.name for p in source.path.iterdir())[:20])
            raise ModelLoadError(
                f"no safetensors weights in '{source.path}' (found: {found or 'nothing'})",
                hint="MSL loads weights only from safetensors, GGUF or ONNX files, never pickled .bin/.pt files",
            )
        self.config = self._load("config", transformers.AutoConfig.from_pretrained)
        self.tokenizer = self._load("tokenizer", transformers.AutoTokenizer.from_pretrained)
        if self.tokenizer.pad_token_id is None:
            # Padding positions are masked out, so any id will do; reuse EOS where there is one.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # ------------------------------------------------------------------ loading

    def _pretrained_kwargs(self) -> tuple[str, dict[str, Any]]:
        """The first argument and keyword arguments of every ``from_pretrained`` call."""
        kwargs: dict[str, Any] = {"trust_remote_code": False}
        if self.source.hub_id is not None:
            return self.source.hub_id, kwargs
        assert self.source.path is not None
        if self.source.suffix == ".gguf":
            return str(self.source.path.parent), {**kwargs, "gguf_file": self.source.path.name}
        return str(self.source.path), {**kwargs, "local_files_only": True}

    def _load(self, what: str, loader: Any, **extra: Any) -> Any:
        name, kwargs = self._pretrained_kwargs()
        import transformers

        verbosity = transformers.logging.get_verbosity()
        try:
            # transformers prints its own progress bars while dequantizing GGUF tensors, and a
            # load report of missing weights that _require_trained turns into an error.
            transformers.logging.set_verbosity_error()
            with contextlib.redirect_stderr(io.StringIO()):
                return loader(name, **kwargs, **extra)
        except Exception as exc:  # transformers raises many types; all mean "cannot load"
            raise ModelLoadError(f"cannot load the {what} of {self.kind} '{self.ref}': {describe(exc)}") from exc
        finally:
            transformers.logging.set_verbosity(verbosity)

    @cached_property
    def module(self) -> torch.nn.Module:
        """The torch module, loaded on first use."""
        import transformers

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device '{self.device}' was asked for, but CUDA is not available here")
        extra: dict[str, Any] = {"dtype": TORCH_DTYPES[self.dtype]}
        if self.source.suffix != ".gguf":
            extra["use_safetensors"] = True
        loaded = self._load(
            "weights", getattr(transformers, self.auto_class).from_pretrained, output_loading_info=True, **extra
        )
        module, info = loaded if isinstance(loaded, tuple) else (loaded, {})
        self._require_trained(info)
        try:
            module = module.to(self.device)
        except Exception as exc:
            raise ModelLoadError(f"cannot move '{self.ref}' to {self.device}: {describe(exc)}") from exc
        module.eval()
        return module

    def _require_trained(self, info: dict[str, Any]) -> None:
        """Refuse a model whose checkpoint lacks weights of this kind's class.

        transformers fills missing (or wrongly shaped) weights with random numbers and only
        logs it: a classifier loaded as a causal LM gets a random LM head, and every verdict
        about it would be about noise. Unexpected extra weights are fine (an encoder read
        from a classifier's checkpoint ignores the classification head).
        """
        missing = [str(k) for k in info.get("missing_keys") or ()]
        mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ()]
        absent = sorted(k for k in set(missing + mismatched) if not any(p in k for p in self.unused_weights))
        if absent:
            shown = ", ".join(absent[:4]) + (f" and {len(absent) - 4} more" if len(absent) > 4 else "")
            raise ModelLoadError(
                f"'{self.ref}' is not {with_article(self.kind)} model: "
                f"loaded as {with_article(self.kind)}, {len(absent)} of its "
                f"weights would be newly initialised at random ({shown})",
                hint=f"bind this role to {with_article(self.kind)} checkpoint, "
                     f"or declare the role with the kind of this model",
            )

    @cached_property
    def weights_digest(self) -> str:
        """The digest of the weights alone, from the memo where the weight files are known to it."""
        files = self.source.weight_files()
        key = FingerprintMemo.key(files, self.dtype, self.kind) if files and self._memo is not None else None
        known = self._memo.get(key) if key is not None and "module" not in self.__dict__ else None  # type: ignore[union-attr]
        digest = known or weights_fingerprint(self.module)
        if key is not None and known is None:
            self._memo.put(key, digest)  # type: ignore[union-attr]
        return digest

    def behaviour(self) -> dict[str, Any]:
        """What the adapter reads besides config and tokenizer that changes its answers."""
        return {}

    @cached_property
    def fingerprint(self) -> str:
        """The model's fingerprint; from the memo when every file of the model's folder is
        as it was when the fingerprint was computed (hashing a large tokenizer's pipeline
        takes most of a second), and while the weights are not in memory (then they are
        hashed as loaded). The memo key names the transformers and tokenizers versions
        too, since the config and tokenizer are hashed as those libraries read them."""
        files = self.source.folder_files()
        key = None
        if files and self._memo is not None and "module" not in self.__dict__:
            import tokenizers
            import transformers

            what = f"{self.kind}/{self.code_version}/whole/{transformers.__version__}/{tokenizers.__version__}"
            key = FingerprintMemo.key(files, self.dtype, what)
            known = self._memo.get(key)
            if known is not None:
                return known
        fingerprint = model_fingerprint(f"{self.kind}/{self.code_version}", {
            "weights": self.weights_digest,
            "config": config_digest(self.config),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "behaviour": self.behaviour(),
        })
        if key is not None:
            self._memo.put(key, fingerprint)  # type: ignore[union-attr]
        return fingerprint

    @cached_property
    def sites(self) -> SiteMap:
        return SiteMap.of(self.module, self.config.model_type)

    # ------------------------------------------------------------------ model facts

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def max_length(self) -> int:
        limit = getattr(self.config, "max_position_embeddings", None) or getattr(self.config, "n_positions", None)
        return int(limit) if limit else 1 << 30

    def encode(self, text: str, *, special: bool = True) -> tuple[int, ...]:
        """Token ids of ``text``, with the tokenizer's special tokens unless ``special`` is false."""
        return tuple(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def token_id(self, text: str) -> int:
        """The id of ``text`` as a single token (no special tokens); :class:`QueryError` otherwise."""
        ids = self.encode(text, special=False)
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            raise QueryError(f"{text!r} is {len(ids)} tokens for '{self.ref}', not one: {pieces}")
        return ids[0]

    def token_text(self, token: int) -> str:
        """The text of one token id (with its leading space, e.g. ``" Paris"``)."""
        return self.decode([token])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    # ------------------------------------------------------------------ running

    def _ids(self, query: Query) -> tuple[int, ...]:
        """The token sequence a query runs on; raises :class:`QueryError` for bad input."""
        ids = self.encode(query.text)  # type: ignore[union-attr]
        if not ids:
            raise QueryError(f"{type(query).__name__} of an empty input: the tokenizer gives no tokens for it")
        if len(ids) > self.max_length:
            raise QueryError(f"input of {len(ids)} tokens is longer than the model's limit of {self.max_length}")
        return ids

    def _fed(self, query: Query, ids: tuple[int, ...], ops: list[ResolvedOp]) -> tuple[int, ...]:
        """The tokens of ``ids`` the forward pass needs for ``query`` (queries needing the
        same tokens share one row of a batch)."""
        return ids

    def _check(self, query: Query, ids: tuple[int, ...], ops: list[ResolvedOp]) -> None:
        """Raise :class:`QueryError` when a selector does not fit this input."""
        n = len(ids)
        for rop in ops:
            start, stop = rop.op.tokens.span(n)
            if isinstance(rop.op, Patch) and rop.source is not None and stop - start != rop.source.shape[0]:
                raise QueryError(
                    f"patch at {rop.op.site} ({rop.op.tokens}) takes {rop.source.shape[0]} source positions "
                    f"but the input selects {stop - start}"
                )
        if isinstance(query, Capture):
            query.tokens.span(n)

    def _captures(self, query: Query) -> set[tuple[str, int]]:
        """Sites (point, block) whose activation a query reads."""
        if isinstance(query, Capture):
            return {(query.site.point, query.site.resolve(self.num_layers))}
        return set()

    def _collate(self, rows: list[Row]) -> Batch:
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        offset = []
        for b, row in enumerate(rows):
            start = width - len(row.ids) if self.padding_side == "left" else 0
            ids[b, start : start + len(row.ids)] = torch.tensor(row.ids, dtype=torch.long)
            mask[b, start : start + len(row.ids)] = 1
            offset.append(start)
        counted = mask.cumsum(-1) - 1
        real_index = torch.where(mask.bool(), counted, torch.full_like(counted, -1))
        dev = self.device
        return Batch(
            rows,
            ids.to(dev),
            mask.to(dev),
            counted.clamp(min=0).to(dev),
            real_index.to(dev),
            mask.sum(-1).to(dev),
            offset,
        )

    def _forward(self, batch: Batch) -> Any:
        """Run the module on a batch; what it returns goes to :meth:`_answer`."""
        raise NotImplementedError

    def _answer(self, batch: Batch, output: Any, ctx: ForwardContext, results: list[Result | None]) -> None:
        """Fill the result slots of a batch's queries from the forward output and captures."""
        for b, row in enumerate(batch.rows):
            for slot, query in row.queries:
                if isinstance(query, Capture):
                    start, stop = query.tokens.span(len(row.ids))
                    act = ctx.captured[(query.site.point, query.site.resolve(self.num_layers))]
                    value = act[b, batch.span(b, start, stop)].float().cpu().numpy()
                    results[slot] = value[0] if query.tokens.single else value

    def _ops(self, intervention: Intervention | None) -> list[ResolvedOp]:
        """Bind an intervention to this model, running the sources of its patches first.

        Raises :class:`QueryError` when it does not fit the model, and
        :class:`UnsupportedArchitecture` when the model's sites are not mapped."""
        ops = resolve_ops(
            intervention, self.num_layers, self.hidden_size, TORCH_DTYPES[self.dtype], torch.device(self.device)
        )
        if ops:
            self.sites  # noqa: B018 - fail before running anything
        patches = [rop for rop in ops if isinstance(rop.op, Patch)]
        if not patches:
            return ops
        sources = [Capture(r.op.source_text, r.op.site, r.op.tokens) for r in patches]  # type: ignore[union-attr]
        acts = self.run(sources)
        for value, query in zip(acts, sources, strict=True):
            if isinstance(value, QueryFailed):
                raise QueryError(f"patch source {query.text!r}: {value.message}")
        dtype = TORCH_DTYPES[self.dtype]
        found = iter(acts)
        return [
            replace(r, source=torch.from_numpy(np.atleast_2d(next(found))).to(self.device, dtype))
            if isinstance(r.op, Patch)
            else r
            for r in ops
        ]

    def run(
        self,
        queries: Sequence[Query],
        intervention: Intervention | None = None,
        *,
        progress: ProgressFn | None = None,
    ) -> list[Result]:
        prepared = self._prepare(queries, intervention)
        if isinstance(prepared, QueryFailed):
            return [prepared] * len(queries)
        ops, rows, captures, results = prepared
        self._run_rows(rows, ops, captures, results, progress)
        return results  # type: ignore[return-value]

    def batch_plan(self, queries: Sequence[Query], intervention: Intervention | None = None) -> list[list[int]]:
        """The indices of ``queries`` that :meth:`run` puts in each forward batch, in the
        order it runs them; queries answered without a forward pass join the first part.
        Running one part's queries alone makes exactly that batch again (a bucket of
        :func:`buckets` re-bucketed is itself), so results do not depend on how the parts
        are spread over processes (:mod:`msl.distributed`)."""
        prepared = self._prepare(queries, intervention)
        if isinstance(prepared, QueryFailed):
            return [list(range(len(queries)))]
        _, rows, _, results = prepared
        return _parts(buckets(rows, self.batch_tokens, self.max_batch), results)

    def _prepare(
        self, queries: Sequence[Query], intervention: Intervention | None
    ) -> QueryFailed | tuple[list[ResolvedOp], list[Row], set[tuple[str, int]], list[Result | None]]:
        """The bound intervention, the unique token sequences to run, the sites to capture,
        and the results already known (queries that fail before any forward pass); or one
        failure for all queries when the intervention does not fit the model."""
        results: list[Result | None] = [None] * len(queries)
        try:
            ops = self._ops(intervention)
        except (QueryError, UnsupportedArchitecture) as exc:
            return QueryFailed(exc.message)
        rows: dict[tuple[int, ...], Row] = {}
        captures: set[tuple[str, int]] = set()
        for slot, query in enumerate(queries):
            if not self.supports(query):
                results[slot] = self.unsupported(query)
                continue
            try:
                ids = self._ids(query)
                self._check(query, ids, ops)
                wanted = self._captures(query)
                if wanted:
                    self.sites  # noqa: B018 - fails the query on an unmapped architecture
                captures |= wanted
            except (QueryError, UnsupportedArchitecture) as exc:
                results[slot] = QueryFailed(exc.message)
                continue
            fed = self._fed(query, ids, ops)
            rows.setdefault(fed, Row(fed)).queries.append((slot, query))
        return ops, list(rows.values()), captures, results

    def _run_rows(
        self,
        rows: list[Row],
        ops: list[ResolvedOp],
        captures: set[tuple[str, int]],
        results: list[Result | None],
        progress: ProgressFn | None,
    ) -> None:
        if not rows:
            return
        touched = ops or captures
        with hooked(self.sites, ops, captures, self._context) if touched else contextlib.nullcontext():
            for group in buckets(rows, self.batch_tokens, self.max_batch):
                backing_off(group, lambda part: self._run_batch(part, results))
                if progress is not None:
                    progress(sum(len(r.queries) for r in group))

    def _run_batch(self, group: list[Row], results: list[Result | None]) -> None:
        """One forward pass over ``group``, its answers written into ``results``."""
        batch = self._collate(group)
        self._ctx = ForwardContext(batch.real_index, batch.lengths)
        try:
            with torch.inference_mode():
                output = self._forward(batch)
                self._answer(batch, output, self._ctx, results)
        finally:
            self._ctx = None
        self.stats.rows += len(group)
        self.stats.batches += 1
        self.stats.padded_tokens += int(batch.input_ids.numel())

    def _context(self) -> ForwardContext:
        if self._ctx is None:
            raise RuntimeError("a site hook ran outside of a forward pass of the runtime")
        return self._ctx
