"""Fingerprints: ``sha256:`` digests that identify a model by everything that decides its outputs.

A fingerprint keys the result cache and names a model in findings (and so enters a
finding's id), so it must change whenever the model's answers can: it is the digest of
(:func:`model_fingerprint`)

* the **weights**: for every tensor in sorted name order, its name, dtype, shape and
  little-endian bytes. Tied or shared tensors (a language model's embedding and
  unembedding) are counted once, under the smallest of their names; non-persistent buffers
  (rotary frequency tables) are left out, because they are derived from the config;
* the **config**, as the loaded config object serialises it (:func:`config_digest`), less
  the entries that describe the files rather than the function (where they were loaded
  from, the transformers version that wrote them, the dtype they were stored in: the run's
  dtype is the weights' dtype);
* the **tokenizer**: its whole pipeline (normaliser, pre-tokenizer, vocabulary, merges,
  added tokens, post-processor, decoder) and its special tokens (:func:`tokenizer_digest`);
* the **adapter**: its kind, the version of its code (bumped when the adapter's behaviour
  changes) and what it reads besides config and tokenizer (an encoder's pooling).

Every part is read from the loaded objects, never from file bytes, so the fingerprint
depends on what the model computes, not on how its files are laid out: two loads, two
machines, or a GGUF file and the safetensors directory converted from it (the same
dequantized float32 tensors, config and tokenizer) give the same fingerprint.

Hashing the weights means having them in memory, so a model that has not been loaded yet
looks its weights' digest up in a small memo keyed by the weight files' paths, sizes,
modification times, inodes and status-change times (:class:`FingerprintMemo`), and
computes it only on a miss. A model loaded from a local folder also has its whole
fingerprint memoised, keyed by every file of the folder (config, tokenizer, pooling
settings, weights: their paths, sizes, modification, inode and status-change times) and
the transformers and tokenizers versions that read them; any change of any file is a
miss, and the fingerprint is then computed afresh from the loaded objects (hashing a large
tokenizer's pipeline takes most of a second on every run otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Bumped when the digest's definition changes, so memoised digests are recomputed and
#: results cached under the old fingerprints are never served again.
FINGERPRINT_VERSION = 2

#: Config entries that describe a model's files, not the function it computes.
FILE_ONLY_CONFIG = frozenset(
    {"_name_or_path", "_commit_hash", "transformers_version", "architectures", "dtype", "torch_dtype"}
)

#: Tokenizer pipeline entries the adapters set per call (truncation to a length, padding).
PER_CALL_TOKENIZER = frozenset({"truncation", "padding"})


def _named_weights(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Parameters and persistent buffers, each shared tensor once under its smallest name."""
    by_storage: dict[tuple[object, ...], tuple[str, torch.Tensor]] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        t = tensor.detach()
        # Empty tensors own no storage; they are told apart by name only.
        key: tuple[object, ...] = (
            (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            if t.numel()
            else (name,)
        )
        if key not in by_storage or name < by_storage[key][0]:
            by_storage[key] = (name, t)
    return iter(sorted(by_storage.values(), key=lambda item: item[0]))


def digest_tensors(named: Iterable[tuple[str, np.ndarray | torch.Tensor]]) -> str:
    """``sha256:`` over (name, dtype, shape, bytes) of already deduplicated, sorted tensors."""
    h = hashlib.sha256()
    for name, tensor in named:
        if isinstance(tensor, torch.Tensor):
            t = tensor.detach().to("cpu").contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            shape = list(t.shape)
            data = t.reshape(-1).view(torch.uint8).numpy()
        else:
            a = np.ascontiguousarray(tensor)
            dtype, shape = a.dtype.name, list(a.shape)
            data = a.astype(a.dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8)
        h.update(json.dumps([name, dtype, shape]).encode() + b"\n")
        h.update(memoryview(data))
    return "sha256:" + h.hexdigest()


def weights_fingerprint(module: torch.nn.Module) -> str:
    """The digest of a torch module's weights (one part of a model's fingerprint)."""
    return digest_tensors(_named_weights(module))


def _canonical(value: Any) -> str:
    """One JSON text per value: sorted keys (all made strings), no whitespace."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)  # torch dtypes, AddedToken objects and the like

    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def config_digest(config: Any) -> str:
    """The digest of a transformers config's function-relevant entries (see the module doc)."""
    entries = config.to_dict()
    return _sha256(_canonical({k: v for k, v in entries.items() if k not in FILE_ONLY_CONFIG}))


def tokenizer_digest(tokenizer: Any) -> str:
    """The digest of a tokenizer: its pipeline and special tokens.

    A fast tokenizer's pipeline is its ``tokenizers`` JSON (vocabulary, merges, added
    tokens, normaliser, pre-tokenizer, post-processor, decoder); a slow one has its class,
    its vocabulary and, where it has one, its sentencepiece model instead.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline: Any = {k: v for k, v in json.loads(backend.to_str()).items() if k not in PER_CALL_TOKENIZER}
    else:
        sp_model = getattr(tokenizer, "sp_model", None)
        proto = sp_model.serialized_model_proto() if sp_model is not None else b""
        pipeline = {
            "class": type(tokenizer).__name__,
            "vocab": sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]),
            "sentencepiece": hashlib.sha256(proto).hexdigest(),
        }
    return _sha256(_canonical({
        "pipeline": pipeline,
        "special_tokens": tokenizer.special_tokens_map,
        "clean_up_tokenization_spaces": bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)),
    }))


def model_fingerprint(adapter: str, parts: Mapping[str, Any]) -> str:
    """A model's fingerprint: the adapter (``kind/version``) and the digests of its parts."""
    return _sha256(_canonical([FINGERPRINT_VERSION, adapter, dict(parts)]))


class FingerprintMemo:
    """Weights' digests remembered by the identity of the files they were computed from.

    One small file per entry, written to a temporary name and renamed into place, so two
    processes may fill the memo at once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(files: Iterable[Path], dtype: str, kind: str) -> str:
        """The memo key of ``files`` loaded in ``dtype`` as a ``kind`` model (the module of one
        kind holds other tensors than another's, so one checkpoint has a digest per kind):
        each file's path, size, modification time, inode and status-change time. ``cp -p``, ``rsync
        -t`` and ``tar`` keep a
        modification time, and checkpoints of one architecture share a size; a replaced or
        rewritten file still has another inode or a later status-change time."""
        stats = []
        for f in sorted(Path(p).resolve() for p in files):
            st = f.stat()
            stats.append([str(f), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
        return hashlib.sha256(json.dumps([FINGERPRINT_VERSION, dtype, kind, stats]).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        try:
            text = (self.root / f"{key}.txt").read_text().strip()
        except OSError:
            return None
        return text if text.startswith("sha256:") and len(text) == 71 else None

    def put(self, key: str, digest: str) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                fh.write(digest)
            os.replace(tmp, self.root / f"{key}.txt")
        except OSError:
            pass  # a memo that cannot be written only costs a recomputation next time
