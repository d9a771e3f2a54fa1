"""Model queries, interventions and results: the values shared by evaluator, planner and adapters.

Every query and intervention is a frozen, hashable dataclass, so that the planner can use
them as dictionary keys (deduplication, routing) and the disk cache can key results by
their :func:`canonical` form. Vectors hash by the sha256 of their content, which makes an
intervention carrying a 576-float steering vector as cheap to compare as a string.

Results are plain values: ``float``, ``str``, ``numpy.ndarray`` (float32), a
:class:`LensResult`, or a :class:`QueryFailed` when the query could not be answered (a bad
token selector, a model error). A NaN or inf coming out of a model is returned as is; the
evaluator turns it into an ``error`` verdict.

Tokenisation of :class:`LogProb`: the prompt is tokenised as the model's tokenizer does by
default (with whatever special tokens it adds, e.g. a BOS token), the continuation on its
own *without* special tokens, and the two id lists are concatenated. Scoring the
continuation's own tokenisation keeps its token count independent of the prompt (so the
same continuation is compared like with like across prompts), at the price of possibly
differing from how the tokenizer would split the joined string at the boundary; write the
leading space into the continuation (``" Paris"``), as the model saw it in training.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

import numpy as np

from msl.errors import SpecError

#: Version of the meaning of queries and results; part of every disk-cache key, so a change
#: of semantics (tokenisation, pooling, selector rules) never serves stale results.
SEMANTICS_VERSION: Final = 2

POINTS: Final = ("resid_pre", "resid_post", "attn_out", "mlp_out")
Point: TypeAlias = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]


class QueryError(SpecError):
    """A query or intervention that cannot be built (unknown site point, bad selector)."""


# --------------------------------------------------------------------------- sites, tokens


@dataclass(frozen=True, slots=True)
class Site:
    """An activation site, named the same way for every architecture.

    ``resid_pre`` is the residual stream entering block ``layer``, ``resid_post`` the stream
    leaving it, ``attn_out`` and ``mlp_out`` what the attention and MLP sub-blocks add to it.
    A negative ``layer`` counts from the end (``-1`` is the last block).
    """

    point: str
    layer: int

    def __post_init__(self) -> None:
        if self.point not in POINTS:
            raise QueryError(f"unknown site {self.point!r}; sites are {', '.join(POINTS)}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise QueryError(f"a site's layer must be an integer, not {self.layer!r}")

    def resolve(self, num_layers: int) -> int:
        """The non-negative block index, or a :class:`QueryError` when out of range."""
        index = self.layer + num_layers if self.layer < 0 else self.layer
        if not 0 <= index < num_layers:
            raise QueryError(f"site {self} is out of range: the model has {num_layers} blocks")
        return index

    def __str__(self) -> str:
        return f"{self.point}[{self.layer}]"


@dataclass(frozen=True, slots=True)
class TokenSel:
    """Which token positions an operation or capture touches.

    Positions count real tokens only (never padding) of the *input text*: ``index k`` is
    the k-th real token (negative k counts from the end), ``from k`` every position from
    the k-th on, ``last`` the final input token, ``all`` every real token. During
    :class:`Generate`, ``all`` and ``from k`` also cover the generated tokens; ``last`` and
    ``index k`` select a prompt position only.
    """

    kind: Literal["last", "all", "index", "from"]
    k: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("last", "all", "index", "from"):
            raise QueryError(f"unknown token selector {self.kind!r}; use last, all, index k or from k")
        if isinstance(self.k, bool) or not isinstance(self.k, int):
            raise QueryError(f"a token selector's position must be an integer, not {self.k!r}")
        if self.kind in ("last", "all") and self.k != 0:
            raise QueryError(f"token selector {self.kind!r} takes no position")

    @classmethod
    def last(cls) -> TokenSel:
        return cls("last")

    @classmethod
    def all(cls) -> TokenSel:
        return cls("all")

    @classmethod
    def index(cls, k: int) -> TokenSel:
        return cls("index", k)

    @classmethod
    def from_(cls, k: int) -> TokenSel:
        return cls("from", k)

    @classmethod
    def parse(cls, text: str) -> TokenSel:
        """``"last"``, ``"all"``, ``"index 3"``, ``"from -2"``."""
        parts = text.split()
        if len(parts) == 1 and parts[0] in ("last", "all"):
            return cls(parts[0])  # type: ignore[arg-type]
        if len(parts) == 2 and parts[0] in ("index", "from"):
            try:
                return cls(parts[0], int(parts[1]))  # type: ignore[arg-type]
            except ValueError:
                pass
        raise QueryError(f"bad token selector {text!r}; use last, all, index K or from K")

    def span(self, n: int) -> tuple[int, int]:
        """The half-open range ``[start, stop)`` of prompt positions selected among ``n`` real
        tokens; raises :class:`QueryError` when it selects nothing."""
        if self.kind == "all":
            start, stop = 0, n
        elif self.kind == "last":
            start, stop = n - 1, n
        else:
            k = self.k + n if self.k < 0 else self.k
            if not 0 <= k < n:
                raise QueryError(f"token selector '{self}' is out of range for an input of {n} tokens")
            start, stop = (k, k + 1) if self.kind == "index" else (k, n)
        if stop <= start:
            raise QueryError(f"token selector '{self}' selects no token of an input of {n} tokens")
        return start, stop

    @property
    def single(self) -> bool:
        """Whether the selector picks exactly one position (a capture is then 1-D)."""
        return self.kind in ("last", "index")

    def __str__(self) -> str:
        return self.kind if self.kind in ("last", "all") else f"{self.kind} {self.k}"


LAST: Final = TokenSel("last")
ALL: Final = TokenSel("all")


@dataclass(frozen=True, eq=False)
class Vector:
    """A float32 direction; equality and hash are its content's sha256, so an intervention
    carrying it stays a cheap, exact cache key."""

    data: np.ndarray
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        array = np.array(self.data, dtype="<f4", copy=True)
        if array.ndim != 1 or array.size == 0:
            raise QueryError(f"a vector must be 1-D and non-empty, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise QueryError("a vector must not contain NaN or inf")
        array.setflags(write=False)
        object.__setattr__(self, "data", array)
        object.__setattr__(self, "digest", "sha256:" + hashlib.sha256(array.tobytes()).hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vector) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        return f"Vector(dim={len(self)}, {self.digest[:19]}…)"


# --------------------------------------------------------------------------- interventions


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``scale * vector`` to the activation at ``site`` on the selected tokens."""

    site: Site
    vector: Vector
    scale: float = 1.0
    tokens: TokenSel = ALL


