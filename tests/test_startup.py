"""Start-up: the ``msl`` command imports only what the command run needs.

``msl vnnlib`` is run once per instance in competitions, so every module it imports is paid
per instance; ``msl --help`` should be instant. Timings are too noisy for a test on a shared
machine, so these tests check what is imported (``sys.modules`` of a fresh process) instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from formal_oracles import export_onnx, random_mlp

from msl.cli import cli
from msl.findings import ClaimKind, Verdict
from msl.reporters import formats

REPO = Path(__file__).resolve().parents[1]
#: Never needed to build the command line, to print its help or to run ``msl vnnlib``.
HEAVY = ("torch", "transformers", "pydantic", "rich", "msl.findings", "msl.baseline", "msl.catalog",
         "msl.reporters", "msl.run", "msl.models.causal_lm")

PROP = (
    "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
    "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))\n"
    "(assert (>= Y_0 {bound}))\n"
)


def imported_by(code: str, *args: str) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after running ``code``, and what it printed."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.strip().splitlines()[-1])), proc.stdout


def test_the_command_line_imports_nothing_heavy() -> None:
    modules, _ = imported_by("import msl.cli")
    assert not {m for m in HEAVY if m in modules}
    assert "numpy" not in modules  # not even the engines' numpy: `msl --help` builds only the commands


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom msl.cli import cli\ntry:\n    cli(['--help'], prog_name='msl')\nexcept SystemExit:\n    pass"
    )
    modules, out = imported_by(code)
    assert "vnnlib" in out and "catalog" in out
    assert not {m for m in HEAVY if m in modules}


@pytest.mark.parametrize(("bound", "answer"), [(-1000, "sat"), (1000, "unsat")])
def test_vnnlib_imports_only_the_formal_engine(tmp_path: Path, bound: int, answer: str) -> None:
    net = export_onnx(random_mlp(np.random.default_rng(0), 2, [8], 2), 2, tmp_path / "n.onnx")
    prop = tmp_path / "p.vnnlib"
    prop.write_text(PROP.format(bound=bound))
    code = ("import sys\nfrom msl.cli import cli\ntry:\n"
            "    cli(['vnnlib', sys.argv[1], sys.argv[2], '--timeout', '20'], prog_name='msl')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code")
    modules, out = imported_by(code, str(net), str(prop))
    assert out.splitlines()[0] == answer
    assert not {m for m in HEAVY if m in modules}
    assert "onnxruntime" in modules  # the witness and the reader's cross-check are replayed


def test_lazy_choices_are_the_real_ones() -> None:
    """The ``--format``, ``--kind`` and ``--verdict`` choices are loaded on first use: they
    must still be exactly the registered formats and the findings' enums."""
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "missing.json", "--format", "nonsense"])
    assert result.exit_code == 2
    assert all(f"'{f}'" in result.output for f in formats()), result.output
    for option, enum in (("--kind", ClaimKind), ("--verdict", Verdict)):
        result = runner.invoke(cli, ["catalog", "search", option, "nonsense"])
        assert result.exit_code == 2
        assert all(f"'{v.value}'" in result.output for v in enum), result.output
    help_text = runner.invoke(cli, ["check", "--help"]).output
    assert "[" + "|".join(formats()) + "]" in help_text.replace("\n", "").replace(" ", "")
