"""One small registry for every pluggable thing: engines, reporters, model adapters, built-ins, organisms.

A :class:`Registry` maps names to factories of one kind. A factory is either given (a
decorator registers the function or class it decorates) or named as ``"module:attribute"``
and imported on first use, so that naming an engine or an adapter never pulls in torch or
z3 before a claim needs it. What a factory needs is read from its signature
(:func:`inspect.signature`): :meth:`Registry.call` passes it exactly the parameters it
declares, out of what the caller has on offer, so a new engine asks for what it uses
instead of the whole runner.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UnknownName(LookupError):
    """A name no entry of a registry has; ``hint`` names the closest ones."""

    def __init__(self, kind: str, name: str, hint: str) -> None:
        super().__init__(f"unknown {kind} {name!r}")
        self.kind, self.name, self.hint = kind, name, hint


@dataclass
class Entry(Generic[F]):
    """One registered name: its factory (or where to import it from) and what else is known."""

    name: str
    target: str | None = None  # "module:attribute", imported on first use
    factory: F | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> F:
        if self.factory is None:
            assert self.target is not None
            module, _, attribute = self.target.partition(":")
            self.factory = getattr(importlib.import_module(module), attribute)
        return self.factory


class Registry(Generic[F]):
    """Named factories of one ``kind`` (``"engine"``, ``"reporter"``, …), in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def add(self, name: str, target: str | F, *, replace: bool = False, **meta: Any) -> None:
        """Register ``target`` — a factory, or ``"module:attribute"`` to import on first use."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if isinstance(target, str):
            self._entries[name] = Entry(name, target=target, meta=meta)
        else:
            self._entries[name] = Entry(name, factory=target, meta=meta)

    def register(self, name: str, **meta: Any) -> Callable[[F], F]:
        """A decorator: register the decorated factory under ``name``."""

        def decorate(factory: F) -> F:
            self.add(name, factory, **meta)
            return factory

        return decorate

    def remove(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"{self.kind}s: {', '.join(self.names())}"
            raise UnknownName(self.kind, name, hint) from None

    def get(self, name: str) -> F:
        """The factory registered as ``name`` (imported now if it was named by its module)."""
        return self.entry(name).load()

    def call(self, name: str, /, **available: Any) -> Any:
        """Call the factory ``name`` with the parameters its signature declares, taken from
        ``available`` (one it declares without a default and ``available`` lacks is an error)."""
        factory = self.get(name)
        params = inspect.signature(factory).parameters
        return factory(**{p: available[p] for p in params if p in available})
