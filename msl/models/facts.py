"""What a model reference is, read without loading weights: for lint-time checks.

A spec that binds ``model lm: causal_lm = "organism:sentiment"`` would otherwise load a
classifier's weights into a language-model class, with transformers filling the missing
head with random numbers, and report a verdict about noise. The registry knows the kinds
of its entries; a local Hugging Face directory says what it is in ``config.json``
(``architectures``, ``id2label``, ``num_hidden_layers``); an ONNX file is a network. So
``msl lint`` can check a role's kind, its labels and its block count before any model
runs, and name the closest known model when a reference names nothing.

Nothing here imports torch or transformers, and nothing builds or downloads a model.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from msl.models.base import UnknownModelError
from msl.models.registry import HUB_ID, ORGANISM_NAME, ORGANISMS_DIR, PREFIXES, REGISTRY, organism_names

#: A config.json larger than this is not read (real ones are a few KB).
MAX_CONFIG_BYTES = 1 << 20
#: Entries of a folder compared with a missing path's name, at most (suggestions stay cheap).
MAX_SIBLINGS = 1000
#: Every Hugging Face model can be read as an encoder (its base model); the other kinds
#: need the matching head in the checkpoint.
_HEADS = (("ForCausalLM", "causal_lm"), ("LMHeadModel", "causal_lm"), ("ForSequenceClassification", "classifier"))


@dataclass(frozen=True)
class ModelFacts:
    """What is known of a model without loading it; ``None`` where it cannot be told."""

    ref: str
    #: the kinds it can be loaded as without newly initialised weights
    kinds: frozenset[str] | None = None
    #: why it has those kinds, for messages ("BertForSequenceClassification")
    what: str = ""
    labels: tuple[str, ...] | None = None
    blocks: int | None = None


def spec_reference(ref: str, base: Path) -> str:
    """A model reference written in a spec, with a relative local path made relative to
    the spec's folder ``base`` (as datasets are) instead of the working directory.

    Registry names, ``prefix:name`` references and absolute paths are unchanged; a
    relative reference that names nothing under ``base`` but has the shape of a hub id
    (``owner/name``) stays a hub id.
    """
    if ref in REGISTRY or ref.partition(":")[0] in PREFIXES and ":" in ref:
        return ref
    path = Path(ref).expanduser()
    if path.is_absolute():
        return ref
    local = base / path
    if local.exists() or (_looks_like_path(ref) and not HUB_ID.match(ref)):
        return str(local)
    return ref  # a hub id, or a bare word that lint reports as naming nothing


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.startswith(".") or Path(ref).suffix.lower() in (".onnx", ".gguf")


def model_facts(ref: str) -> ModelFacts:
    """The facts of ``ref`` (already resolved against its spec's folder).

    Raises :class:`UnknownModelError`, with the closest known names, when ``ref`` is not a
    registered name, a known organism, an existing path or a hub id.
    """
    entry = REGISTRY.get(ref)
    if entry is not None:
        return ModelFacts(ref, frozenset(entry.kinds), f"registered as {' or '.join(entry.kinds)}", blocks=entry.blocks)
    prefix, sep, rest = ref.partition(":")
    if sep and prefix == "organism":
        if not ORGANISM_NAME.match(rest) or ".." in rest:
            raise UnknownModelError(f"bad organism name {rest!r}")
        for candidate in (ORGANISMS_DIR / rest, ORGANISMS_DIR / f"{rest}.onnx"):
            if candidate.exists():
                return _path_facts(ref, candidate)
        known = [f"organism:{n}" for n in organism_names()]
        raise UnknownModelError(f"no model organism named '{rest}'", hint=_closest(ref, known, "known organisms"))
    if sep and prefix in PREFIXES:
        return ModelFacts(ref)
    path = Path(ref).expanduser()
    if path.exists():
        return _path_facts(ref, path)
    if HUB_ID.match(ref):
        return ModelFacts(ref)  # what a hub id holds is only known once it is fetched
    if _looks_like_path(ref):
        raise UnknownModelError(f"no model at '{ref}': no such file or folder", hint=_closest_path(path))
    known = sorted(REGISTRY) + [f"organism:{n}" for n in organism_names()]
    raise UnknownModelError(
        f"unknown model '{ref}': not a registered name, an existing path or a hub id",
        hint=_closest(ref, known, "registered models"),
    )


def _closest_path(path: Path) -> str:
    """The models next to a missing path whose names are closest to it."""
    folder = path.parent
    try:
        names = [p.name for _, p in zip(range(MAX_SIBLINGS), folder.iterdir(), strict=False)] if folder.is_dir() else []
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    if close:
        return f"did you mean {', '.join(repr(str(folder / c)) for c in close)}?"
    return "a model is a registered name, organism:NAME, a hub id, or a local folder or .onnx/.gguf file"


def _closest(ref: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(ref, known, n=3, cutoff=0.6)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    return f"{what}: {', '.join(known)}" if known else "no models are registered"


def _path_facts(ref: str, path: Path) -> ModelFacts:
    """Facts of a local file or directory, from its suffix or its ``config.json``."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return ModelFacts(ref, frozenset({"network"}), "an ONNX network")
        if suffix == ".gguf":
            return ModelFacts(ref, frozenset({"causal_lm", "encoder"}), "a GGUF language model")
        return ModelFacts(ref)
    if not path.is_dir():
        return ModelFacts(ref)
    config_file = path / "config.json"
    if not config_file.is_file():
        ggufs = sorted(path.glob("*.gguf"))
        return _path_facts(ref, ggufs[0]) if len(ggufs) == 1 else ModelFacts(ref)
    try:
        if config_file.stat().st_size > MAX_CONFIG_BYTES:
            return ModelFacts(ref)
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ModelFacts(ref)  # loading will say what is wrong with it
    if not isinstance(config, dict):
        return ModelFacts(ref)
    blocks = config.get("num_hidden_layers", config.get("n_layer"))
    blocks = blocks if isinstance(blocks, int) and not isinstance(blocks, bool) and blocks > 0 else None
    architectures = config.get("architectures")
    if not (isinstance(architectures, list) and architectures and all(isinstance(a, str) for a in architectures)):
        return ModelFacts(ref, None, "", None, blocks)
    kinds = {"encoder"} | {kind for a in architectures for suffix, kind in _HEADS if a.endswith(suffix)}
    labels = _labels(config) if "classifier" in kinds else None
    return ModelFacts(ref, frozenset(kinds), ", ".join(architectures), labels, blocks)


def _labels(config: dict[str, object]) -> tuple[str, ...] | None:
    """The label names in output order, as the classifier adapter reads them."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        return None
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    count = config.get("num_labels")
    n = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else len(by_index)
    return label_names(by_index, n)


def label_names(id2label: Mapping[int, object], count: int) -> tuple[str, ...]:
    """Label names in output order: ``id2label``, and ``LABEL_i`` where it has none (what
    transformers itself calls them) — one rule for the loaded adapter and for lint."""
    return tuple(str(id2label.get(i, f"LABEL_{i}")) for i in range(count))
