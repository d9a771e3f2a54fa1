"""Shared fixtures. Real models load once per test session (the first use on a machine
also fetches and converts them into ``$MSL_CACHE_DIR``, about half a minute)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI gates on this suite, so property-based tests draw the same examples on every run by
# default; `HYPOTHESIS_PROFILE=explore pytest` draws fresh, and more, examples.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

#: Spec files here are test data (the parser's corpus, golden error cases), not claims for
#: the installed `msl` pytest plugin to collect and run.
collect_ignore_glob = ["corpus/*.msl", "golden/*.msl"]


def pytest_configure(config: pytest.Config) -> None:
    # The test machines are shared: one thread per test process avoids the thread
    # oversubscription that makes torch many times slower under load.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2():  # type: ignore[no-untyped-def]
    """smollm2-135m from the offline registry, weights loaded."""
    from msl.models import load_model

    model = load_model("smollm2-135m", "causal_lm")
    model.module  # noqa: B018 - load the weights once, here
    return model


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    from msl.models import load_model

    return load_model("minilm-l6", "encoder")
