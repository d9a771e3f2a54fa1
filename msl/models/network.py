"""Piecewise-linear networks as ONNX files, run through onnxruntime.

``path`` is the user's file: the formal engine reads the very same file, and replays its
witnesses through this adapter, i.e. through onnxruntime on the original model (never only
through the project's own parsed copy). Batching: a network's function is what it computes
for one input at batch size 1; inputs are evaluated together (on a copy of the graph with a
symbolic batch dimension) only when :func:`msl.models.batching.batch_independent` shows that
no node mixes the inputs of a batch, otherwise one at a time (``y = x + ReduceSum(x, axis 0)``
is 2x for every input, not x plus the sum of the batch).

The fingerprint covers the initializers (name, dtype, shape, bytes, sorted by name),
the graph without them (the same weights in another graph are another network) and the
adapter's code version (how inputs are batched and run).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from msl.models.base import Model, ModelLoadError, ModelSource, ModelStats, ProgressFn, adapter, describe
from msl.models.batching import batch_session
from msl.models.fingerprint import digest_tensors, model_fingerprint
from msl.queries import Intervention, NetOutput, Query, QueryFailed, Result

#: Inputs per onnxruntime call.
NETWORK_BATCH = 4096
#: Queries per part of a network run one input at a time (any split gives the same results).
PART_UNBATCHED = 256


@adapter("network")
class OnnxNetwork(Model):
    """An ONNX network with one float input and one output."""

    code_version = 1

    def __init__(self, source: ModelSource, *, dtype: str, device: str, memo: object = None) -> None:
        import onnx
        import onnxruntime as ort

        if source.path is None or source.suffix != ".onnx":
            raise ModelLoadError(f"a network must be an .onnx file; '{source.ref}' is not one")
        if dtype != "float32":
            raise ModelLoadError(f"networks run in float32; dtype '{dtype}' is not supported for '{source.ref}'")
        self.source = source
        self.ref = source.ref
        self.path: Path = source.path
        self.dtype = dtype
        self.device = device
        self.stats = ModelStats()
        try:
            self.proto = onnx.load(str(self.path))
            providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
            if providers[0] not in ort.get_available_providers():
                raise ModelLoadError(f"onnxruntime here has no {providers[0]} for device '{device}'")
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._session, self.batched = batch_session(self.proto, ort, options, providers)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"cannot load network '{self.ref}': {describe(exc)}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(self._session.get_outputs()) != 1:
            raise ModelLoadError(f"network '{self.ref}' must have one input and one output")
        self._input = inputs[0].name
        dims = inputs[0].shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise ModelLoadError(f"network '{self.ref}' has a non-fixed input shape {inputs[0].shape}")
        self.input_shape: tuple[int, ...] = tuple(dims)
        self.num_inputs = math.prod(self.input_shape)

    @property
    def fingerprint(self) -> str:
        from onnx import numpy_helper

        graph = self.proto.graph
        tensors = sorted((t.name, numpy_helper.to_array(t)) for t in graph.initializer)
        weights = digest_tensors(tensors)
        bare = type(graph)()
        bare.CopyFrom(graph)
        del bare.initializer[:]
        structure = "sha256:" + hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()
        return model_fingerprint(f"{self.kind}/{self.code_version}", {"weights": weights, "graph": structure})

    def batch_plan(self, queries: Sequence[Query], intervention: Intervention | None = None) -> list[list[int]]:
        """The valid inputs' indices in the batches :meth:`run` makes of them (with the
        invalid ones, answered without running, in the first part); a network run one
        input at a time is cut into parts of :data:`PART_UNBATCHED`."""
        if intervention is not None and intervention.ops:
            return [list(range(len(queries)))] if queries else []
        slots = [i for i, q in enumerate(queries) if self._invalid(q) is None]
        step = NETWORK_BATCH if self.batched else PART_UNBATCHED
        parts = [slots[s : s + step] for s in range(0, len(slots), step)] or [[]]
        valid = set(slots)
        parts[0] = [i for i in range(len(queries)) if i not in valid] + parts[0]
        return [p for p in parts if p]

    def _invalid(self, query: Query) -> QueryFailed | None:
        """Why the network cannot run ``query``, or None when it can."""
        if not isinstance(query, NetOutput):
            return self.unsupported(query)
        if len(query.x) != self.num_inputs:
            return QueryFailed(f"network '{self.ref}' takes {self.num_inputs} inputs, not {len(query.x)}")
        return None

    def run(
        self,
        queries: Sequence[Query],
        intervention: Intervention | None = None,
        *,
        progress: ProgressFn | None = None,
    ) -> list[Result]:
        if intervention is not None and intervention.ops:
            return [QueryFailed(f"interventions are not supported on network '{self.ref}'")] * len(queries)
        results: list[Result | None] = [None] * len(queries)
        slots: list[int] = []
        rows: list[tuple[float, ...]] = []
        for slot, query in enumerate(queries):
            invalid = self._invalid(query)
            if invalid is not None:
                results[slot] = invalid
            else:
                slots.append(slot)
                rows.append(query.x)  # type: ignore[attr-defined]
        step = NETWORK_BATCH if self.batched else 1
        for s in range(0, len(rows), step):
            x = np.asarray(rows[s : s + step], dtype=np.float32).reshape(-1, *self.input_shape)
            y = self._session.run(None, {self._input: x})[0].reshape(x.shape[0], -1)
            for i, slot in enumerate(slots[s : s + step]):
                results[slot] = y[i].astype(np.float32, copy=True)
            self.stats.rows += x.shape[0]
            self.stats.batches += 1
            if progress is not None:
                progress(x.shape[0])
        return results  # type: ignore[return-value]
