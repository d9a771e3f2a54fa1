"""The sentiment readout workload: 400 review prompts of SmolLM2-135M, each read out as
log p(" positive") − log p(" negative") of the next token.

One source for both sides of the comparison: :func:`spec_text` is the MSL spec, and
:func:`prompts` the same 400 texts, in the same order, for the hand-written script.
"""

from __future__ import annotations

import itertools

TEMPLATE = "Review: {name} said the {thing} was {adj}. Sentiment:"
NAMES = ["John", "Michael", "David", "Kevin", "Peter", "Thomas", "Henry", "Paul", "Mary", "Susan"]
THINGS = ["soup", "film", "hotel", "book"]
ADJECTIVES = ["good", "great", "wonderful", "excellent", "lovely", "bad", "awful", "terrible", "horrible", "dreadful"]
MODEL = "smollm2-135m"
POSITIVE, NEGATIVE = " positive", " negative"


def prompts() -> list[str]:
    """The 400 prompts in the template's fill order (slots in order, the last fastest)."""
    return [TEMPLATE.format(name=n, thing=t, adj=a) for n, t, a in itertools.product(NAMES, THINGS, ADJECTIVES)]


def _list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def spec_text() -> str:
    """The workload as a spec: one claim whose implicit aggregates report the readout's
    mean, minimum and maximum over the 400 prompts (the values compared with the script)."""
    return f"""msl 1.0

model lm: causal_lm = "{MODEL}"

data reviews = template(
  "{TEMPLATE}",
  name: {_list(NAMES)},
  thing: {_list(THINGS)},
  adj: {_list(ADJECTIVES)},
)

measure sentiment(t) = lm.logprob(t, "{POSITIVE}") - lm.logprob(t, "{NEGATIVE}")

verify readout {{
  for x in reviews
  expect mean(sentiment(x)) > -1000 and min(sentiment(x)) > -1000 and max(sentiment(x)) < 1000
}}
"""
