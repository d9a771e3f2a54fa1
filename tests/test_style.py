"""The code base passes the lint rules pyproject.toml selects (pycodestyle, pyflakes: no unused
imports or variables, no undefined names; import order, bugbear, pyupgrade), and the reference
documents every built-in."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    # the rules are pyproject.toml's selection, so that CI and editors check the same ones
    result = subprocess.run([ruff, "check", "msl", "tests", "bench", "editors"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_builtin_is_in_the_reference() -> None:
    """Adding a built-in is one decorated function — and one line of docs/language.md."""
    from msl.builtins import all_builtins

    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    missing = sorted({b.name for b in all_builtins()
                      if f"{b.name}(" not in doc and f"`{b.name}`" not in doc and f".{b.name}" not in doc})
    assert not missing, f"built-ins not documented in docs/language.md: {missing}"
