"""Measurements: what a spec can read off a model, by the model's kind.

Each is a method of a role (``lm.logprob(x, " Paris")``). Bodies only build queries; the
planner batches and deduplicates them across every claim of a run, so ``prob``, ``rank``,
``top`` and ``next`` on one prompt share one forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msl import ast
from msl import queries as q
from msl.builtins import builtin
from msl.builtins.data import Report, literal
from msl.types import Type
from msl.values import Context, Distribution, EvalError, ModelHandle, Series, as_text, as_vector


def _token_id(model: ModelHandle, token: str) -> int:
    try:
        return int(model.model.token_id(token))
    except Exception as exc:  # the adapter says why (not one token, unknown)
        raise EvalError(f"{model.role}: {exc}") from None


# ── causal_lm ────────────────────────────────────────────────────────────────────────────


#: An empty continuation has log-probability 0 whatever the model: any claim on it is vacuous.
_EMPTY_CONTINUATION = "the continuation is empty, so its log-probability is 0 whatever the model does"


def _check_continuation(args: dict[str, ast.Expr], types: dict[str, Type], report: Report) -> None:
    node = args.get("continuation")
    if literal(node) == "":
        assert node is not None
        report(_EMPTY_CONTINUATION, node.span, 'give the text that should follow, e.g. " Paris"')


@builtin(
    "logprob(x: text, continuation: str) -> number",
    receiver="causal_lm",
    bounds=(None, 0),
    validate=_check_continuation,
)
def logprob(ctx: Context, model: ModelHandle, x: Any, continuation: str) -> Any:
    """Log-probability of ``continuation`` (one or more tokens) right after the text."""
    if continuation == "":
        raise EvalError(f"{model.role}.logprob: {_EMPTY_CONTINUATION}")
    return ctx.query(model, q.LogProb(as_text(x), continuation))


@builtin("next(x: text) -> dist", receiver="causal_lm")
def next_(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The next-token distribution after the text (for ``kl``)."""
    return ctx.query(model, q.NextLogProbs(as_text(x)), then=Distribution)


@builtin("prob(x: text, token: str) -> number", receiver="causal_lm", bounds=(0, 1))
def prob(ctx: Context, model: ModelHandle, x: Any, token: str) -> Any:
    """Probability that the next token is ``token`` (exactly one token, e.g. " Paris")."""
    index = _token_id(model, token)
    return ctx.query(model, q.NextLogProbs(as_text(x)), then=lambda lp: float(np.exp(lp[index])))


@builtin("rank(x: text, token: str) -> number", receiver="causal_lm", bounds=(1, None))
def rank(ctx: Context, model: ModelHandle, x: Any, token: str) -> Any:
    """Rank of ``token`` among next tokens: 1 when it is the most likely."""
    index = _token_id(model, token)
    return ctx.query(
        model, q.NextLogProbs(as_text(x)), then=lambda lp: int(np.sum(lp > lp[index])) + 1
    )


@builtin("top(x: text) -> str", receiver="causal_lm")
def top(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The most likely next token, as text (with its leading space: " Paris")."""
    return ctx.query(
        model, q.NextLogProbs(as_text(x)), then=lambda lp: model.model.decode([int(np.argmax(lp))])
    )


@builtin("generate(x: text, tokens: number = 20) -> str", receiver="causal_lm")
def generate(ctx: Context, model: ModelHandle, x: Any, tokens: float = 20) -> Any:
    """Greedy continuation of the text, ``tokens`` new tokens long (the new text only)."""
    if tokens != int(tokens) or not 1 <= tokens <= 512:
        raise EvalError(f"generate: tokens must be an integer from 1 to 512, got {tokens}")
    return ctx.query(model, q.Generate(as_text(x), int(tokens)))


@builtin("perplexity(x: text) -> number", receiver="causal_lm", bounds=(1, None))
def perplexity(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """Perplexity of the text under the model (side effects of an intervention)."""
    return ctx.query(model, q.Perplexity(as_text(x)))


def _lens(ctx: Context, model: ModelHandle, x: Any, target: str, field: str) -> Any:
    _token_id(model, target)  # one token, or an error now rather than in the adapter
    result_label = f"logit lens {field} of {target!r}"
    return ctx.query(
        model,
        q.Lens(as_text(x), target),
        then=lambda r: Series(
            tuple(range(len(getattr(r, field)))),
            tuple(float(v) for v in getattr(r, field)),
            result_label,
        ),
    )


@builtin("lens_rank(x: text, target: str) -> series[number]", receiver="causal_lm", bounds=(1, None))
def lens_rank(ctx: Context, model: ModelHandle, x: Any, target: str) -> Any:
    """Logit lens: the rank of ``target`` (1 = top) when each block's residual stream is
    unembedded. ``first(lm.lens_rank(x, " Paris") == 1)`` is the first block where it is top-1.
    """
    return _lens(ctx, model, x, target, "rank")


@builtin("lens_prob(x: text, target: str) -> series[number]", receiver="causal_lm", bounds=(None, 0))
def lens_prob(ctx: Context, model: ModelHandle, x: Any, target: str) -> Any:
    """Logit lens: the log-probability of ``target`` at every layer."""
    return _lens(ctx, model, x, target, "logprob")


# ── classifier ───────────────────────────────────────────────────────────────────────────


def _label_index(model: ModelHandle, label: str) -> int:
    labels = list(model.model.labels)
    if label not in labels:
        raise EvalError(f"{model.role} has no label {label!r}; its labels are {labels}")
    return labels.index(label)


@builtin("probs(x: text) -> dist", receiver="classifier")
def probs(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The class distribution for the text."""
    labels = tuple(model.model.labels)
    return ctx.query(
        model, q.ClassProbs(as_text(x)), then=lambda p: Distribution(np.log(np.asarray(p)), labels)
    )


@builtin("prob(x: text, label: str) -> number", receiver="classifier", bounds=(0, 1))
def class_prob(ctx: Context, model: ModelHandle, x: Any, label: str) -> Any:
    """Probability of the class ``label``."""
    index = _label_index(model, label)
    return ctx.query(model, q.ClassProbs(as_text(x)), then=lambda p: float(p[index]))


@builtin("label(x: text) -> str", receiver="classifier")
def label(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The predicted class (the most probable label)."""
    labels = list(model.model.labels)
    return ctx.query(model, q.ClassProbs(as_text(x)), then=lambda p: labels[int(np.argmax(p))])


# ── encoder ──────────────────────────────────────────────────────────────────────────────


@builtin("embed(x: text) -> vector", receiver="encoder")
def embed(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The sentence embedding (mean-pooled, as sentence-transformers computes it)."""
    return ctx.query(model, q.Embed(as_text(x)))


# ── network ──────────────────────────────────────────────────────────────────────────────


@builtin("output(x: vector) -> vector", receiver="network")
def output(ctx: Context, model: ModelHandle, x: Any) -> Any:
    """The network's output vector; ``net(x)`` is short for ``net.output(x)``."""
    point = tuple(float(v) for v in as_vector(x, f"{model.role}(x)"))
    return ctx.query(model, q.NetOutput(point))
