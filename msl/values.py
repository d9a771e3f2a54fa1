"""Runtime values of the evaluator: inputs, sets of inputs, transformations, model handles.

These are what MSL expressions evaluate to (next to plain ``float``, ``bool``, ``str`` and
numpy arrays). They are immutable and hashable where the planner or the cache needs them
to be, and they remember where they came from — a perturbed input keeps its original and
the edits made — because a counterexample is only useful when it shows what changed.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from msl.errors import MslError

#: Instances per claim, and items of any set a spec enumerates (`range`, a sample):
#: larger sets are not built; a spec samples them instead.
MAX_ENUMERATION = 20_000


def set_size(start: int, stop: int, step: int) -> int:
    """How many integers ``range(start, stop, step)`` holds, without building it (nor
    calling ``len``, which overflows past 2^63)."""
    return max(0, (stop - start + step - (1 if step > 0 else -1)) // step)


class EvalError(MslError):
    """A claim could not be evaluated (bad binding, NaN from a model, a failed query).

    It turns the claim's verdict into ``error``; other claims go on.
    """


# ── Inputs ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Record:
    """An input with named fields; ``text`` is what a measurement reads.

    ``edits`` lists what transformations changed, and ``original`` is the input before
    them, so that a counterexample can show the edit.
    """

    fields: tuple[tuple[str, Any], ...]
    edits: tuple[str, ...] = ()
    original: Record | None = field(default=None, compare=False)

    @classmethod
    def of(cls, **fields: Any) -> Record:
        return cls(tuple(fields.items()))

    def get(self, name: str) -> Any:
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.fields)

    @property
    def text(self) -> str:
        return str(self.get("text"))

    def with_text(self, text: str, edit: str) -> Record:
        """This input with its text replaced, recording the edit."""
        fields = tuple((k, text if k == "text" else v) for k, v in self.fields)
        return Record(fields, self.edits + (edit,), self.original or self)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.fields}


def as_text(value: Any) -> str:
    """The text a measurement reads from a string or a record."""
    if isinstance(value, Record):
        return value.text
    if isinstance(value, str):
        return value
    raise EvalError(f"expected a text, got {type_name(value)}")


def as_vector(value: Any, what: str) -> np.ndarray:
    """A one-dimensional vector of finite numbers, from an array or a list (``[1, 0.5]`` is a
    list value, ``net(x)`` an array). NaN or infinity is an error here, so it can never
    slip into a comparison that then reads as passed."""
    if isinstance(value, DataSet):
        value = list(value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvalError(f"{what} expects a vector of numbers, got {type_name(value)}") from None
    if array.ndim != 1 or array.size == 0:
        raise EvalError(f"{what} expects a non-empty vector of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise EvalError(f"{what}: the vector has a NaN or infinite entry")
    return array


def _text_of(value: Any) -> str:
    return value.text if isinstance(value, Record) else str(value)


def as_record(value: Any) -> Record:
    return value if isinstance(value, Record) else Record.of(text=as_text(value))


def type_name(value: Any) -> str:
    return {bool: "a condition", float: "a number", int: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


# ── Sets ─────────────────────────────────────────────────────────────────────────────────


class DataSet(ABC):
    """A finite, ordered collection of inputs that need not be materialised.

    Templates can describe millions of fills; sampling and property-based search pick
    elements by index, so only the ones used are ever built.
    """

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item(self, index: int) -> Any: ...

    @abstractmethod
    def describe(self) -> str: ...

    def __iter__(self) -> Iterator[Any]:
        return (self.item(i) for i in range(len(self)))

    def choice_sizes(self) -> tuple[int, ...]:
        """The independent choices an element is made of (for Hypothesis): one by default."""
        return (len(self),)

    def from_choices(self, choices: Sequence[int]) -> Any:
        """The element for one choice per :meth:`choice_sizes` entry."""
        return self.item(choices[0])

    def choice_order(self, dim: int) -> list[int]:
        """The choices of one dimension, simplest first (a search shrinks toward them)."""
        return sorted(range(len(self)), key=lambda i: (len(_text_of(self.item(i))), i))


@dataclass(frozen=True, eq=False)
class ListSet(DataSet):
    items: tuple[Any, ...]
    label: str = "a list"

    def __len__(self) -> int:
        return len(self.items)

    def item(self, index: int) -> Any:
        return self.items[index]

    def describe(self) -> str:
        return f"{self.label} ({len(self.items)} items)"


@dataclass(frozen=True, eq=False)
class TemplateSet(DataSet):
    """Fills of a template: the cartesian product of the slots' values (× table rows).

    Element ``i`` is decoded in mixed radix, rows outermost, so enumeration, sampling and
    search all agree on what element ``i`` is.
    """

    template: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]
    rows: tuple[Record, ...] | None = None

    def _sizes(self) -> tuple[int, ...]:
        return self._radix

    @cached_property
    def _radix(self) -> tuple[int, ...]:
        """The number of choices per dimension (rows first), computed once: every
        ``len`` and ``item`` reads it, tens of thousands of times in a run."""
        head = (len(self.rows),) if self.rows is not None else ()
        return head + tuple(len(values) for _, values in self.slots)

    def __len__(self) -> int:
        return math.prod(self._sizes())

    def choice_sizes(self) -> tuple[int, ...]:
        return self._sizes()

    def item(self, index: int) -> Record:
        if not 0 <= index < len(self):
            raise IndexError(index)
        choices = []
        for size in reversed(self._sizes()):
            index, rest = divmod(index, size)
            choices.append(rest)
        return self.from_choices(tuple(reversed(choices)))

    def from_choices(self, choices: Sequence[int]) -> Record:
        values: dict[str, Any] = {}
        offset = 0
        if self.rows is not None:
            values.update(self.rows[choices[0]].fields)
            offset = 1
        for (name, options), choice in zip(self.slots, choices[offset:], strict=True):
            values[name] = options[choice]
        text = fill_template(self.template, values)
        return Record((("text", text),) + tuple((k, v) for k, v in values.items() if k != "text"))

    def describe(self) -> str:
        return f"template {self.template!r} ({len(self)} fills)"

    def choice_order(self, dim: int) -> list[int]:
        """Shortest fills first: rows by their text length, slot values by length."""
        if self.rows is not None and dim == 0:
            options = [" ".join(str(v) for _, v in r.fields) for r in self.rows]
        else:
            options = list(self.slots[dim - (self.rows is not None)][1])
        return sorted(range(len(options)), key=lambda i: (len(options[i]), i))


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Replace ``{slot}`` by its value; ``{{`` and ``}}`` stand for braces."""
    return "".join(piece if slot is None else str(values[slot]) for piece, slot in _template_pieces(template))


