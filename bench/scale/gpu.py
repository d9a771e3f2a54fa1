"""Throughput, memory and out-of-memory back-off of a ~1B-parameter Llama on GPU (issue 16).

Builds a randomly initialised Llama-architecture model from a config (TinyLlama-1.1B's
shape: 22 layers, d=2048, 32 heads, 4 key/value heads, vocabulary 32000; no download)
in bfloat16 on each GPU, and measures:

* tokens/s and peak memory of forward passes at growing batch size (128-token inputs,
  the base model without the LM head, as MSL's causal-LM adapter runs it);
* the back-off of MSL's batch runner (:func:`msl.models.text.backing_off`): with the
  process limited to a fraction of the GPU's memory, a batch too large for it is halved
  until it fits — a real CUDA out-of-memory error, not a simulated one;
* with 2 GPUs or more, one replica per GPU driven side by side (as ``--workers`` puts one
  Ray worker on each GPU): the scaling efficiency (goal >= 80% per added GPU).

Where there is no CUDA device it prints "no GPU" and exits 0. ``--tiny`` runs the same code
on a tiny config on the CPU (the out-of-memory error then injected), to check the script.

    python bench/scale/gpu.py
    python bench/scale/gpu.py --tiny
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SEQ = 128


def build(device: str, tiny: bool) -> Any:
    import torch
    import transformers

    if tiny:
        config = transformers.LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2)
    else:
        config = transformers.LlamaConfig(
            vocab_size=32000,
            hidden_size=2048,
            intermediate_size=5632,
            num_hidden_layers=22,
            num_attention_heads=32,
            num_key_value_heads=4,
            max_position_embeddings=2048,
        )
    dtype = torch.float32 if tiny else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model, config


def forward(model: Any, config: Any, rows: int, device: str) -> None:
    import torch

    ids = torch.randint(0, config.vocab_size, (rows, SEQ), device=device)
    with torch.inference_mode():
        model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def tokens_per_second(model: Any, config: Any, rows: int, device: str, repeats: int = 3) -> float:
    forward(model, config, rows, device)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        forward(model, config, rows, device)
    return rows * SEQ * repeats / (time.perf_counter() - start)


def sweep(model: Any, config: Any, device: str, batches: list[int]) -> None:
    import torch

    print(f"{'batch':>6} {'tokens/s':>12} {'peak memory':>12}")
    for rows in batches:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        try:
            rate = tokens_per_second(model, config, rows, device)
        except torch.OutOfMemoryError:
            print(f"{rows:>6} {'out of memory':>12}")
            break
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.startswith("cuda") else "n/a"
        print(f"{rows:>6} {rate:>12,.0f} {peak:>12}", flush=True)


def back_off(model: Any, config: Any, device: str, tiny: bool) -> None:
    """A batch too large for the memory allowed is halved (and halved again) until it fits."""
    import torch

    from msl.models.text import backing_off

    sizes: list[int] = []
    limit = 8  # tiny: rows that "fit"

    def run(part: list[int]) -> None:
        sizes.append(len(part))
        if tiny and len(part) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected: --tiny runs on the CPU)")
        forward(model, config, len(part), device)

    if tiny:
        rows = 64
    else:
        torch.cuda.empty_cache()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        total = torch.cuda.mem_get_info(device)[1]
        allowed = (weights + 4 * 2**30) / total  # the weights and 4 GiB of activations
        torch.cuda.set_per_process_memory_fraction(allowed, device)
        rows = 4096  # ~0.5 M tokens: one MLP activation alone is ~6 GB
        print(f"memory limited to {allowed:.1%} of {total / 2**30:.0f} GiB (weights + 4 GiB)")
    start = time.perf_counter()
    try:
        backing_off(list(range(rows)), run)
    finally:
        if not tiny:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    seconds = time.perf_counter() - start
    print(f"back-off: a batch of {rows} rows ran as {len(sizes)} forward calls "
          f"(sizes tried: {sorted(set(sizes), reverse=True)}), {rows * SEQ / seconds:,.0f} tokens/s, no crash")


def scaling(device_count: int, batch: int) -> None:
    """One replica per GPU, each in its own thread (CUDA releases the GIL), as Ray's
    one-worker-per-GPU placement does; efficiency = rate(n) / (n * rate(1))."""
    replicas = [build(f"cuda:{i}", tiny=False) for i in range(device_count)]
    single = tokens_per_second(*replicas[0], batch, "cuda:0")
    rates = [0.0] * device_count

    def drive(i: int) -> None:
        rates[i] = tokens_per_second(*replicas[i], batch, f"cuda:{i}", repeats=5)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(device_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(rates)
    print(f"{device_count} GPUs: {total:,.0f} tokens/s vs {single:,.0f} on one: "
          f"efficiency {total / (device_count * single):.0%} (goal >= 80%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny config on the CPU: checks the script, measures nothing"
    )
    parser.add_argument("--max-batch", type=int, default=512)
    args = parser.parse_args()
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("no GPU")
        return 0
    device = "cpu" if args.tiny else "cuda:0"
    model, config = build(device, args.tiny)
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(0) if device != "cpu" else "CPU"
    print(
        f"Llama, {params / 1e9:.2f} B parameters, {next(model.parameters()).dtype}, on {name}; inputs of {SEQ} tokens"
    )
    batches = [1 << k for k in range(args.max_batch.bit_length()) if 1 << k <= args.max_batch]
    sweep(model, config, device, batches[:4] if args.tiny else batches)
    back_off(model, config, device, args.tiny)
    if not args.tiny and torch.cuda.device_count() >= 2:
        del model
        torch.cuda.empty_cache()
        scaling(torch.cuda.device_count(), batch=64)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
