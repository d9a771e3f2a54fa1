"""Explore: linear probes over layers, and the direction a probe learns.

A probe is a logistic regression (torch, seeded) on the activations of a site, trained on
one part of a labelled set and scored on the rest. ``probe(lm.resid_post, ...)`` gives a
per-layer series of test accuracies, which the report shows as a table and a plot and
expectations can test (``max(acc) >= 0.85``, ``first(acc >= 0.8) <= 12``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from msl import queries as q
from msl.builtins import builtin
from msl.builtins.steer import _check_tokens, labelled, token_selector
from msl.values import Context, DataSet, EvalError, Record, Series, SiteFamily, SiteRef, as_text

#: Probe training: full-batch optimisation, fixed budget, L2 penalty — deterministic.
_EPOCHS = 300
_L2 = 1e-3
#: Changed whenever :func:`fit_probes` computes something else: older cached fits are not used.
_FIT_VERSION = 1


@dataclass(frozen=True)
class ProbeFit:
    accuracy: float
    weights: np.ndarray  # (classes, features), in the units of the raw activations
    classes: tuple[Any, ...]


def _labels(data: DataSet, field: str) -> tuple[list[str], list[Any]]:
    texts, labels = [], []
    for item in data:
        if not isinstance(item, Record) or not item.has(field):
            raise EvalError(f"probe: every item needs a `{field}` field")
        texts.append(as_text(item))
        labels.append(item.get(field))
    if len(set(labels)) < 2:
        raise EvalError("probe: the data has fewer than two classes")
    return texts, labels


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < fraction < 1:
        raise EvalError(f"probe: split must be a fraction in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    cut = min(max(1, round(n * fraction)), n - 1)
    return order[:cut], order[cut:]


def fit_probes(
    features: np.ndarray, labels: list[Any], train: np.ndarray, test: np.ndarray, seed: int
) -> list[ProbeFit]:
    """Multinomial logistic regression on standardised features, one probe per layer.

    ``features`` is ``[layers, n, d]``. The probes are trained together as one batched
    problem (each layer's loss depends only on its own weights, and Adam updates every
    weight on its own gradients, so this is the same as training them one by one) —
    one optimisation loop for all layers instead of one per layer.
    """
    import torch

    classes = tuple(sorted(set(labels), key=str))
    y = np.array([classes.index(v) for v in labels])
    mean = features[:, train].mean(axis=1, keepdims=True)
    scale = features[:, train].std(axis=1, keepdims=True) + 1e-6
    x = torch.tensor((features - mean) / scale, dtype=torch.float64)
    layers, _, d = x.shape
    generator = torch.Generator().manual_seed(seed)
    xt = x[:, train]
    yt = torch.tensor(y[train]).repeat(layers)
    weight = (torch.randn(layers, d, len(classes), generator=generator, dtype=torch.float64) * 0.01).requires_grad_()
    bias = torch.zeros(layers, 1, len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(_EPOCHS):
        optimiser.zero_grad()
        logits = (xt @ weight + bias).reshape(-1, len(classes))
        # mean over each layer's examples, summed over layers: the layers stay independent
        loss = torch.nn.functional.cross_entropy(logits, yt) * layers + _L2 * (weight**2).sum()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        predicted = (x[:, test] @ weight + bias).argmax(dim=2).numpy()
        raw = weight.detach().numpy() / scale.transpose(0, 2, 1)
    return [
        ProbeFit(float((predicted[i] == y[test]).mean()), raw[i].T, classes) for i in range(layers)
    ]


def cached_fits(
    ctx: Context, features: np.ndarray, labels: list[Any], train: np.ndarray, test: np.ndarray, seed: int
) -> list[ProbeFit]:
    """:func:`fit_probes`, answered from the result cache when the same fit was made before.

    A fit is a pure function of its inputs, so it is keyed by all of them: the activations
    themselves (their digest: this covers the model, its weights, the sites, the layers, the
    data and the tokens they were read at), the labels, the split, the seed, the training's
    hyperparameters and the torch version that trained it. On a hit torch is not even imported.
    """
    from importlib import metadata

    from msl.cache import array_digest, derived_key

    key = derived_key("probe", {
        "version": _FIT_VERSION,
        "torch": metadata.version("torch"),
        "epochs": _EPOCHS,
        "l2": _L2,
        "features": array_digest(np.asarray(features, dtype=np.float64)),
        "labels": [repr(v) for v in labels],
        "train": np.asarray(train).tolist(),
        "test": np.asarray(test).tolist(),
        "seed": seed,
    })

    def fit() -> dict[str, np.ndarray]:
        fits = fit_probes(features, labels, train, test, seed)
        return {"accuracy": np.array([f.accuracy for f in fits]), "weights": np.stack([f.weights for f in fits])}

    arrays = ctx.memo(key, ("accuracy", "weights"), fit)
    classes = tuple(sorted(set(labels), key=str))
    return [ProbeFit(float(a), w, classes) for a, w in zip(arrays["accuracy"], arrays["weights"], strict=True)]


def _captures(ctx: Context, family: SiteFamily, layers: list[int], texts: list[str], tokens: Any, then: Any) -> Any:
    """The activations of every text at every layer, ``[layers, n, d]`` (a selector that
    picks several tokens is averaged over them), handed to ``then``."""
    selector = token_selector(tokens)
    queries = [q.Capture(t, q.Site(family.point, layer), selector) for layer in layers for t in texts]

    def features(results: list[Any]) -> Any:
        rows = [np.asarray(r, np.float64).reshape(-1, np.asarray(r).shape[-1]).mean(axis=0) for r in results]
        return then(np.stack(rows).reshape(len(layers), len(texts), -1))

    return ctx.query_all(family.model, queries, features)


@builtin(
    'probe(at: sites, data: set[record], label: str = "label", layers: set[number] = None, '
    'tokens: tokens = "last", split: number = 0.7, seed: number = None) -> series[number]',
    validate=_check_tokens,
    bounds=(0, 1),
)
def probe(
    ctx: Context,
    at: SiteFamily,
    data: DataSet,
    label: str = "label",
    layers: DataSet | None = None,
    tokens: Any = "last",
    split: float = 0.7,
    seed: float | None = None,
) -> Any:
    """Test accuracy of a linear probe for ``label`` at each layer of a site family.

    ``probe(lm.resid_post, data: reviews, layers: range(0, 30, 3))``; the split and the
    probe's initialisation are seeded (``seed``, else the run's ``--seed``).
    """
    texts, labels = _labels(data, label)
    chosen = [int(v) for v in layers] if layers is not None else list(range(at.model.model.num_layers))
    if not chosen:
        raise EvalError("probe: no layers to probe")
    key = int(seed) if seed is not None else ctx.rng("probe").getrandbits(31)
    train, test = _split(len(texts), split, key)

    def accuracies(features: np.ndarray) -> Series:
        fits = cached_fits(ctx, features, labels, train, test, key)
        return Series(tuple(chosen), tuple(f.accuracy for f in fits), f"probe accuracy ({label})", trials=len(test))

    return _captures(ctx, at, chosen, texts, tokens, accuracies)


@builtin(
    'probe_direction(at: site, data: set[record], label: str = "label", positive: str = None, '
    'tokens: tokens = "last", seed: number = None) -> vector',
    validate=_check_tokens,
)
def probe_direction(
    ctx: Context,
    at: SiteRef,
    data: DataSet,
    label: str = "label",
    positive: str | None = None,
    tokens: Any = "last",
    seed: float | None = None,
) -> Any:
    """The direction a two-class probe at one site learns (toward ``positive``), usable
    as a steering vector or for ``project_out``."""
    texts, labels = _labels(data, label)
    classes = sorted(set(labels), key=str)
    if len(classes) != 2:
        raise EvalError("probe_direction needs exactly two classes")
    target = positive if positive is not None else classes[1]
    if target not in classes:
        raise EvalError(f"probe_direction: no class {target!r} among {classes}")
    key = int(seed) if seed is not None else ctx.rng("probe").getrandbits(31)
    everything = np.arange(len(texts))
    family = SiteFamily(at.model, at.point)

    def compute(keep: Callable[[np.ndarray], np.ndarray]) -> Any:
        def direction(features: np.ndarray) -> np.ndarray:
            (fit,) = cached_fits(ctx, features, labels, everything, everything, key)
            w = fit.weights[fit.classes.index(target)] - fit.weights[1 - fit.classes.index(target)]
            return keep(w / np.linalg.norm(w))

        return _captures(ctx, family, [at.layer], texts, tokens, direction)

    return labelled(ctx, compute)
