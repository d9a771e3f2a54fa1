"""The registry of built-in functions, measurements, perturbations, data sources and
interventions.

Adding a built-in is one decorated function::

    @builtin("logprob(text: text, continuation: str) -> number", receiver="causal_lm")
    def logprob(ctx: Context, model: ModelHandle, text: Value, continuation: str) -> Value:
        \"\"\"Sum of the log-probabilities of `continuation`'s tokens after `text`.\"\"\"
        return ctx.query(model, LogProb(as_text(text), continuation))

The signature string is what the checker reads (names, types, defaults, result type),
the docstring is what ``docs/language.md`` and error hints show, and the body is what the
evaluator calls — with every argument already evaluated, so a body never sees a pending
model query. ``receiver`` makes the built-in a measurement of a model role of that kind
(``lm.logprob(...)``), which is how the checker knows that ``logprob`` on a classifier is
an error.
"""

from __future__ import annotations

import ast as pyast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from msl.types import Type, parse_type

#: Marks a parameter without a default.
REQUIRED: Any = object()

#: A result type given as ``$param``: the type of that argument.
_SAME_AS = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Param:
    name: str
    type: Type
    default: Any = REQUIRED
    #: ``*name``: any number of positional arguments.
    variadic: bool = False
    #: ``**name``: any keyword arguments not named by other parameters.
    keywords: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not (self.variadic or self.keywords)


#: A range of numbers, (lower, upper); None for an open end.
Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Builtin:
    """One built-in: its signature, its documentation and its implementation."""

    name: str
    params: tuple[Param, ...]
    returns: Type | str
    impl: Callable[..., Any]
    receiver: str | None = None
    doc: str = ""
    family: str = ""
    #: Optional extra check of the arguments: ``validate(call, arg_types, report)``.
    validate: Callable[..., None] | None = field(default=None, compare=False)
    #: Optional result-type rule when the signature cannot say it (overloads).
    infer: Callable[..., Type] | None = field(default=None, compare=False)
    #: The range every number the built-in returns lies in, (lower, upper), None for
    #: unbounded: a KL divergence is in [0, ∞), a probability in [0, 1]. Lint reads it.
    bounds: Bounds = (None, None)

    @property
    def signature(self) -> str:
        def one(p: Param) -> str:
            text = f"{'*' if p.variadic else '**' if p.keywords else ''}{p.name}: {p.type}"
            if p.default is not REQUIRED:
                text += f" = {p.default!r}" if not isinstance(p.default, Name) else f" = {p.default.id}"
            return text

        prefix = f"{self.receiver}." if self.receiver else ""
        return f"{prefix}{self.name}({', '.join(one(p) for p in self.params)}) -> {self.returns}"

    @property
    def summary(self) -> str:
        return self.doc.strip().split("\n\n")[0].replace("\n", " ") if self.doc else ""


@dataclass(frozen=True)
class Name:
    """A default that names another built-in value (``tokens: tokens = last``)."""

    id: str


@dataclass(frozen=True)
class BindProblem:
    """Why a call's arguments do not fit a built-in; ``node`` is where to point."""

    message: str
    node: Any
    hint: str | None = None


def aggregates(param: Param, args: tuple[Any, ...]) -> bool:
    """Whether ``param`` receives values to aggregate in a call with these positional
    arguments: an ``agg`` parameter does, except a variadic one given several arguments,
    which are then the values themselves (``max(a, b)`` against ``max(values)``)."""
    return param.type.name == "agg" and not (param.variadic and len(args) > 1)


def bind_arguments(
    fn: Builtin, args: tuple[Any, ...], kwargs: tuple[Any, ...]
) -> tuple[list[tuple[Param, Any]], list[BindProblem]]:
    """Match a call's positional and keyword argument nodes to ``fn``'s parameters,
    Python-style. Keyword nodes have ``.name`` and ``.value``. Returns the pairs and the
    problems (both the checker and the evaluator bind with this one function)."""
    fixed = [p for p in fn.params if not (p.variadic or p.keywords)]
    variadic = next((p for p in fn.params if p.variadic), None)
    extra = next((p for p in fn.params if p.keywords), None)
    pairs: list[tuple[Param, Any]] = []
    problems: list[BindProblem] = []
    filled: set[str] = set()
    for i, arg in enumerate(args):
        if i < len(fixed):
            pairs.append((fixed[i], arg))
            filled.add(fixed[i].name)
        elif variadic is not None:
            pairs.append((variadic, arg))
        else:
            problems.append(_too_many(fn, arg, len(args), len(fixed)))
            break
    names = {p.name: p for p in fixed}
    for kw in kwargs:
        param = names.get(kw.name)
        if param is not None and param.name in filled:
            problems.append(BindProblem(f"`{kw.name}` is given twice", kw))
        elif param is not None:
            pairs.append((param, kw.value))
            filled.add(param.name)
        elif extra is not None:
            pairs.append((Param(kw.name, extra.type, keywords=True), kw.value))
        else:
            problems.append(_unknown_keyword(fn, kw))
    for p in fn.params:
        if p.required and p.name not in filled:
            problems.append(BindProblem(f"`{fn.name}` needs `{p.name}`", None, f"`{fn.signature}`"))
    return pairs, problems


