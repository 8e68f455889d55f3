"""Waiting for a server process the test started to be ready to answer, and finding
the processes a test left running.

Every real server a test runs (the dice roller, Prometheus) is ready once an HTTP
endpoint answers 200. Until then the process may still die: a bad config, a port
taken in between. So the wait also watches the process and, when it gives up,
says why with what the process printed, instead of timing out on a dead server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from stackclient import wait_until, wait_until_serving

T = TypeVar("T")

__all__ = ["command_lines", "eventually", "wait_until_ready"]


def wait_until_ready(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    output: Callable[[], str],
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Return once GET `url` answers 200; raise if `process` exits or `timeout` passes.

    `output` reads what the process printed so far, for the error message.
    """

    why = wait_until_serving(process, url, timeout, interval=interval)
    if why == "exited":
        raise RuntimeError(f"{name} exited early:\n{output()}")
    if why == "timed out":
        raise RuntimeError(f"{name} not ready after {timeout} s:\n{output()}")


def eventually(
    probe: Callable[[], T | None], what: str, timeout: float, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns something truthy; fail saying `what` never happened
    within `timeout` seconds. For data that travels through a pipeline (a line to Loki,
    a span to Tempo): every wait has a limit."""
    found = wait_until(lambda: probe() or None, timeout, interval)
    if found is None:
        pytest.fail(f"{what} within {timeout:.0f} s")
    return found


def command_lines() -> dict[str, str]:
    """Pid -> command line (arguments joined by spaces) of every live process."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # it ended meanwhile
            found[proc.name] = command
    return found