@lru_cache(maxsize=1024)
def _template_pieces(template: str) -> tuple[tuple[str, str | None], ...]:
    """A template as literal text pieces ``(text, None)`` and slots ``("", name)``, read
    once per template (a run fills the same few templates thousands of times)."""
    pieces: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            literal.append(ch)
            i += 2
        elif ch == "{":
            end = template.index("}", i)
            pieces.append(("".join(literal), None))
            pieces.append(("", template[i + 1 : end]))
            literal = []
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    pieces.append(("".join(literal), None))
    return tuple(pieces)


@dataclass(frozen=True, eq=False)
class SampleSet(DataSet):
    """A seeded sample without replacement, in the order it was drawn.

    The statistical engine reads it as a prefix — the first k elements are themselves a
    uniform sample — which is what lets it stop early.
    """

    base: DataSet
    indices: tuple[int, ...]
    seed: int

    def __len__(self) -> int:
        return len(self.indices)

    def item(self, index: int) -> Any:
        return self.base.item(self.indices[index])

    def describe(self) -> str:
        return f"a sample of {len(self)} from {self.base.describe()} (seed {self.seed})"

    def choice_sizes(self) -> tuple[int, ...]:
        return self.base.choice_sizes()

    def from_choices(self, choices: Sequence[int]) -> Any:
        return self.base.from_choices(choices)

    def choice_order(self, dim: int) -> list[int]:
        return self.base.choice_order(dim)


def sample_indices(size: int, n: int, seed: int) -> tuple[int, ...]:
    """``n`` distinct indices below ``size``, drawn with a seeded generator."""
    rng = random.Random(seed)
    return tuple(rng.sample(range(size), min(n, size)))


