"""Fingerprints: ``sha256:`` digests that identify a model's weights.

The digest covers, for every tensor in sorted name order, its name, dtype, shape and
little-endian bytes. Tied or shared tensors (a language model's embedding and unembedding)
are counted once, under the smallest of their names; non-persistent buffers (rotary
frequency tables) are left out, because they are derived from the config and not weights.
The digest therefore depends only on the tensors themselves: two loads, two machines, or a
GGUF file and the safetensors directory converted from it (which hold the same dequantized
float32 tensors) give the same fingerprint.

Hashing a model means having its weights in memory, so a model that has not been loaded
yet looks its fingerprint up in a small memo keyed by the weight files' paths, sizes and
modification times (:class:`FingerprintMemo`), and computes it only on a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

#: Bumped when the digest's definition changes, so memoised fingerprints are recomputed.
FINGERPRINT_VERSION = 1


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
    """The fingerprint of a torch module's weights."""
    return digest_tensors(_named_weights(module))


class FingerprintMemo:
    """Fingerprints remembered by the identity of the files they were computed from.

    One small file per entry, written to a temporary name and renamed into place, so two
    processes may fill the memo at once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(files: Iterable[Path], dtype: str, kind: str) -> str:
        """The memo key of weight files read in ``dtype`` as a ``kind`` model: the kind is
        part of it, since the module of one kind holds other tensors (and names) than
        another's, so one checkpoint has a fingerprint per kind."""
        stats = []
        for f in sorted(Path(p).resolve() for p in files):
            st = f.stat()
            stats.append([str(f), st.st_size, st.st_mtime_ns])
        return hashlib.sha256(json.dumps([FINGERPRINT_VERSION, dtype, kind, stats]).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        try:
            text = (self.root / f"{key}.txt").read_text().strip()
        except OSError:
            return None
        return text if text.startswith("sha256:") and len(text) == 71 else None

    def put(self, key: str, fingerprint: str) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                fh.write(fingerprint)
            os.replace(tmp, self.root / f"{key}.txt")
        except OSError:
            pass  # a memo that cannot be written only costs a recomputation next time
