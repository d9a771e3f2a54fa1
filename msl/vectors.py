"""Steering vectors of a run: labelled, hashed, saved beside the findings, pinned on replay.

A vector computed in a run (``mean_diff``, ``pca_diff``, ``probe_direction``) or read
(``load_vector``) is **labelled** by what computed it: the name of the declaration whose
whole value it is (``love``), else ``OWNER@LINE:COL`` — the declaration or claim it was
written in and where the call stands. Labels depend only on the spec's text, so the
same spec gives the same labels on every machine and in every combination of specs.

Its **hash** is ``sha256:`` over the vector's little-endian float32 bytes: the digest the
runtime keys interventions by (:class:`msl.queries.Vector`). Every finding lists the
labels and hashes of the vectors its claim used (``Finding.vectors``), and they are part
of its id.

``msl check -o FILE`` writes the run's vectors to ``STEM.vectors.safetensors`` beside
``FILE`` (never a pickle); ``msl check --vectors FILE`` **pins** them: a labelled vector
found there is used as it is instead of being computed, so another lab re-checks a claim
with the very same vector, bit for bit, and gets the same finding id when its model
agrees.

The file holds the tensors keyed by the vectors' names — the label (``d["love"]``), or
``SPEC::LABEL`` where two specs of the run give one label different vectors — and an
index in the safetensors metadata (``msl-vectors``: a JSON list of ``[spec file, label,
digest, tensor key]``) that keeps each vector's hash, checked on reading. Pins are looked
up by spec file and label, falling back to the label alone when the file gives it one
vector only (a replay from another directory sees other spec paths). Files written
before tensors were keyed by name (keyed by digest, three-item index rows) still read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msl import ast
from msl.errors import UsageError
from msl.source import Span

#: The safetensors metadata key of the index.
INDEX_KEY = "msl-vectors"
#: A vectors file larger than this is refused before it is read (untrusted input).
MAX_BYTES = 256 * 1024 * 1024
SUFFIX = ".vectors.safetensors"


def digest(vector: Any) -> str:
    """``sha256:`` over the little-endian float32 bytes of a 1-D vector."""
    array = np.ascontiguousarray(np.asarray(vector, dtype="<f4").ravel())
    return "sha256:" + hashlib.sha256(array.tobytes()).hexdigest()


def vectors_path(output: Path) -> Path:
    """Where the vectors of a run written to ``output`` go: ``findings.json`` →
    ``findings.vectors.safetensors``."""
    return output.with_name(output.stem + SUFFIX)


def owner(label: str) -> str:
    """The declaration or claim a label belongs to (``love@7:20`` → ``love``)."""
    return label.split("@", 1)[0]


# ── Which vectors a claim used ───────────────────────────────────────────────────────────


def reachable_names(symbols: dict[str, Any], claim: ast.Claim) -> set[str]:
    """The top-level names a claim reads, directly or through declarations and measures."""
    seen: set[str] = set()
    stack: list[ast.Node] = [claim]
    while stack:
        for node in ast.walk(stack.pop()):
            if isinstance(node, ast.Name) and node.id in symbols and node.id not in seen:
                seen.add(node.id)
                decl = symbols[node.id].node
                body = decl.body if isinstance(decl, ast.MeasureDecl) else getattr(decl, "value", None)
                if isinstance(body, ast.Node):
                    stack.append(body)
    return seen


def claim_vectors(symbols: dict[str, Any], claim: ast.Claim, made: dict[str, tuple[str, np.ndarray]]) -> dict[str, str]:
    """Label → digest of the vectors of ``made`` that ``claim`` used."""
    names = reachable_names(symbols, claim) | {claim.name}
    return {label: d for label, (d, _) in sorted(made.items()) if owner(label) in names}


# ── Files ────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class VectorFile:
    """The vectors of a run: an index of (spec file, label, digest) and the tensors by digest."""

    index: tuple[tuple[str, str, str], ...]
    tensors: dict[str, np.ndarray]

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, np.ndarray]]) -> VectorFile:
        """From (spec file, label, vector) triples; a repeated (spec, label) keeps the first."""
        index: dict[tuple[str, str], str] = {}
        tensors: dict[str, np.ndarray] = {}
        for spec, label, vector in entries:
            array = np.ascontiguousarray(np.asarray(vector, dtype="<f4").ravel())
            d = digest(array)
            index.setdefault((spec, label), d)
            tensors.setdefault(d, array)
        rows = tuple(sorted((spec, label, d) for (spec, label), d in index.items()))
        return cls(rows, {d: tensors[d] for d in sorted({r[2] for r in rows})})

    def __len__(self) -> int:
        return len(self.index)

    def pins(self, spec: str) -> dict[str, np.ndarray]:
        """The vectors to use for one spec, by label: its own entries, and any label the file
        gives exactly one vector."""
        by_label: dict[str, set[str]] = {}
        for _, label, d in self.index:
            by_label.setdefault(label, set()).add(d)
        out = {label: self.tensors[next(iter(ds))] for label, ds in by_label.items() if len(ds) == 1}
        out.update({label: self.tensors[d] for s, label, d in self.index if s == spec})
        return out

    def by_digest(self, d: str) -> np.ndarray | None:
        return self.tensors.get(d)

    def save(self, path: Path) -> None:
        """Write as safetensors, through a temporary file and a rename, so a crash never
        leaves half a file; failing to write is a :class:`~msl.errors.UsageError`."""
        from safetensors.numpy import save

        from msl import __version__
        from msl.jsonio import write_bytes_atomic

        digests: dict[str, set[str]] = {}
        for _, label, d in self.index:
            digests.setdefault(label, set()).add(d)
        rows = [
            [spec, label, d, label if len(digests[label]) == 1 else f"{spec}::{label}"] for spec, label, d in self.index
        ]
        tensors = {key: self.tensors[d] for _, _, d, key in rows}
        metadata = {INDEX_KEY: json.dumps(rows), "msl_version": __version__}
        write_bytes_atomic(path, save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: Path, max_bytes: int = MAX_BYTES) -> VectorFile:
        """Read an untrusted vectors file: size-limited, safetensors only, every tensor a
        finite float32 vector whose digest is its key, an index that names only them.
        Any problem is a one-line :class:`~msl.errors.UsageError`."""
        from safetensors import safe_open

        where = Span.point(str(path))

        def bad(message: str) -> UsageError:
            return UsageError(f"vectors file: {message}", where)

        try:
            size = path.stat().st_size
        except OSError as exc:
            raise bad(f"cannot read it ({exc.strerror or exc})") from None
        if size > max_bytes:
            raise bad(f"{size:,} bytes is larger than the limit of {max_bytes:,}")
        try:
            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as exc:  # safetensors reports a malformed file in its own words
            raise bad(
                f"not a safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
        for key, tensor in tensors.items():
            if tensor.dtype != np.float32 or tensor.ndim != 1 or tensor.size == 0:
                raise bad(f"tensor {key[:80]!r} is not a float32 vector")
            if not np.all(np.isfinite(tensor)):
                raise bad(f"tensor {key[:80]!r} is not finite")
            if key.startswith("sha256:") and digest(tensor) != key:  # keyed by digest (older files)
                raise bad(f"tensor {key[:80]!r} does not match its digest")
        try:
            rows = json.loads(metadata.get(INDEX_KEY, "[]"))
            # [spec, label, digest, key]; older files: [spec, label, digest], keyed by digest
            entries = [tuple(str(v) for v in (row if len(row) == 4 else (*row, row[2]))) for row in rows]
            if any(len(e) != 4 for e in entries):
                raise ValueError
        except (ValueError, TypeError, IndexError):
            raise bad(f"the {INDEX_KEY!r} index is malformed") from None
        by_digest: dict[str, np.ndarray] = {}
        for _, label, d, key in entries:
            if key not in tensors:
                raise bad(f"vector {label[:80]!r} names a tensor the file does not hold")
            if digest(tensors[key]) != d:
                raise bad(f"vector {label[:80]!r} does not match its digest")
            by_digest[d] = tensors[key]
        return cls(tuple((spec, label, d) for spec, label, d, _ in entries), by_digest)
