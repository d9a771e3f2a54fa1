"""Planner benchmark: the five claims of ``workload.py`` on smollm2-135m, four ways.

1. the planner, cold (empty result cache), driven in rounds as the evaluator drives it;
2. a hand-written script doing the same unique forward passes with transformers directly,
   left-padded, length-sorted, at each of several batch sizes (the best one is compared);
3. a naive loop: claim by claim, example by example, batch 1, nothing shared;
4. the planner again, warm (a new planner over the same disk cache).

All four compute the claims' values; the script checks they agree. Run from the repository
root: ``python -m bench.planner.run`` (see README.md).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.planner import workload as w
from msl.cache import ResultCache
from msl.models import CausalLM, load_model
from msl.plan import PENDING, Planner
from msl.queries import Add, Capture, Intervention, LogProb, NextLogProbs


def claims(model: CausalLM) -> dict[str, w.Claim]:
    return {name: make(lambda text: model.encode(text, special=False)[0]) for name, make in w.CLAIMS.items()}


# --------------------------------------------------------------------------- 1, 4: planner


def run_planner(model: CausalLM, cache: ResultCache) -> tuple[float, dict[str, float], Planner]:
    planner = Planner(cache)

    def answer(need: w.Need) -> list[Any] | None:
        values = [planner.get(model, q, i) for q, i in need]
        return None if any(v is PENDING for v in values) else values

    start = time.perf_counter()
    values = w.evaluate(claims(model), answer, planner.flush)
    return time.perf_counter() - start, values, planner


# --------------------------------------------------------------------------- 2: by hand


@contextmanager
def add_hook(hf: Any, layer: int, vector: torch.Tensor, scale: float, mask: list[torch.Tensor]) -> Iterator[None]:
    """Add ``scale * vector`` to block ``layer``'s output on real (unpadded) tokens."""

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        return output + scale * vector * mask[0][..., None]

    handle = hf.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def hand_written(model: CausalLM, batch_size: int) -> dict[str, float]:
    """The same unique forward passes, written out with transformers at one batch size."""
    hf, tok = model.module, model.tokenizer
    mask_box: list[torch.Tensor] = [torch.ones(1)]

    def batches(seqs: list[list[int]]) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                ids[b, width - len(seqs[i]) :] = torch.tensor(seqs[i])
                mask[b, width - len(seqs[i]) :] = 1
            mask_box[0] = mask
            yield idx, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

    def last_logprobs(texts: list[str]) -> list[np.ndarray]:
        seqs = [tok(t)["input_ids"] for t in texts]
        out: list[Any] = [None] * len(seqs)
        for idx, ids, mask, pos in batches(seqs):
            logits = hf(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1]
            for b, i in enumerate(idx):
                out[i] = torch.log_softmax(logits[b].float(), -1).numpy()
        return out

    def continuation_logprob(prompts: list[str], conts: list[str]) -> list[float]:
        heads = [tok(p)["input_ids"] for p in prompts]
        tails = [tok(c, add_special_tokens=False)["input_ids"] for c in conts]
        seqs = [h + t for h, t in zip(heads, tails, strict=True)]
        out = [0.0] * len(seqs)
        for idx, ids, mask, pos in batches(seqs):
            keep = max(len(tails[i]) for i in idx) + 1
            logp = torch.log_softmax(
                hf(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits.float(), -1
            )
            for b, i in enumerate(idx):
                n = len(tails[i])
                rows = logp[b, keep - 1 - n : keep - 1]
                out[i] = float(rows.gather(1, torch.tensor(tails[i])[:, None]).sum())
        return out

    def last_resid(texts: list[str], layer: int) -> list[np.ndarray]:
        seqs = [tok(t)["input_ids"] for t in texts]
        out: list[Any] = [None] * len(seqs)
        for idx, ids, mask, pos in batches(seqs):
            hidden = hf.model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
            for b, i in enumerate(idx):
                out[i] = hidden.hidden_states[layer + 1][b, -1].numpy()
        return out

    with torch.inference_mode():
        countries = [f"The capital of {c} is" for c in w.CAPITALS]
        capital_next = last_logprobs(countries)
        capital_lp = continuation_logprob(countries, [" " + c for c in w.CAPITALS.values()])
        controls = w.control_sentences()
        control_clean = last_logprobs(controls)
        acts = last_resid(w.POSITIVE + w.NEGATIVE, w.SITE.layer)
        vector = np.mean(acts[: len(w.POSITIVE)], axis=0) - np.mean(acts[len(w.POSITIVE) :], axis=0)
        v = torch.from_numpy(vector.astype(np.float32))
        steered: dict[float, list[np.ndarray]] = {}
        control_steered: list[np.ndarray] = []
        for scale in w.SCALES:
            with add_hook(hf, w.SITE.layer, v, scale, mask_box):
                if scale == 4.0:  # one group: the neutral and the control prompts together
                    both = last_logprobs(w.NEUTRAL + controls)
                    steered[scale], control_steered = both[: len(w.NEUTRAL)], both[len(w.NEUTRAL) :]
                else:
                    steered[scale] = last_logprobs(w.NEUTRAL)
    good, bad = model.token_id(" good"), model.token_id(" bad")
    firsts = [model.encode(" " + c, special=False)[0] for c in w.CAPITALS.values()]
    diffs = [float(np.mean([r[good] - r[bad] for r in steered[s]])) for s in w.SCALES]
    return {
        "capitals_mft": float(np.mean(capital_lp)),
        "capitals_top1": float(np.mean([int(np.argmax(r)) == t for r, t in zip(capital_next, firsts, strict=True)])),
        "name_invariance": max(w._kl(control_clean[i], control_clean[i + 1]) for i in range(0, len(controls), 2)),
        "love_steering": diffs[-1] - diffs[0],
        "love_side_effect": max(w._kl(a, b) for a, b in zip(control_clean, control_steered, strict=True)),
    }


# --------------------------------------------------------------------------- 3: naive


def naive(model: CausalLM) -> dict[str, float]:
    """Every claim on its own, every example at batch 1, with transformers directly."""
    hf, tok = model.module, model.tokenizer
    ones: list[torch.Tensor] = [torch.ones(1)]

    def one(query: Any, intervention: Intervention | None) -> Any:
        hook_ctx: Any = None
        if intervention is not None:
            (op,) = intervention.ops
            assert isinstance(op, Add)
            hook_ctx = add_hook(hf, op.site.layer, torch.from_numpy(op.vector.data.copy()), op.scale, ones)
            hook_ctx.__enter__()
        try:
            if isinstance(query, Capture):
                ids = torch.tensor([tok(query.text)["input_ids"]])
                out = hf.model(input_ids=ids, output_hidden_states=True)
                return out.hidden_states[query.site.layer + 1][0, -1].numpy()
            if isinstance(query, NextLogProbs):
                ids = torch.tensor([tok(query.text)["input_ids"]])
                return torch.log_softmax(hf(input_ids=ids).logits[0, -1].float(), -1).numpy()
            assert isinstance(query, LogProb)
            head, tail = tok(query.text)["input_ids"], tok(query.continuation, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(hf(input_ids=torch.tensor([head + tail])).logits[0].float(), -1)
            return float(sum(logp[len(head) - 1 + i, t] for i, t in enumerate(tail)))
        finally:
            if hook_ctx is not None:
                hook_ctx.__exit__(None, None, None)

    with torch.inference_mode():
        return w.evaluate(claims(model), lambda need: [one(q, i) for q, i in need], lambda: None)


# --------------------------------------------------------------------------- report


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def agree(a: dict[str, float], b: dict[str, float], tol: float = 1e-3) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= tol * max(1.0, abs(a[k])) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="8,16,32,64", help="batch sizes tried by the hand-written script")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast variant; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the (slow) naive loop")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model("smollm2-135m", "causal_lm")
    assert isinstance(model, CausalLM)
    model.module  # noqa: B018 - load the weights before any timing
    with torch.inference_mode():  # warm up the kernels
        model.module(input_ids=torch.tensor([[1, 2, 3]]))

    cold, warm = float("inf"), float("inf")
    hand = dict.fromkeys(sizes, float("inf"))
    hand_values: dict[str, float] = {}
    for _ in range(args.repeat):  # interleaved, so a busy spell on a shared machine hits all variants
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "results.sqlite"
            seconds, planned, planner = run_planner(model, ResultCache(path))
            cold = min(cold, seconds)
            seconds, rerun, warm_planner = run_planner(model, ResultCache(path))
            warm = min(warm, seconds)
        for size in sizes:
            seconds, hand_values = timed(lambda size=size: hand_written(model, size))
            hand[size] = min(hand[size], seconds)
    best = min(hand, key=hand.__getitem__)
    naive_s, naive_values = (float("nan"), None) if args.skip_naive else timed(lambda: naive(model))

    s = planner.stats
    print(f"workload: {len(w.CLAIMS)} claims on smollm2-135m ({model.dtype}, {model.device}, "
          f"{torch.get_num_threads()} torch thread(s), {platform.machine()}; best of {args.repeat} runs)")
    print(f"  planner: {s.requested} query requests, {s.unique} unique, {s.executed} executed, "
          f"{s.forward_passes} forward passes in {s.batches} batches")
    print(f"  warm re-run: {warm_planner.stats.disk_hits} disk hits, {warm_planner.stats.executed} executed")
    print()
    print(f"  planner, cold cache          {cold:8.2f} s")
    for size in sizes:
        mark = "  <- best" if size == best else ""
        print(f"  hand-written, batch {size:<3}      {hand[size]:8.2f} s{mark}")
    print(f"  naive loop, batch 1          {naive_s:8.2f} s   (run once)")
    print(f"  planner, warm cache          {warm:8.3f} s")
    print()
    print(f"  planner / hand-written best  {cold / hand[best]:8.2f}x   (target <= 1.2x)")
    print(f"  naive / planner              {naive_s / cold:8.2f}x   (target >= 5x)")
    print(f"  warm / cold                  {100 * warm / cold:7.2f} %   (target <= 5%)")
    print()
    checks = {"warm re-run": rerun, "hand-written": hand_values}
    if naive_values is not None:
        checks["naive loop"] = naive_values
    for name, values in checks.items():
        print(f"  claim values, planner vs {name}: {'agree' if agree(planned, values) else 'DISAGREE'}")
    print("  " + ", ".join(f"{k}={v:.4g}" for k, v in planned.items()))


if __name__ == "__main__":
    main()
