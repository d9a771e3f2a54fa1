"""Ray workers (``msl check --workers N``): the same findings as one process, a worker
that dies mid-run, Ray that cannot start; and the two things that make it exact — an
adapter's batch plan, whose parts run alone make the very batches of a whole run — and
the out-of-memory back-off of the batch runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_models import tiny_gpt2

from msl.models import load_model
from msl.progress import RunProgress
from msl.queries import (
    Add,
    Capture,
    ClassProbs,
    Generate,
    Intervention,
    LogProb,
    NetOutput,
    NextLogProbs,
    Patch,
    QueryFailed,
    Site,
    TokenSel,
    Vector,
)

REPO = Path(__file__).resolve().parents[1]

TEXTS = [
    "The soup was good.", "Kevin said the tea was charming.", "Not great.", "",
    "Michelle said the bread was awful and the coffee was cold, but the staff were kind.",
    "The pasta was wonderful.", "Bad.", "The cake was not bad at all, I would say it was lovely.",
] * 3 + [f"The dish number {i} was {'good' if i % 2 else 'bad'}." for i in range(30)]


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, QueryFailed) or isinstance(b, QueryFailed):
        return a == b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def check_parts(model: Any, queries: list[Any], intervention: Intervention | None = None) -> list[list[int]]:
    """Every query in exactly one part; each part run alone gives, bit for bit, what the
    whole run gives (one forward batch per part, the whole run's)."""
    whole = model.run(queries, intervention)
    parts = model.batch_plan(queries, intervention)
    assert sorted(i for p in parts for i in p) == list(range(len(queries)))
    for part in parts:
        alone = model.run([queries[i] for i in part], intervention)
        assert all(equal(whole[i], v) for i, v in zip(part, alone, strict=True)), part
    return parts


def test_classifier_parts_rerun_alone_give_identical_results() -> None:
    clf = load_model("organism:sentiment", "classifier", progress=False)
    clf.batch_tokens, clf.max_batch = 40, 3  # many small batches
    queries = [ClassProbs(t) for t in TEXTS] + [
        Capture("Bad.", Site("resid_post", 1)),
        Capture("Bad.", Site("resid_post", 99)),
    ]
    parts = check_parts(clf, queries)
    assert len(parts) >= 3
    assert len(queries) - 1 in parts[0]  # out of range, answered without a forward pass: in the first part


@pytest.mark.parametrize("op", ["none", "add", "patch"])
def test_causal_lm_parts_cover_scoring_and_generation(tmp_path: Path, op: str) -> None:
    lm = load_model(str(tiny_gpt2(tmp_path)), "causal_lm", progress=False)
    lm.batch_tokens, lm.max_batch = 24, 4
    words = ["the cat sat", "a dog ran fast", "the movie was very good", "it", "the mat", "red blue cat dog sat"]
    queries = (
        [LogProb(w, " on the mat") for w in words]
        + [NextLogProbs(w) for w in words]
        + [Generate(w, 3) for w in words]
        + [Generate(w, 5) for w in words[:3]]
    )
    site = Site("resid_post", 0)
    intervention = {
        "none": None,
        "add": Intervention((Add(site, Vector(np.linspace(-1, 1, lm.hidden_size, dtype=np.float32)), 3.0),)),
        "patch": Intervention((Patch(site, "the dog", TokenSel.last()),)),
    }[op]
    parts = check_parts(lm, queries, intervention)
    assert len(parts) >= 4
    generating = [p for p in parts if any(isinstance(queries[i], Generate) for i in p)]
    assert generating and all(all(isinstance(queries[i], Generate) for i in p) for p in generating)


def test_network_parts() -> None:
    net = load_model("organism:relu-net", "network", progress=False)
    rng = np.random.default_rng(0)
    queries = [NetOutput(tuple(rng.uniform(-1, 1, 4))) for _ in range(50)] + [NetOutput((1.0, 2.0))]
    parts = check_parts(net, queries)
    assert 50 in parts[0]  # the input of the wrong size, answered without running


# ── out-of-memory back-off ───────────────────────────────────────────────────────────────


def test_out_of_memory_halves_the_batch_and_retries() -> None:
    """On the real sentiment organism: a forward pass of more than 3 rows raises the
    CUDA out-of-memory error; the run still answers every query, with what an unconstrained
    run answers (float32 rounding), in more, smaller batches."""
    clf = load_model("organism:sentiment", "classifier", progress=False)
    queries = [ClassProbs(t) for t in TEXTS if t]
    expected = clf.run(queries)
    before = clf.stats.copy()
    clf.run(queries)
    plain_batches = clf.stats.batches - before.batches
    real_forward = clf._forward
    sizes: list[int] = []

    def forward(batch: Any) -> Any:
        sizes.append(len(batch.rows))
        if len(batch.rows) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(batch)

    clf._forward = forward  # type: ignore[method-assign]
    before = clf.stats.copy()
    got = clf.run(queries)
    assert not any(isinstance(v, QueryFailed) for v in got)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(s > 3 for s in sizes)  # the back-off was needed
    assert clf.stats.batches - before.batches > plain_batches
    assert clf.stats.rows - before.rows == len({clf.encode(q.text) for q in queries})  # each row counted once

    def never(batch: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    clf._forward = never  # type: ignore[method-assign]
    with pytest.raises(torch.OutOfMemoryError):  # one row that does not fit: the planner reports it per query
        clf.run(queries[:4])


def test_other_errors_are_not_retried() -> None:
    clf = load_model("organism:sentiment", "classifier", progress=False)
    calls: list[int] = []

    def forward(batch: Any) -> Any:
        calls.append(len(batch.rows))
        raise RuntimeError("shape mismatch")

    clf._forward = forward  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        clf.run([ClassProbs(t) for t in TEXTS if t])
    assert len(calls) == 1


# ── Ray ──────────────────────────────────────────────────────────────────────────────────

SPEC = """msl 1.0

model clf: classifier = "organism:sentiment"
model net: network = "organism:relu-net"

lexicon male = builtin("names.male")
lexicon female = builtin("names.female")
data praise = template("{name} said the {food} was {adj}.", name: male + female,
                       food: builtin("nouns.food"), adj: builtin("adjectives.positive"))
data plain = template("The {food} was {adj}.", food: builtin("nouns.food"), adj: builtin("adjectives.positive"))
transform gender_swap = swap(male, female)

verify names_do_not_matter {
  for x in sample(praise, 300)
  expect clf.label(x) == clf.label(gender_swap(x))
  tolerate 1%
}

verify reads_praise {
  for x in plain
  expect clf.prob(x, "positive") >= 0.6
}

verify praise_everywhere {
  forall x in praise
  expect clf.label(x) == "positive"
}

verify class_zero_never_wins_right_half {
  forall x in box(lower: [0, -1, -1, -1], upper: [1, 1, 1, 1])
  expect argmax(net(x)) != 0
}
"""


class Recorder(RunProgress):
    """Counts the model work reported: labels started, queries started and answered."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.started = self.answered = 0

    def work_started(self, model: str, queries: int, intervened: bool) -> None:
        self.labels.append(model)
        self.started += queries

    def advance(self, n: int) -> None:
        self.answered += n


def check(spec: Path, progress: RunProgress | None = None, **options: Any) -> list[dict[str, Any]]:
    from msl.pipeline import check_paths
    from msl.run import Runner, RunOptions

    specs, problems = check_paths([spec])
    assert specs, problems
    doc = Runner(RunOptions(cache=False, progress=False, **options), progress=progress).check(specs)
    return [json.loads(f.model_dump_json()) for f in doc.findings]


def identity(findings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["claim"]["name"], f["id"], f["verdict"], f["statistics"], f["counterexamples"]) for f in findings]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A local Ray runtime with 2 CPUs; workers see MSL_RAY_CRASH_ONCE, disarmed (the
    file exists) until a test removes it."""
    ray = pytest.importorskip("ray")
    import logging

    from msl import distributed

    marker = tmp_path_factory.mktemp("ray") / "crashed"
    marker.touch()
    os.environ[distributed.CRASH_ONCE_ENV] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield marker
    distributed.shutdown()
    ray.shutdown()
    del os.environ[distributed.CRASH_ONCE_ENV]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    spec = tmp_path_factory.mktemp("spec") / "ray.msl"
    spec.write_text(SPEC)
    return spec, check(spec)


@pytest.mark.slow
def test_two_workers_give_the_findings_of_one_process(local_ray: Path, in_process: Any) -> None:
    spec, expected = in_process
    assert [f["verdict"] for f in expected] == ["violated", "holds", "refuted", "refuted"]
    progress = Recorder()
    assert identity(check(spec, progress, workers=2)) == identity(expected)
    # the progress display counts every query answered by either worker, once
    assert progress.answered == progress.started > 0
    assert all(label.endswith("on 2 workers") for label in progress.labels)


@pytest.mark.slow
def test_one_worker_gives_the_findings_of_one_process(local_ray: Path, in_process: Any) -> None:
    spec, expected = in_process
    assert identity(check(spec, workers=1)) == identity(expected)


@pytest.mark.slow
def test_a_worker_that_dies_mid_run_is_replaced(local_ray: Path, in_process: Any) -> None:
    """The first worker call exits its process; Ray restarts the worker and re-runs the
    call, and the findings are those of one process."""
    spec, expected = in_process
    local_ray.unlink()
    got = check(spec, workers=2)
    assert local_ray.exists()  # the crash did happen
    assert identity(got) == identity(expected)


def run_msl(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )


MAIN = "import sys\nfrom msl.cli import main\nsys.argv = ['msl', *sys.argv[1:]]\nmain()"


def test_ray_that_cannot_be_joined_is_a_runtime_error() -> None:
    proc = run_msl(MAIN, "check", "specs/verify_relu.msl", "-q", "--ray", "127.0.0.1:1")
    assert proc.returncode == 3
    assert "cannot join the Ray cluster at 127.0.0.1:1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ray_missing_is_a_runtime_error_and_one_process_imports_no_ray() -> None:
    absent = "import sys\nsys.modules['ray'] = None\n" + MAIN
    proc = run_msl(absent, "check", "specs/verify_relu.msl", "-q", "--workers", "2")
    assert proc.returncode == 3
    assert "--workers and --ray need Ray, which is not installed" in proc.stderr
    assert "pip install 'msl[ray]'" in proc.stderr
    default = ("import sys\nfrom msl.run import Runner, RunOptions\nRunner(RunOptions(progress=False))\n"
               "print('ray' in sys.modules)")
    assert run_msl(default).stdout.strip() == "False"  # the single-process path never imports Ray


@pytest.mark.slow
def test_a_worker_dead_for_good_fails_its_queries_and_is_replaced(
    local_ray: Path, in_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no restarts allowed, the crashed call's queries end as `error` verdicts (no
    hang, no wrong verdict), and a fresh worker takes the dead one's place."""
    import ray

    from msl import distributed

    spec, expected = in_process
    distributed.shutdown()  # a session made with the restart settings below
    monkeypatch.setattr(distributed, "MAX_RESTARTS", 0)
    monkeypatch.setattr(distributed, "MAX_TASK_RETRIES", 0)
    local_ray.unlink()
    try:
        got = check(spec, workers=2)
        assert local_ray.exists()
        verdicts = {f["claim"]["name"]: f["verdict"] for f in got}
        assert "error" in verdicts.values()
        for f, want in zip(got, expected, strict=True):
            if f["verdict"] == "error":
                assert "the Ray worker failed" in f["error"]["message"]
            else:
                assert f["id"] == want["id"]
        workers = distributed._SESSION.workers  # type: ignore[union-attr]
        assert len(workers) == 2
        ray.get([w.__ray_ready__.remote() for w in workers], timeout=60)
    finally:
        distributed.shutdown()
