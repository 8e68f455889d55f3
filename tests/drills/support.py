"""What the drill tests share: a copy of the shipped flag file, and a drill run as a
user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.flags import SHIPPED_FLAGS, copy_shipped
from tests.support.paths import ROOT

__all__ = ["SHIPPED_FLAGS", "copy_flags", "drill_command", "run_drill_module"]


def copy_flags(directory: Path) -> Path:
    """A byte-for-byte copy of the shipped flag file, alone in its own folder (a drill
    writes beside it): tests never edit the repository's file."""
    folder = directory / "flags"
    folder.mkdir(parents=True, exist_ok=True)
    copy = copy_shipped(folder)
    assert copy.read_bytes() == SHIPPED_FLAGS.read_bytes()
    return copy


def drill_command(*args: str) -> list[str]:
    """`python -m drills ARGS` with this environment's Python: `tasks.py drill` runs the
    same module through `uv run`."""
    return [sys.executable, "-m", "drills", *args]


def run_drill_module(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a drill to its end; its output and exit code."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFY_", "DRILL_"))}
    return subprocess.run(
        drill_command(*args),
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
