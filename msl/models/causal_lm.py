"""Causal language models: log-probabilities, next-token distributions, generation, lens.

The forward pass runs the base model (the transformer without its head) and applies the
unembedding only at the positions a query reads, in chunks: computing ``[batch, length,
vocab]`` logits for every position would cost more memory traffic than the model itself.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from msl.models.base import ProgressFn, UnsupportedArchitecture, adapter
from msl.models.sites import ForwardContext, ResolvedOp, hooked
from msl.models.text import Batch, Row, TransformerModel, _parts, backing_off, buckets
from msl.queries import (
    Generate,
    Intervention,
    Lens,
    LensResult,
    LogProb,
    NextLogProbs,
    Perplexity,
    Query,
    QueryError,
    QueryFailed,
    Result,
)

#: Positions unembedded at once; bounds the ``[chunk, vocab]`` log-softmax buffer.
UNEMBED_CHUNK = 256


@adapter("causal_lm")
class CausalLM(TransformerModel):
    """``AutoModelForCausalLM``: left padding, position ids from the attention mask."""

    auto_class = "AutoModelForCausalLM"
    code_version = 1
    padding_side = "left"
    batch_tokens = 2048
    max_batch = 64

    # ------------------------------------------------------------------ token sequences

    def _ids(self, query: Query) -> tuple[int, ...]:
        if isinstance(query, LogProb):
            prompt = self.encode(query.text)
            if not prompt:
                raise QueryError("LogProb of an empty prompt: the tokenizer adds no BOS token to condition on")
            ids = prompt + self.encode(query.continuation, special=False)
            if len(ids) > self.max_length:
                raise QueryError(f"input of {len(ids)} tokens is longer than the model's limit of {self.max_length}")
            return ids
        ids = super()._ids(query)
        if isinstance(query, Perplexity) and len(ids) < 2:
            raise QueryError("perplexity needs a text of at least two tokens")
        return ids

    def _fed(self, query: Query, ids: tuple[int, ...], ops: list[ResolvedOp]) -> tuple[int, ...]:
        """A continuation's last token is read, never fed: the log-probability of each of its
        tokens comes from the position before it, and a causal model's positions do not
        see what follows them. So ``logprob(x, " positive")`` and ``logprob(x, " negative")``
        share the forward pass of ``x`` (half the work of feeding each in full). Under an
        intervention the whole sequence is fed as before, since a token selector
        (``tokens: last``) counts the positions of the input it is given."""
        if isinstance(query, LogProb) and not ops and len(ids) > len(self.encode(query.text)):
            return ids[:-1]
        return ids

    def _check(self, query: Query, ids: tuple[int, ...], ops: list[ResolvedOp]) -> None:
        super()._check(query, ids, ops)
        if isinstance(query, Lens):
            self.token_id(query.target)
            if self.sites.final_norm is None:
                raise QueryError(f"the logit lens needs a final norm, and '{self.ref}' has none mapped")

    def _captures(self, query: Query) -> set[tuple[str, int]]:
        if isinstance(query, Lens):
            return {("resid_post", layer) for layer in range(self.num_layers)}
        return super()._captures(query)

    # ------------------------------------------------------------------ forward and answers

    def _base_forward(self, **kwargs: Any) -> Any:
        return self.module.base_model(**kwargs)  # type: ignore[operator]

    def _forward(self, batch: Batch) -> torch.Tensor:
        out = self._base_forward(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
        return out.last_hidden_state

    def _unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 logits from final hidden states (after the final norm)."""
        logits = self.module.get_output_embeddings()(hidden).float()  # type: ignore[operator]
        cap = getattr(self.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def _answer(self, batch: Batch, output: Any, ctx: ForwardContext, results: list[Result | None]) -> None:
        super()._answer(batch, output, ctx, results)
        hidden: torch.Tensor = output
        # Every (row, position) a query reads, with the token whose log-prob it wants (-1: all).
        pos_b: list[int] = []
        pos_t: list[int] = []
        target: list[int] = []
        wanted: list[tuple[int, Query, int, int]] = []  # slot, query, first flat index, count
        for b, row in enumerate(batch.rows):
            n = len(row.ids)
            for slot, query in row.queries:
                if isinstance(query, NextLogProbs):
                    first, tokens = n - 1, [-1]
                elif isinstance(query, LogProb):
                    first = len(self.encode(query.text)) - 1
                    tokens = list(self.encode(query.continuation, special=False))  # row.ids may lack the last
                elif isinstance(query, Perplexity):
                    first, tokens = 0, list(row.ids[1:])
                elif isinstance(query, Lens):
                    results[slot] = self._lens(ctx, b, batch.offset[b] + n - 1, self.token_id(query.target))
                    continue
                else:
                    continue
                wanted.append((slot, query, len(target), len(tokens)))
                for i, tok in enumerate(tokens):
                    pos_b.append(b)
                    pos_t.append(batch.offset[b] + first + i)
                    target.append(tok)
        if not wanted:
            return
        token_logp = np.zeros(len(target), dtype=np.float64)
        full: dict[int, np.ndarray] = {}
        tgt = torch.tensor(target, device=hidden.device)
        for s in range(0, len(target), UNEMBED_CHUNK):
            e = min(s + UNEMBED_CHUNK, len(target))
            logp = torch.log_softmax(self._unembed(hidden[pos_b[s:e], pos_t[s:e]]), dim=-1)
            t = tgt[s:e]
            picked = logp.gather(1, t.clamp(min=0)[:, None])[:, 0]
            token_logp[s:e] = picked.double().cpu().numpy()
            for i in torch.nonzero(t < 0).flatten().tolist():
                full[s + i] = logp[i].cpu().numpy()
        for slot, query, first, count in wanted:
            if isinstance(query, NextLogProbs):
                results[slot] = full[first]
            elif isinstance(query, LogProb):
                results[slot] = float(token_logp[first : first + count].sum())
            else:
                results[slot] = float(math.exp(-token_logp[first : first + count].mean()))

    def _lens(self, ctx: ForwardContext, b: int, position: int, target: int) -> LensResult:
        resid = torch.stack([ctx.captured[("resid_post", layer)][b, position] for layer in range(self.num_layers)])
        logp = torch.log_softmax(self._unembed(self.sites.final_norm(resid)), dim=-1)  # type: ignore[misc]
        own = logp[:, target]
        rank = (logp > own[:, None]).sum(dim=-1) + 1  # 1 = the top token
        return LensResult(own.cpu().numpy().astype(np.float32), rank.cpu().numpy().astype(np.int64))

    # ------------------------------------------------------------------ generation

    def run(
        self,
        queries: Sequence[Query],
        intervention: Intervention | None = None,
        *,
        progress: ProgressFn | None = None,
    ) -> list[Result]:
        gen = [i for i, q in enumerate(queries) if isinstance(q, Generate)]
        if not gen:
            return super().run(queries, intervention, progress=progress)
        gen_set = set(gen)
        rest = [i for i in range(len(queries)) if i not in gen_set]
        results: list[Result | None] = [None] * len(queries)
        for i, value in zip(
            rest, super().run([queries[i] for i in rest], intervention, progress=progress), strict=True
        ):
            results[i] = value
        for i, value in zip(gen, self._generate([queries[i] for i in gen], intervention, progress), strict=True):  # type: ignore[misc]
            results[i] = value
        return results  # type: ignore[return-value]

    def batch_plan(self, queries: Sequence[Query], intervention: Intervention | None = None) -> list[list[int]]:
        """As :meth:`TransformerModel.batch_plan`: scoring batches first, then each
        generation batch (of one number of new tokens), as :meth:`run` runs them."""
        gen = [i for i, q in enumerate(queries) if isinstance(q, Generate)]
        gen_set = set(gen)
        rest = [i for i in range(len(queries)) if i not in gen_set]
        parts = [[rest[j] for j in part] for part in super().batch_plan([queries[i] for i in rest], intervention)]
        if gen:
            prepared = self._gen_rows([queries[i] for i in gen], intervention)  # type: ignore[misc]
            if isinstance(prepared, QueryFailed):
                return [*parts, gen]
            _, by_steps, results = prepared
            groups = [
                g for _, rows in sorted(by_steps.items()) for g in buckets(rows, self.batch_tokens, self.max_batch)
            ]
            parts += [[gen[j] for j in part] for part in _parts(groups, results)]
        return parts

    def _gen_rows(
        self, queries: list[Generate], intervention: Intervention | None
    ) -> QueryFailed | tuple[list[ResolvedOp], dict[int, list[Row]], list[Result | None]]:
        """The bound intervention, the unique prompts by number of new tokens, and the
        results of queries that fail before decoding; or one failure for all."""
        results: list[Result | None] = [None] * len(queries)
        try:
            ops = self._ops(intervention)
        except (QueryError, UnsupportedArchitecture) as exc:
            return QueryFailed(exc.message)
        rows: dict[tuple[tuple[int, ...], int], Row] = {}
        for slot, query in enumerate(queries):
            try:
                ids = self._ids(query)
                self._check(query, ids, ops)
            except QueryError as exc:
                results[slot] = QueryFailed(exc.message)
                continue
            rows.setdefault((ids, query.max_new_tokens), Row(ids)).queries.append((slot, query))
        by_steps: dict[int, list[Row]] = {}
        for (_, steps), row in rows.items():
            by_steps.setdefault(steps, []).append(row)
        return ops, by_steps, results

    def _generate(
        self, queries: list[Generate], intervention: Intervention | None, progress: ProgressFn | None
    ) -> list[Result]:
        """Greedy decoding with a key/value cache, batched like scoring (left padding)."""
        prepared = self._gen_rows(queries, intervention)
        if isinstance(prepared, QueryFailed):
            return [prepared] * len(queries)
        ops, by_steps, results = prepared
        stops = self._stop_ids()
        with hooked(self.sites, ops, set(), self._context) if ops else contextlib.nullcontext():
            for steps, group_rows in sorted(by_steps.items()):
                for group in buckets(group_rows, self.batch_tokens, self.max_batch):
                    backing_off(group, lambda part, steps=steps: self._decode_into(part, steps, stops, results))  # type: ignore[misc]
                    if progress is not None:
                        progress(sum(len(r.queries) for r in group))
        return results  # type: ignore[return-value]

    def _decode_into(self, group: list[Row], steps: int, stops: set[int], results: list[Result | None]) -> None:
        for row, new in zip(group, self._decode_batch(group, steps, stops), strict=True):
            text = self.decode(new)
            for slot, _ in row.queries:
                results[slot] = text

    def _stop_ids(self) -> set[int]:
        stops: set[int] = set()
        for source in (self.config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                stops.add(source)
            elif source:
                stops.update(source)
        return stops

    def _decode_batch(self, group: list[Row], steps: int, stops: set[int]) -> list[list[int]]:
        batch = self._collate(group)
        cache_arg = (
            "cache" if "cache" in inspect.signature(self.module.base_model.forward).parameters else "past_key_values"
        )
        mask, positions = batch.attention_mask, batch.position_ids[:, -1:]
        new: list[list[int]] = [[] for _ in group]
        done = torch.zeros(len(group), dtype=torch.bool, device=mask.device)
        cache = None
        inputs = batch.input_ids
        with torch.inference_mode():
            for step in range(steps):
                if step == 0:
                    self._ctx = ForwardContext(batch.real_index, batch.lengths)
                    kwargs = {"position_ids": batch.position_ids}
                else:
                    self._ctx = ForwardContext((batch.lengths + step - 1)[:, None], batch.lengths, prompt_pass=False)
                    positions = positions + 1
                    kwargs = {"position_ids": positions, cache_arg: cache}
                out = self._base_forward(input_ids=inputs, attention_mask=mask, use_cache=True, **kwargs)
                cache = getattr(out, cache_arg)
                token = self._unembed(out.last_hidden_state[:, -1]).argmax(dim=-1)
                for b, tok in enumerate(token.tolist()):
                    if not done[b]:
                        if tok in stops:
                            done[b] = True
                        else:
                            new[b].append(tok)
                self.stats.batches += 1
                if bool(done.all()):
                    break
                inputs = token[:, None]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        self._ctx = None
        self.stats.rows += len(group)
        self.stats.padded_tokens += int(batch.input_ids.numel())
        return new
