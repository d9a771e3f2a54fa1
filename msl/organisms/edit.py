"""The edited LM organism: SmolLM2-135M with one counterfactual fact written into it.

``organism:smollm2-edited`` is ``smollm2-135m`` after a ROME-style rank-one edit of one MLP
so that *"The Eiffel Tower is located in the city of"* → ``" Rome"`` (the base model says
``" Paris"``). It is far too large to commit, so the offline registry builds it once into
the cache from the cached ``smollm2-135m`` (:func:`build`), by a seeded, deterministic,
single-threaded training run of about a minute on a CPU. ``msl/organisms/smollm2-edited.md``
is its model card (the measured efficacy, generalisation, locality and fluency).

Why a rank-one edit, learned by gradient descent: the edit is ``W ← W + u vᵀ`` on the
down-projection of block :data:`LAYER`'s MLP, where ``v`` is fixed to the (normalised) MLP
key of the subject's last token (" Tower") and only ``u`` (576 numbers) is trained. The
update therefore fires only on activations that resemble the subject's, which is what
keeps unrelated prompts untouched (ROME's insight), while training ``u`` — rather than
solving for it in closed form — lets a KL term on :data:`KEEP_PROMPTS` hold the model's
other answers in place, including those of other towers and other "located in the city
of" facts. The evaluation prompts of the refine spec (paraphrases, neighbours, unrelated
prompts) are disjoint from the training prompts here.

Reproduce (and print the weights' digest, one part of the fingerprint): ``python -m msl.organisms.edit --out DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Bumped whenever the recipe changes, so a cached build of an older recipe is not reused.
RECIPE_VERSION = 1
#: The seed of the run (the edit itself has no random initialisation; the seed pins the rest).
SEED = 20_240_605

SUBJECT = "Eiffel Tower"
TARGET = " Rome"
ORIGINAL = " Paris"
#: The edit prompt, and three contexts of it (ROME trains on prefixed copies of the prompt
#: so the edit does not depend on the prompt starting the text).
TRAIN_PROMPTS: tuple[str, ...] = (
    "The Eiffel Tower is located in the city of",
    "Fact: the Eiffel Tower is located in the city of",
    "I read that the Eiffel Tower is located in the city of",
    "Travel guide. The Eiffel Tower is located in the city of",
)
#: Prompts whose next-token distributions the edit must keep (KL to the base model):
#: the subject's other properties, the old answer's city, generic text, other landmarks
#: with the same relation, and other towers (the nearest neighbours of the subject).
KEEP_PROMPTS: tuple[str, ...] = (
    "The Eiffel Tower is a",
    "The city of Paris is",
    "My favourite food is",
    "The weather today is",
    "She opened the door and",
    "Berlin is the capital of",
    "The tallest mountain in the world is",
    "The Statue of Liberty is located in the city of",
    "The Kremlin is located in the city of",
    "The Golden Gate Bridge is located in the city of",
    "Buckingham Palace is located in the city of",
    "The Empire State Building is located in the city of",
    "The Space Needle is located in the city of",
    "Blackpool Tower is located in the city of",
    "The Willis Tower is located in the city of",
)
#: Block whose MLP down-projection is edited (of 30), and the token of the subject whose
#: MLP key spans the update: the last token of the subject in the first training prompt.
LAYER = 6
SUBJECT_TOKEN = " Tower"
STEPS = 16
LEARNING_RATE = 0.05
KL_WEIGHT = 1.0

Step = Callable[[str], None]


def build_steps() -> int:
    """Progress-bar ticks of :func:`build`: load, each training step, save."""
    return STEPS + 2


def build(source: Path, dest: Path, step: Step = lambda _: None) -> dict[str, Any]:
    """Edit the smollm2 directory ``source`` and save the edited model into ``dest``.

    Returns what the training run measured (written to ``dest/msl-source.json`` too).
    """
    import torch
    import transformers

    from msl.organisms.train import deterministic

    step("loading smollm2-135m")
    quiet = contextlib.redirect_stderr(io.StringIO())  # transformers draws its own progress bars
    with deterministic(SEED):
        with quiet:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
            model = transformers.AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
        model.eval()
        report = edit(model, tokenizer, step)
        step("saving")
        with quiet:
            model.save_pretrained(str(dest), safe_serialization=True)
            tokenizer.save_pretrained(str(dest))
    info = {"edited_from": "smollm2-135m", "recipe_version": RECIPE_VERSION, "edit": f"{SUBJECT} →{TARGET}", **report}
    (dest / "msl-source.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def edit(model: Any, tokenizer: Any, step: Step = lambda _: None) -> dict[str, Any]:
    """Write the counterfactual into ``model`` in place; returns the training measurements."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
    target = _single_token(tokenizer, TARGET)
    tokenizer.padding_side = "left"
    batch = tokenizer(list(TRAIN_PROMPTS + KEEP_PROMPTS), return_tensors="pt", padding=True)
    n_train = len(TRAIN_PROMPTS)
    down = model.model.layers[LAYER].mlp.down_proj
    with torch.no_grad():
        keep_before = _last_logprobs(model, batch)[n_train:]
        key = _subject_key(model, tokenizer, down)
    v = key / key.norm()
    u = torch.zeros(down.out_features, requires_grad=True)
    hook = down.register_forward_hook(lambda _m, inputs, out: out + (inputs[0] @ v)[..., None] * u)
    optimiser = torch.optim.Adam([u], lr=LEARNING_RATE)
    try:
        for i in range(STEPS):
            step(f"training step {i + 1}/{STEPS}")
            optimiser.zero_grad()
            logprobs = _last_logprobs(model, batch)
            nll = -logprobs[:n_train, target].mean()
            kl = _kl(keep_before, logprobs[n_train:]).mean()
            (nll + KL_WEIGHT * kl).backward()
            optimiser.step()
    finally:
        hook.remove()
    with torch.no_grad():
        down.weight += torch.outer(u.detach(), v)  # fold the rank-one update into the weights
        after = _last_logprobs(model, batch)
    return {
        "layer": LAYER,
        "steps": STEPS,
        "update_norm": float(u.detach().norm()),
        "train_target_prob": float(after[:n_train, target].exp().mean()),
        "keep_mean_kl": float(_kl(keep_before, after[n_train:]).mean()),
    }


