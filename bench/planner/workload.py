"""A realistic multi-claim workload on smollm2-135m, as the evaluator would pose it.

Five claims, sharing prompts the way real specs do:

1. ``capitals_mft`` (verify, templated MFT): for each country, the log-probability of the
   right capital after "The capital of {country} is", and
2. ``capitals_top1``: the greedy top token is the capital (same prompts: shared
   ``NextLogProbs``);
3. ``name_invariance`` (verify, invariance over a name swap): next-token distributions of
   sentences with a male and a female name must stay close (KL);
4. ``love_steering`` (steer, dose-response): the love−hate vector (mean difference of
   ``resid_post`` captures at block 6 on contrastive prompts) added at block 6 at scales
   0, 2, 4, 8 raises the " good"/" bad" logit difference on neutral prompts;
5. ``love_side_effect`` (steer, side effect): at scale 4, the KL on control prompts stays
   small; the control prompts are the name-swap sentences (shared with claim 3), and the
   scale-4 intervention is the same as claim 4's (shared intervention group).

Each claim is made from ``token_id``, the id of a text's first token, and is a generator: it yields
the list of (query, intervention) it needs, receives
the results, and may yield again (the steering claims first need their vector). That is
exactly the evaluator's round structure.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from msl.queries import Add, Capture, Intervention, LogProb, NextLogProbs, Site, TokenSel, Vector

Need = list[tuple[Any, Intervention | None]]
Claim = Generator[Need, list[Any], float]

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens", "Austria": "Vienna",
    "Portugal": "Lisbon", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw",
    "Ireland": "Dublin", "Hungary": "Budapest", "Denmark": "Copenhagen", "Belgium": "Brussels",
    "Netherlands": "Amsterdam", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Thailand": "Bangkok", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad", "India": "New Delhi",
    "Canada": "Ottawa", "Australia": "Canberra", "Argentina": "Buenos Aires", "Mexico": "Mexico City",
    "Colombia": "Bogota", "Vietnam": "Hanoi", "Nigeria": "Abuja", "Morocco": "Rabat", "Ukraine": "Kyiv",
    "Romania": "Bucharest", "Czechia": "Prague",
}
NAMES = [("John", "Mary"), ("James", "Linda"), ("Robert", "Susan"), ("Michael", "Sarah"), ("David", "Emma")]
SENTENCES = [
    "{name} went to the market and bought", "After dinner, {name} decided to", "{name} works at the hospital as a",
    "Yesterday {name} told me that", "{name} opened the letter and", "Everyone agreed that {name} was",
    "{name} is studying to become a",
]
POSITIVE = [
    "I love this",
    "I adore you",
    "What a lovely day",
    "We love our friends",
    "This is wonderful",
    "I really like it",
]
NEGATIVE = [
    "I hate this",
    "I despise you",
    "What a horrible day",
    "We hate our enemies",
    "This is terrible",
    "I really dislike it",
]
NEUTRAL = [
    "The weather today is", "My opinion of the movie is", "The food at the restaurant was", "I think the book is",
    "The new phone feels", "Our trip to the coast was", "The meeting this morning was", "The painting on the wall is",
    "Working from home is", "The concert last night was", "This neighbourhood is", "The train ride was",
]
SITE = Site("resid_post", 6)
SCALES = (0.0, 2.0, 4.0, 8.0)


def _kl(p_log: np.ndarray, q_log: np.ndarray) -> float:
    return float(np.sum(np.exp(p_log) * (p_log - q_log)))


def capitals_mft(token_id: Callable[[str], int]) -> Claim:
    prompts = [f"The capital of {c} is" for c in CAPITALS]
    results = yield [(LogProb(p, " " + cap), None) for p, cap in zip(prompts, CAPITALS.values(), strict=True)]
    return float(np.mean(results))


def capitals_top1(token_id: Callable[[str], int]) -> Claim:
    prompts = [f"The capital of {c} is" for c in CAPITALS]
    results = yield [(NextLogProbs(p), None) for p in prompts]
    first = [token_id(" " + cap) for cap in CAPITALS.values()]
    return float(np.mean([int(np.argmax(r)) == t for r, t in zip(results, first, strict=True)]))


def control_sentences() -> list[str]:
    return [s.format(name=n) for s in SENTENCES for pair in NAMES for n in pair]


def name_invariance(token_id: Callable[[str], int]) -> Claim:
    sentences = control_sentences()
    results = yield [(NextLogProbs(s), None) for s in sentences]
    return max(_kl(results[i], results[i + 1]) for i in range(0, len(results), 2))


def _steering_vector() -> Generator[Need, list[Any], Vector]:
    acts = yield [(Capture(p, SITE, TokenSel("last")), None) for p in POSITIVE + NEGATIVE]
    pos, neg = np.mean(acts[: len(POSITIVE)], axis=0), np.mean(acts[len(POSITIVE) :], axis=0)
    return Vector(pos - neg)


def love_steering(token_id: Callable[[str], int]) -> Claim:
    vector = yield from _steering_vector()
    good, bad = token_id(" good"), token_id(" bad")
    needs: Need = [
        (NextLogProbs(p), Intervention((Add(SITE, vector, scale, TokenSel("all")),)))
        for scale in SCALES
        for p in NEUTRAL
    ]
    results = yield needs
    diffs = [
        float(np.mean([r[good] - r[bad] for r in results[i * len(NEUTRAL) : (i + 1) * len(NEUTRAL)]]))
        for i in range(len(SCALES))
    ]
    return float(diffs[-1] - diffs[0])


def love_side_effect(token_id: Callable[[str], int]) -> Claim:
    vector = yield from _steering_vector()
    steer = Intervention((Add(SITE, vector, 4.0, TokenSel("all")),))
    controls = control_sentences()
    results = yield [(NextLogProbs(s), None) for s in controls] + [(NextLogProbs(s), steer) for s in controls]
    n = len(controls)
    return max(_kl(results[i], results[n + i]) for i in range(n))


CLAIMS: dict[str, Callable[[Callable[[str], int]], Claim]] = {
    "capitals_mft": capitals_mft,
    "capitals_top1": capitals_top1,
    "name_invariance": name_invariance,
    "love_steering": love_steering,
    "love_side_effect": love_side_effect,
}


def evaluate(
    claims: dict[str, Claim], answer: Callable[[Need], list[Any] | None], flush: Callable[[], object]
) -> dict[str, float]:
    """Step every claim the way the evaluator does: ask for everything, then flush, and go
    round again until every claim is done. ``answer(need)`` returns the results, or ``None``
    while some are pending."""
    needs: dict[str, Need] = {name: next(gen) for name, gen in claims.items()}
    done: dict[str, float] = {}
    while needs:
        for name in list(needs):
            while name in needs:
                results = answer(needs[name])
                if results is None:
                    break
                try:
                    needs[name] = claims[name].send(results)
                except StopIteration as stop:
                    done[name] = stop.value
                    del needs[name]
        if needs:
            flush()
    return done
