"""The sentiment readout written by hand with transformers: what MSL is measured against.

Loads SmolLM2-135M from MSL's converted copy, tokenises the 400 prompts as MSL does (the
tokenizer's special tokens, left padding, position ids from the attention mask), runs
length-sorted batches of ``--batch-size`` prompts, reads the last position's next-token
log-probabilities only (``logits_to_keep=1``) and prints the readout's mean, minimum and
maximum as JSON, with the wall time since the process started.

    python -m bench.suite.handwritten --batch-size 64
"""

from __future__ import annotations

import time

T0 = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from bench.suite.workload import MODEL, NEGATIVE, POSITIVE, prompts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    folder = Path(os.environ.get("MSL_CACHE_DIR") or "~/.cache/msl").expanduser() / "models" / MODEL
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    (pos,), (neg,) = (tok(w, add_special_tokens=False)["input_ids"] for w in (POSITIVE, NEGATIVE))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = [tok(p)["input_ids"] for p in prompts()]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    readout = [0.0] * len(encoded)
    with torch.inference_mode():
        for s in range(0, len(order), args.batch_size):
            rows = order[s : s + args.batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, i in enumerate(rows):
                ids[b, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[b, width - len(encoded[i]) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1).double()
            for b, i in enumerate(rows):
                readout[i] = float(logp[b, pos] - logp[b, neg])
    print(json.dumps({
        "mean": sum(readout) / len(readout), "min": min(readout), "max": max(readout),
        "n": len(readout), "seconds": time.time() - T0,
    }))


if __name__ == "__main__":
    main()
