"""The interface every model adapter implements, and the errors a model can raise.

Engines never touch torch or onnxruntime: they hand a list of queries (and at most one
intervention) to :meth:`Model.run` and get one result per query back, in order. The adapter
decides how to batch them; the planner (:mod:`msl.plan`) decides which queries to send.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from msl.errors import RuntimeFailure, UsageError
from msl.queries import Intervention, Query, QueryFailed, Result
from msl.registry import Registry

DTYPES = ("float32", "float16", "bfloat16")


class UnknownModelError(UsageError):
    """A model reference or kind that names nothing MSL can load (exit code 2)."""


class ModelLoadError(RuntimeFailure):
    """A model that exists but cannot be loaded or run (exit code 3)."""


class UnsupportedArchitecture(RuntimeFailure):
    """A model whose modules MSL cannot map to activation sites (exit code 3)."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a local directory or file, or a Hugging Face hub id.

    ``ref`` is the reference as the user wrote it (a registry name, a path, a hub id); it is
    what findings report next to the fingerprint.
    """

    ref: str
    path: Path | None = None
    hub_id: str | None = None

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower() if self.path is not None and self.path.is_file() else ""

    def weight_files(self) -> list[Path]:
        """The local files the weights come from (empty for a hub id): what the weights'
        digest is computed from, hence exactly what its memo entry is keyed by."""
        if self.path is None:
            return []
        if self.path.is_file():
            return [self.path]
        return sorted(self.path.glob("*.safetensors"))

    def folder_files(self) -> list[Path] | None:
        """Every file under a local model folder (weights, config, tokenizer, pooling
        settings): all that a model loaded from it reads, hence what a memo of its whole
        fingerprint is keyed by. None for a hub id or a single file (a GGUF file's loader
        may read its neighbours too), whose fingerprint is not memoised whole."""
        if self.path is None or not self.path.is_dir():
            return None
        return sorted(p for p in self.path.rglob("*") if p.is_file())


@dataclass
class ModelStats:
    """Work done by one model: ``rows`` inputs run through it in ``batches`` forward calls."""

    rows: int = 0
    batches: int = 0
    padded_tokens: int = 0

    def copy(self) -> ModelStats:
        return ModelStats(self.rows, self.batches, self.padded_tokens)


ProgressFn = Callable[[int], None]


class Model(ABC):
    """A loaded model, answering queries in batches.

    ``fingerprint`` is ``"sha256:" + hex`` over everything that decides the model's outputs:
    weights, config, tokenizer and the adapter's own ``code_version`` (see
    :mod:`msl.models.fingerprint`); ``dtype`` and ``device`` are the ones the model runs
    in. Subclasses declare ``kind`` and ``code_version``.
    """

    kind: ClassVar[str]
    #: The version of the adapter's behaviour (tokenisation, pooling, padding, decoding):
    #: bumped with any change of what it answers, so that cached results and finding ids
    #: computed by the old code are not taken for the new code's.
    code_version: ClassVar[int]
    ref: str
    dtype: str
    device: str
    stats: ModelStats

    @property
    @abstractmethod
    def fingerprint(self) -> str: ...

    @abstractmethod
    def run(
        self,
        queries: Sequence[Query],
        intervention: Intervention | None = None,
        *,
        progress: ProgressFn | None = None,
    ) -> list[Result]:
        """One result per query, in order. A query the model cannot answer gets a
        :class:`~msl.queries.QueryFailed`; ``progress`` is called with the number of inputs
        finished after every batch."""

    def batch_plan(self, queries: Sequence[Query], intervention: Intervention | None = None) -> list[list[int]]:
        """The indices of ``queries`` in parts that may run apart (in other processes) and
        give the results :meth:`run` gives for all of them together: by default one part.
        Adapters whose results depend on batch composition split at their own batches."""
        return [list(range(len(queries)))] if queries else []

    def supports(self, query: Query) -> bool:
        return self.kind in type(query).kinds

    def unsupported(self, query: Query) -> QueryFailed:
        kinds = " or ".join(type(query).kinds)
        return QueryFailed(f"{type(query).__name__} needs a {kinds} model; '{self.ref}' is a {self.kind}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ref!r} {self.dtype} on {self.device}>"


M = TypeVar("M", bound=type[Model])

#: Adapter classes by model kind, each imported when a model of its kind is first loaded
#: (they pull in torch and transformers, which the planner, the cache and ``msl lint``
#: never need). A kind is also a word of the language: see :data:`msl.types.MODEL_KINDS`.
ADAPTERS: Registry[type[Model]] = Registry("model kind")
ADAPTERS.add("causal_lm", "msl.models.causal_lm:CausalLM")
ADAPTERS.add("classifier", "msl.models.classifier:Classifier")
ADAPTERS.add("encoder", "msl.models.encoder:Encoder")
ADAPTERS.add("network", "msl.models.network:OnnxNetwork")


def adapter(kind: str) -> Callable[[M], M]:
    """Mark a :class:`Model` subclass as the adapter of a kind listed in :data:`ADAPTERS`."""

    def register(cls: M) -> M:
        cls.kind = kind
        return cls

    return register


def describe(value: Any) -> str:
    """A short description of an exception for a failure message."""
    text = str(value).strip().splitlines()
    return f"{type(value).__name__}: {text[0] if text else ''}".rstrip(": ")