def _too_many(fn: Builtin, arg: Any, given: int, most: int) -> BindProblem:
    if most:
        return BindProblem(f"`{fn.name}` takes at most {most} argument(s), got {given}", arg, f"`{fn.signature}`")
    hint = f"`{fn.signature}`"
    if fn.returns == parse_type("transform"):  # `lowercase(x)`: applying a built-in transformation
        hint = f"a transformation is applied by name: `transform t = {fn.name}`, then `t(x)`"
    return BindProblem(f"`{fn.name}` takes no arguments, got {given}", arg, hint)


def _unknown_keyword(fn: Builtin, kw: Any) -> BindProblem:
    import difflib

    if fn.name in ("project_out", "zero", "patch") and kw.name == "scale":
        return BindProblem(
            f"`{fn.name}` has no dose: it has no `scale`",
            kw,
            "a dose–response needs `add(vector, scale: s, at: ...)`",
        )
    names = [p.name for p in fn.params if not (p.variadic or p.keywords)]
    close = difflib.get_close_matches(kw.name, names, n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"`{fn.signature}`"
    return BindProblem(f"`{fn.name}` has no parameter `{kw.name}`", kw, hint)


_REGISTRY: dict[tuple[str, str | None], Builtin] = {}
#: ``measurements(kind)`` by kind; emptied whenever a built-in is registered.
_MEASUREMENTS: dict[str, dict[str, Builtin]] = {}


def builtin(
    signature: str,
    *,
    receiver: str | None = None,
    validate: Callable[..., None] | None = None,
    infer: Callable[..., Type] | None = None,
    bounds: Bounds = (None, None),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the built-in described by ``signature``
    (``bounds``: the range its numbers lie in, see :attr:`Builtin.bounds`)."""
    name, params, returns = _parse_signature(signature)

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = (name, receiver)
        if key in _REGISTRY:
            raise ValueError(f"built-in {name!r} registered twice")
        family = fn.__module__.rsplit(".", 1)[-1]
        _REGISTRY[key] = Builtin(
            name, params, returns, fn, receiver, fn.__doc__ or "", family, validate, infer, bounds
        )
        _MEASUREMENTS.clear()
        return fn

    return register


def _parse_signature(signature: str) -> tuple[str, tuple[Param, ...], Type | str]:
    m = re.fullmatch(r"\s*(\w+)\((.*)\)\s*->\s*(.+?)\s*", signature)
    if not m:
        raise ValueError(f"bad built-in signature: {signature!r}")
    name, params_text, returns_text = m.groups()
    params = []
    for part in _split_params(params_text):
        pm = re.fullmatch(r"(\*{0,2})(\w+)\s*:\s*([^=]+?)\s*(?:=\s*(.+))?", part)
        if not pm:
            raise ValueError(f"bad parameter {part!r} in {signature!r}")
        stars, pname, ptype, default = pm.groups()
        params.append(
            Param(pname, parse_type(ptype), _parse_default(default), stars == "*", stars == "**")
        )
    returns: Type | str = returns_text if _SAME_AS.fullmatch(returns_text) else parse_type(returns_text)
    return name, tuple(params), returns


def _split_params(text: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    return out + [tail] if tail else out


def _parse_default(text: str | None) -> Any:
    if text is None:
        return REQUIRED
    if re.fullmatch(r"[A-Za-z_]\w*", text) and text not in ("None", "True", "False"):
        return Name(text)
    return pyast.literal_eval(text)  # literals of our own signature strings, never user input


def lookup(name: str, receiver: str | None = None) -> Builtin | None:
    """The built-in called ``name`` (a function, or a measurement of ``receiver`` models)."""
    _load_families()
    return _REGISTRY.get((name, receiver))


def measurements(kind: str) -> dict[str, Builtin]:
    """The measurements a model of this kind offers (``lm.logprob``, ``clf.label``, …);
    the evaluator asks for every measurement call, so the answer is kept per kind."""
    _load_families()
    found = _MEASUREMENTS.get(kind)
    if found is None:
        found = _MEASUREMENTS[kind] = {n: b for (n, r), b in _REGISTRY.items() if r == kind}
    return found


def receivers_of(name: str) -> list[str]:
    """The model kinds that offer a measurement called ``name``."""
    _load_families()
    return sorted(r for (n, r) in _REGISTRY if n == name and r is not None)


def functions() -> dict[str, Builtin]:
    """Every built-in that is not a measurement of a model."""
    _load_families()
    return {n: b for (n, r), b in _REGISTRY.items() if r is None}


def all_builtins() -> Iterator[Builtin]:
    _load_families()
    yield from _REGISTRY.values()


_LOADED = False


def _load_families() -> None:
    """Import the modules that register built-ins (once, on first lookup)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from msl.builtins import core, data, domains, explore, models, perturb, steer  # noqa: F401
