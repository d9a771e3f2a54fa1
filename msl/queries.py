"""PLACEHOLDER until the runtime branch lands: the query and intervention value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogProb:
    text: str
    continuation: str


@dataclass(frozen=True)
class NextLogProbs:
    text: str


@dataclass(frozen=True)
class Generate:
    text: str
    max_new_tokens: int


@dataclass(frozen=True)
class Perplexity:
    text: str


@dataclass(frozen=True)
class ClassProbs:
    text: str


@dataclass(frozen=True)
class Embed:
    text: str


@dataclass(frozen=True)
class NetOutput:
    x: tuple[float, ...]


@dataclass(frozen=True)
class Site:
    point: str
    layer: int


@dataclass(frozen=True)
class TokenSel:
    kind: str
    index: int = 0


@dataclass(frozen=True)
class Capture:
    text: str
    site: Site
    tokens: TokenSel


@dataclass(frozen=True)
class Lens:
    text: str
    target: str


@dataclass(frozen=True)
class Vector:
    array: Any


@dataclass(frozen=True)
class Add:
    site: Site
    vector: Vector
    scale: float
    tokens: TokenSel


@dataclass(frozen=True)
class ProjectOut:
    site: Site
    vector: Vector
    tokens: TokenSel


@dataclass(frozen=True)
class Patch:
    site: Site
    source_text: str
    tokens: TokenSel


@dataclass(frozen=True)
class Zero:
    site: Site
    tokens: TokenSel


@dataclass(frozen=True)
class Intervention:
    ops: tuple[Any, ...]