@dataclass(frozen=True, eq=False)
class ConcatSet(DataSet):
    parts: tuple[DataSet, ...]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def item(self, index: int) -> Any:
        for part in self.parts:
            if index < len(part):
                return part.item(index)
            index -= len(part)
        raise IndexError(index)

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


# ── Transformations, models, sites, series ───────────────────────────────────────────────

#: One step of a transformation: the new input, or ``None`` where it does not apply.
Step = Callable[[Record, random.Random], Record | None]


@dataclass(frozen=True, eq=False)
class Transform:
    """A composable perturbation of inputs (``swap(a, b) then lowercase``)."""

    label: str
    steps: tuple[Step, ...]

    def apply(self, value: Any, rng: random.Random) -> Record | None:
        current: Record | None = as_record(value)
        for step in self.steps:
            if current is None:
                return None
            current = step(current, rng)
        return current

    def then(self, other: Transform) -> Transform:
        return Transform(f"{self.label} then {other.label}", self.steps + other.steps)


@dataclass(frozen=True)
class ModelHandle:
    """A model role bound to a loaded model, possibly under an intervention."""

    role: str
    kind: str
    model: Any = field(compare=False, hash=False)
    fingerprint: str = ""
    intervention: Any = None

    def under(self, intervention: InterventionValue) -> ModelHandle:
        ops = (self.intervention.ops if self.intervention is not None else ()) + intervention.spec.ops
        return ModelHandle(self.role, self.kind, self.model, self.fingerprint, type(intervention.spec)(ops))


@dataclass(frozen=True)
class InterventionValue:
    """An intervention on the model of the role ``role`` (the role its site belongs to)."""

    role: str
    spec: Any  # msl.queries.Intervention
    label: str


@dataclass(frozen=True)
class SiteFamily:
    """``lm.resid_post``: a site at every layer of one model."""

    model: ModelHandle
    point: str


@dataclass(frozen=True)
class SiteRef:
    """``lm.resid_post[6]``: one site of one model."""

    model: ModelHandle
    point: str
    layer: int


@dataclass(frozen=True)
class Series:
    """Values by layer (probe accuracy, logit-lens rank); comparisons act per layer."""

    layers: tuple[int, ...]
    values: tuple[Any, ...]
    label: str = ""
    #: when each value is a proportion of this many trials (a probe's test accuracy): what
    #: its exact interval is computed from in reports; a mapped series is no proportion
    trials: int | None = None

    def map(self, fn: Callable[[Any], Any]) -> Series:
        return Series(self.layers, tuple(fn(v) for v in self.values), self.label)


@dataclass(frozen=True)
class Distribution:
    """A probability distribution as log-probabilities (next token, or classes)."""

    logprobs: Any  # np.ndarray
    labels: tuple[str, ...] | None = None


# ── The context built-ins run in ─────────────────────────────────────────────────────────


class Context(Protocol):
    """What a built-in's body may ask of the evaluator."""

    seed: int
    spec_dir: Path

    def query(self, model: ModelHandle, query: Any, then: Callable[[Any], Any] | None = None) -> Any:
        """Run (or look up) one model query; ``then`` post-processes a ready result."""

    def query_all(
        self, model: ModelHandle, queries: Sequence[Any], then: Callable[[list[Any]], Any]
    ) -> Any:
        """Run several queries; ``then`` gets all their results once every one is ready."""

    def rng(self, *key: object) -> random.Random:
        """A generator seeded by the run's seed and ``key``: same key, same draws."""

    def note_data(self, label: str, digest: str) -> None:
        """Record the hash of a data file read, for the findings' provenance."""

    def save_vector(self, label: str, vector: Any) -> str:
        """Keep a vector computed in this run beside the findings; returns its hash."""

    def vector_label(self) -> str:
        """The label of a vector the running built-in makes (:mod:`msl.vectors`)."""

    def pinned(self, label: str) -> Any:
        """The vector the run was given for ``label`` (``--vectors``), or None."""

    def memo(
        self, key: str, names: tuple[str, ...], compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The arrays ``names`` of a pure computation (a probe fit) whose exact inputs ``key``
        names (:func:`msl.cache.derived_key`): from the result cache when computed before,
        else computed and stored (neither with ``--no-cache``)."""
