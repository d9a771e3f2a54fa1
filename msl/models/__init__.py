"""Model adapters behind one interface, chosen by a role's kind.

``load_model(ref, kind)`` resolves a reference (registry name, ``organism:<name>``, local
path, hub id; see :mod:`msl.models.registry`) and returns a :class:`Model` of that kind:
``causal_lm``, ``classifier``, ``encoder`` (transformers, safetensors or GGUF weights) or
``network`` (ONNX through onnxruntime). Nothing here runs code shipped with a model:
``trust_remote_code`` is always off and weights never come from pickles.
"""

from __future__ import annotations

from typing import Any

from msl.models.base import (
    ADAPTERS,
    DTYPES,
    Model,
    ModelLoadError,
    ModelSource,
    ModelStats,
    UnknownModelError,
    UnsupportedArchitecture,
)

__all__ = [
    "ADAPTERS",
    "CausalLM",
    "Classifier",
    "Encoder",
    "Model",
    "ModelLoadError",
    "ModelSource",
    "ModelStats",
    "OnnxNetwork",
    "UnknownModelError",
    "UnsupportedArchitecture",
    "load_model",
    "open_model",
]


def __getattr__(name: str) -> Any:
    """The adapter classes by name (``msl.models.CausalLM``), imported on first use."""
    for kind in ADAPTERS:
        entry = ADAPTERS.entry(kind)
        if entry.target is not None and entry.target.endswith(f":{name}"):
            return entry.load()
    raise AttributeError(f"module 'msl.models' has no attribute {name!r}")


def load_model(ref: str, kind: str, *, dtype: str = "float32", device: str = "cpu", progress: bool = True) -> Model:
    """Load the model ``ref`` as a ``kind`` adapter, in ``dtype`` on ``device``.

    ``device`` is ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present). Raises
    :class:`UnknownModelError` (exit code 2) for an unknown reference, kind or dtype, and
    :class:`ModelLoadError` (exit code 3) where the model exists but cannot be loaded.
    """
    import torch

    from msl.models.registry import ModelStore, resolve

    if kind not in ADAPTERS:
        raise UnknownModelError(f"unknown model kind '{kind}'", hint=f"kinds are {', '.join(ADAPTERS.names())}")
    if dtype not in DTYPES:
        raise UnknownModelError(f"unknown dtype '{dtype}'", hint=f"dtypes are {', '.join(DTYPES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise UnknownModelError(f"unknown device '{device}'", hint="use cpu, cuda, cuda:N or auto")
    source = resolve(ref, store=ModelStore(progress=progress))
    return open_model(source, kind, dtype=dtype, device=device)


def open_model(source: ModelSource, kind: str, *, dtype: str, device: str) -> Model:
    """The ``kind`` adapter on an already resolved ``source`` (what a Ray worker makes
    its replica of the driver's model from; :mod:`msl.distributed`)."""
    from msl.models.fingerprint import FingerprintMemo
    from msl.models.registry import cache_dir

    memo = FingerprintMemo(cache_dir() / "fingerprints")
    return ADAPTERS.get(kind)(source, dtype=dtype, device=device, memo=memo)  # type: ignore[call-arg]