@dataclass(frozen=True, slots=True)
class ProjectOut:
    """Remove the component along ``vector`` (normalised) from the activation at ``site``."""

    site: Site
    vector: Vector
    tokens: TokenSel = ALL


@dataclass(frozen=True, slots=True)
class Patch:
    """Replace the activation at ``site`` with the one ``source_text`` produces there.

    The selector is resolved in both inputs and the i-th selected target position receives
    the i-th selected source position, so ``last`` patches last onto last, and ``all``
    requires two inputs of the same token length. The source runs first, without any
    intervention.
    """

    site: Site
    source_text: str
    tokens: TokenSel = ALL


@dataclass(frozen=True, slots=True)
class Zero:
    """Set the activation at ``site`` to zero on the selected tokens."""

    site: Site
    tokens: TokenSel = ALL


Op: TypeAlias = Add | ProjectOut | Patch | Zero


@dataclass(frozen=True, slots=True)
class Intervention:
    """Operations applied, in order, during one forward pass."""

    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        for op in self.ops:
            if not isinstance(op, (Add, ProjectOut, Patch, Zero)):
                raise QueryError(f"not an intervention operation: {op!r}")


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class LogProb:
    """Sum of the log-probabilities of ``continuation``'s tokens after ``text`` (a float)."""

    text: str
    continuation: str
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)


