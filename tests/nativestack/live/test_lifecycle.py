"""`python3 tasks.py nativestack` stops everything it started, on SIGTERM and on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]


def namespaces_of(pid: int) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"dsn-{pid}-")]


def pids_in(namespaces: list[str]) -> set[int]:
    """Every process running in `namespaces`: the components."""
    found: set[int] = set()
    for namespace in namespaces:
        listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
        found |= {int(pid) for pid in listed.stdout.split()}
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_component_and_removes_the_namespaces(
    sig: signal.Signals, tmp_path: Path
) -> None:
    stack = subprocess.Popen(
        [sys.executable, "-m", "nativestack", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert stack.stdout is not None
        seen = []
        deadline = time.monotonic() + 180
        for line in stack.stdout:
            seen.append(line)
            if line.startswith("Check it box by box") or time.monotonic() > deadline:
                break
        assert any("The stack is up" in line for line in seen), "".join(seen)
        components = pids_in(namespaces_of(stack.pid))
        assert len(components) >= 5, "prometheus, loki, tempo, alloy, dice-roller"
        stack.send_signal(sig)
        stack.wait(timeout=60)
        assert namespaces_of(stack.pid) == []
        assert alive(components) == set()
    finally:
        if stack.poll() is None:  # the test failed early: stop it the polite way first
            stack.terminate()
            try:
                stack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
                stack.wait()
