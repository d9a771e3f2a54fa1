"""Sentence encoders: embeddings pooled the way sentence-transformers pools them.

A sentence-transformers directory describes its pipeline in ``modules.json``
(Transformer → Pooling → optionally Normalize), the pooling mode in
``1_Pooling/config.json`` and the truncation length in ``sentence_bert_config.json``.
The encoder reads those files (never the package's code) and reproduces the pipeline;
a plain Hugging Face directory without them gets mean pooling and no normalisation.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import torch

from msl.models.base import ModelLoadError, adapter
from msl.models.sites import ForwardContext
from msl.models.text import Batch, TransformerModel
from msl.queries import Embed, Query, QueryError, Result

POOLING_MODES = ("mean", "cls", "max")


@adapter("encoder")
class Encoder(TransformerModel):
    """``AutoModel`` + sentence-transformers pooling (and normalisation where configured)."""

    auto_class = "AutoModel"
    code_version = 1
    #: sentence embeddings pool the last hidden states; BERT's pooler head is never read
    unused_weights = ("pooler.",)
    batch_tokens = 8192
    max_batch = 128

    def _st_file(self, name: str) -> Any:
        """A sentence-transformers JSON file of the model directory, or ``None``."""
        if self.source.path is None or not self.source.path.is_dir():
            return None
        path = self.source.path / name
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {path}: {exc}") from None

    @cached_property
    def pooling(self) -> str:
        modules = self._st_file("modules.json") or []
        folder = next((m.get("path") for m in modules if str(m.get("type", "")).endswith(".Pooling")), None)
        config = self._st_file(f"{folder}/config.json") if folder else None
        if not config:
            return "mean"
        for mode in POOLING_MODES:
            if config.get(f"pooling_mode_{mode}_tokens") or config.get(f"pooling_mode_{mode}_token"):
                return mode
        raise ModelLoadError(f"unsupported pooling in '{self.ref}': {config}", hint="supported: mean, cls, max")

    @cached_property
    def normalize(self) -> bool:
        modules = self._st_file("modules.json") or []
        return any(str(m.get("type", "")).endswith(".Normalize") for m in modules)

    @property
    def max_length(self) -> int:
        config = self._st_file("sentence_bert_config.json") or {}
        return int(config.get("max_seq_length") or super().max_length)

    def behaviour(self) -> dict[str, Any]:
        """The sentence-transformers pipeline read from the model's own files."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

    def _ids(self, query: Query) -> tuple[int, ...]:
        # sentence-transformers truncates to max_seq_length (keeping the special tokens)
        # rather than refusing long inputs.
        text = query.text  # type: ignore[union-attr]
        ids = tuple(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])
        if not ids:
            raise QueryError("the tokenizer gives no tokens for an empty input")
        return ids

    def _forward(self, batch: Batch) -> torch.Tensor:
        out = self.module(input_ids=batch.input_ids, attention_mask=batch.attention_mask)  # type: ignore[operator]
        hidden = out.last_hidden_state.float()
        mask = batch.attention_mask[..., None].to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        else:
            pooled = hidden[torch.arange(hidden.shape[0]), torch.tensor(batch.offset)]
        return torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    def _answer(self, batch: Batch, output: Any, ctx: ForwardContext, results: list[Result | None]) -> None:
        super()._answer(batch, output, ctx, results)
        for b, row in enumerate(batch.rows):
            for slot, query in row.queries:
                if isinstance(query, Embed):
                    results[slot] = output[b].cpu().numpy()