@dataclass(frozen=True, slots=True)
class NextLogProbs:
    """Next-token log-probabilities after ``text``: float32 array over the vocabulary."""

    text: str
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)


@dataclass(frozen=True, slots=True)
class Generate:
    """Greedy continuation of ``text`` (only the new text), stopping at end-of-sequence."""

    text: str
    max_new_tokens: int = 32
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise QueryError(f"max_new_tokens must be a positive integer, not {self.max_new_tokens!r}")


@dataclass(frozen=True, slots=True)
class Perplexity:
    """exp of the mean negative log-likelihood of every token of ``text`` after the first."""

    text: str
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)


@dataclass(frozen=True, slots=True)
class ClassProbs:
    """Softmax over a classifier's labels: float32 array ``[num_labels]``."""

    text: str
    kinds: ClassVar[tuple[str, ...]] = ("classifier",)


@dataclass(frozen=True, slots=True)
class Embed:
    """A sentence embedding as sentence-transformers computes it for the model: pooling over
    the attention mask (mean unless the model's pooling config says otherwise), then
    L2-normalised when the model's ``modules.json`` has a Normalize module."""

    text: str
    kinds: ClassVar[tuple[str, ...]] = ("encoder",)


@dataclass(frozen=True, slots=True)
class NetOutput:
    """A network's output vector (float32) for the flat input ``x``."""

    x: tuple[float, ...]
    kinds: ClassVar[tuple[str, ...]] = ("network",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))


@dataclass(frozen=True, slots=True)
class Capture:
    """The activation at ``site`` for ``text`` on the selected tokens: float32 ``[hidden]``
    for a single position (``last``, ``index k``), ``[n, hidden]`` otherwise. With an
    intervention at the same site, the capture sees the activation after it."""

    text: str
    site: Site
    tokens: TokenSel = LAST
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm", "classifier", "encoder")


@dataclass(frozen=True, slots=True)
class Lens:
    """The logit lens at the last token of ``text``: the residual stream after every block,
    put through the final norm and the unembedding; ``target`` must be one token."""

    text: str
    target: str
    kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)


Query: TypeAlias = LogProb | NextLogProbs | Generate | Perplexity | ClassProbs | Embed | NetOutput | Capture | Lens


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class LensResult:
    """Per-layer logit-lens readings of one target token after block ``l``: ``logprob[l]``
    (float32) and ``rank[l]`` (int64: 1 + how many tokens are more likely, so 1 = the top
    token, as the language's ``rank`` measurement counts)."""

    logprob: np.ndarray
    rank: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LensResult)
            and np.array_equal(self.logprob, other.logprob, equal_nan=True)
            and np.array_equal(self.rank, other.rank)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class QueryFailed:
    """A query that could not be answered; the evaluator reports it as an ``error`` verdict."""

    message: str


Result: TypeAlias = float | str | np.ndarray | LensResult | QueryFailed


# --------------------------------------------------------------------------- canonical form


def canonical(value: Any) -> Any:
    """A JSON-able, deterministic form of a query, intervention or any part of one.

    Dataclasses become ``[type name, field...]`` lists; a :class:`Vector` becomes its
    digest. Used for disk-cache keys, so it must never change for an unchanged value.
    """
    if isinstance(value, Vector):
        return value.digest
    if is_dataclass(value) and not isinstance(value, type):
        return [type(value).__name__, *(canonical(getattr(value, f.name)) for f in fields(value))]
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        # -0.0 == 0.0, so they must share a form; non-finite floats are not JSON.
        return value + 0.0 if math.isfinite(value) else repr(value)
    if value is None or isinstance(value, str | int):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), ensure_ascii=False, separators=(",", ":"))