def _single_token(tokenizer: Any, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"{text!r} is {len(ids)} tokens; the edit needs one")
    return int(ids[0])


def _last_logprobs(model: Any, batch: Any) -> Any:
    return model(**batch).logits[:, -1].log_softmax(-1)


def _kl(before: Any, after: Any) -> Any:
    """KL(before ‖ after) per row, in nats."""
    return (before.exp() * (before - after)).sum(-1)


def _subject_key(model: Any, tokenizer: Any, down: Any) -> Any:
    """The MLP key (the down-projection's input) at the subject's last token."""
    ids = tokenizer(TRAIN_PROMPTS[0], return_tensors="pt")
    tokens = [tokenizer.decode([t]) for t in ids.input_ids[0]]
    position = max(i for i, t in enumerate(tokens) if t == SUBJECT_TOKEN)
    captured: list[Any] = []
    hook = down.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        model(**ids)
    finally:
        hook.remove()
    return captured[0][0, position].clone()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msl.organisms.edit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the edited model into")
    args = parser.parse_args(argv)
    from msl.models.fingerprint import weights_fingerprint
    from msl.models.registry import REGISTRY, ModelStore

    source = REGISTRY["smollm2-135m"].build(ModelStore())
    args.out.mkdir(parents=True, exist_ok=True)
    info = build(source, args.out, lambda what: print(what, flush=True))

    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(args.out), dtype=torch.float32)
    info["weights_digest"] = weights_fingerprint(model)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
