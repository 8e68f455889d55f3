"""What the drill tests share: a copy of the shipped flag file, a drill run as a
user runs it, the options that point it at the native stack, and the generators it
left running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nativestack.stack import NativeStack
from tests.support.flags import SHIPPED_FLAGS, copy_shipped
from tests.support.paths import ROOT
from tests.support.processes import command_lines

__all__ = [
    "SHIPPED_FLAGS",
    "copy_flags",
    "drill_command",
    "live_generators",
    "run_drill_module",
    "stack_options",
]


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


def stack_options(native: NativeStack) -> list[str]:
    """A drill's options that point it at every component of the native stack."""
    return [
        "--service-url", native.service_url,
        "--prometheus-url", native.prometheus_url,
        "--loki-url", native.loki_url,
        "--tempo-url", native.tempo_url,
        "--alertmanager-url", native.alertmanager_url,
    ]  # fmt: skip


def live_generators(url: str) -> list[str]:
    """The command lines of the traffic generators running against `url`."""
    return [
        command
        for command in command_lines().values()
        if "generate_traffic.py" in command and url in command
    ]
