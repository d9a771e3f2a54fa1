"""Sequence classifiers: class probabilities over the labels of the model's ``id2label``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from msl.models.base import adapter
from msl.models.facts import label_names
from msl.models.sites import ForwardContext
from msl.models.text import Batch, TransformerModel
from msl.queries import ClassProbs, Result


@adapter("classifier")
class Classifier(TransformerModel):
    """``AutoModelForSequenceClassification``; right padding, so positions start at 0."""

    auto_class = "AutoModelForSequenceClassification"
    code_version = 1
    batch_tokens = 4096
    max_batch = 64

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """Label names in output order (``id2label``; ``LABEL_i`` where the config has none);
        read once — every label query asks for them."""
        return label_names(getattr(self.config, "id2label", None) or {}, int(self.config.num_labels))

    def _forward(self, batch: Batch) -> torch.Tensor:
        if self.module.config.pad_token_id is None:
            # Decoder-style classifiers find each row's last real token by the pad id.
            self.module.config.pad_token_id = self._pad_id
        out = self.module(input_ids=batch.input_ids, attention_mask=batch.attention_mask)  # type: ignore[operator]
        return torch.softmax(out.logits.float(), dim=-1)

    def _answer(self, batch: Batch, output: Any, ctx: ForwardContext, results: list[Result | None]) -> None:
        super()._answer(batch, output, ctx, results)
        for b, row in enumerate(batch.rows):
            for slot, query in row.queries:
                if isinstance(query, ClassProbs):
                    results[slot] = output[b].cpu().numpy()
