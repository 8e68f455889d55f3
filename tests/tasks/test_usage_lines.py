"""Every command names itself in its usage line as it was run: `python -m dice_roller`,
`dice-roller`, `generate_traffic.py`, `python3 tasks.py verify`, so that what `--help` and
a usage error print can be typed again as it stands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

BIN = Path(sys.executable).parent
"""The virtual environment's scripts: the workspace members' entry points."""

MODULES = {
    "dice_roller": "dice-roller",
    "frontend": "frontend",
    "die_service": "die-service",
    "traffic_gen": "traffic-gen",
    "alert_receiver": "alert-receiver",
    "verify": None,
    "drills": None,
    "bench": None,
    "nativestack": None,
}
"""Each `python -m` command, and the entry point that runs the same (None: none)."""

WAYS_IN = [
    *(([sys.executable, "-m", module], f"python -m {module}") for module in MODULES),
    *(([str(BIN / script)], script) for script in MODULES.values() if script),
    (
        [sys.executable, str(ROOT / "traffic-gen" / "generate_traffic.py")],
        "generate_traffic.py",
    ),
]


def help_of(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_PROG"}
    return subprocess.run(
        [*command, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("command", "name"), WAYS_IN, ids=[name for _, name in WAYS_IN])
def test_each_command_names_itself(command: list[str], name: str) -> None:
    done = help_of(command)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name} "), done.stdout.splitlines()[:1]


def tasks_py_commands() -> list[str]:
    """The commands `python3 tasks.py help` lists, one a line: `python3 tasks.py NAME ...`."""
    done = subprocess.run(
        [sys.executable, "tasks.py", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python3 tasks.py COMMAND ")
    return re.findall(r"(?m)^\s+python3 tasks\.py ([a-z]+)\b", done.stdout)


def test_tasks_py_lists_its_commands() -> None:
    commands = tasks_py_commands()
    assert len(commands) == len(set(commands))
    assert {"run", "test", "lint", "verify", "drill", "bench", "nativestack", "audit"} <= set(
        commands
    )
    assert "compose" in commands


@pytest.mark.parametrize("command", tasks_py_commands())
def test_each_tasks_py_command_names_itself(command: str) -> None:
    """`python3 tasks.py verify --help` says `python3 tasks.py verify`, not the
    `python -m verify` it runs; `test --help` sets nothing up and runs no test."""
    done = help_of([sys.executable, "tasks.py", command])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python3 tasks.py {command} "), done.stdout[:200]


def test_an_unknown_tasks_py_command_prints_the_usage() -> None:
    done = subprocess.run(
        [sys.executable, "tasks.py", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python3 tasks.py COMMAND ")
