"""Batch 1 against length-bucketed batches on smollm2-135m: speed and agreement.

``python -m bench.planner.batching [--prompts 120] [--threads 1]`` runs the next-token
distributions of short prompts once at batch 1 and once with the adapter's default
bucketing, and prints both times and the largest difference of any log-probability.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.planner import workload as w
from msl.models import load_model
from msl.queries import NextLogProbs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("smollm2-135m", "causal_lm")
    pool = [f"The capital of {c} is" for c in w.CAPITALS] + w.control_sentences() + w.NEUTRAL
    prompts = [pool[i % len(pool)] + " ." * (i // len(pool)) for i in range(args.prompts)]
    queries = [NextLogProbs(p) for p in prompts]
    model.run(queries[:2])  # load and warm up
    default = model.max_batch
    model.max_batch = 1
    start = time.perf_counter()
    single = model.run(queries)
    t1 = time.perf_counter() - start
    model.max_batch = default
    before = model.stats.batches
    start = time.perf_counter()
    batched = model.run(queries)
    tb = time.perf_counter() - start
    worst = max(float(np.abs(a - b).max()) for a, b in zip(single, batched, strict=True))
    print(f"{len(prompts)} prompts, {torch.get_num_threads()} torch thread(s)")
    print(f"  batch 1:   {t1:6.2f} s")
    print(f"  bucketed:  {tb:6.2f} s in {model.stats.batches - before} batches  ({t1 / tb:.1f}x faster)")
    print(f"  largest log-probability difference: {worst:.2e}")


if __name__ == "__main__":
    main()
