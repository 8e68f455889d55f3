"""upstream-down end to end, against a stage-2 native stack of this module's own: the
frontend in front of the dice-roller, real Prometheus, Loki and Alloy (its service
graph included), the Tempo stand-in, the real traffic generator visiting the page.

The drill runs in this process, as `python3 tasks.py drill upstream-down` runs it, but
with a `ServiceControl` that stops the native dice-roller's process and starts a new
one in its place (what `docker compose stop` and `start` do under compose). The stack
must be as usable after the drill as before: the dice-roller answers and rolls through
the frontend succeed.
"""

from __future__ import annotations

import io
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drills.catalogue import DRILLS
from drills.runner import EXIT_OK, run_drill
from drills.settings import DrillSettings
from nativestack.stack import NativeStack, native_stack
from tests.support.drills import (
    NativeControl,
    drill_command,
    live_generators,
    python_command,
    signals_responded,
    stack_options,
    stack_settings,
)
from tests.support.native import NATIVE_SERVICE_ENV
from tests.support.paths import ROOT
from tests.support.processes import eventually

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

OUTAGE = [
    "The frontend answers 503",
    "Upstream errors up",
    "The dice-roller's scrape fails",
    "Failed rolls logged",
    "A trace ends at the frontend",
    "Calls to a virtual node",
]
RETURN = ["The dice-roller answers again", "Rolls succeed again"]


@pytest.fixture(scope="module")
def stage2() -> Iterator[tuple[NativeStack, NativeControl]]:
    with native_stack(stage=2, service_env=NATIVE_SERVICE_ENV) as stack:
        control = NativeControl(stack, NATIVE_SERVICE_ENV)
        try:
            yield stack, control
        finally:
            control.close()  # the dice-roller it started, which the stack does not know


def settings(stack: NativeStack) -> DrillSettings:
    """Every URL of the stack, and a shorter pace: rounds of 20 s, a probe a second."""
    return stack_settings(stack, frontend_url=stack.frontend_url, rate=5, round_seconds=20, poll=1)


@pytest.mark.timeout(900)
def test_the_outage_shows_in_the_frontend_s_signals_and_the_return_in_its_rolls(
    stage2: tuple[NativeStack, NativeControl],
) -> None:
    stack, control = stage2
    out = io.StringIO()
    code = run_drill(DRILLS["upstream-down"], settings(stack), out, control)
    text = out.getvalue()
    print(text)
    assert code == EXIT_OK, text
    assert control.calls == ["stop dice-roller", "start dice-roller"]
    order = signals_responded(text)
    assert sorted(order[: len(OUTAGE)]) == sorted(OUTAGE), order
    assert sorted(order[len(OUTAGE) :]) == sorted(RETURN), order
    assert '"Upstream Errors by Reason"' in text and 'dashboard "Dice Roller - Stage 2"' in text
    assert "HTTP 503 in" in text and "reason=unreachable:" in text
    assert "no dice-roller span" in text and "ConnectError" in text
    assert text.index("Started the dice-roller again") < text.index("The dice-roller answers")
    assert live_generators(stack.frontend_url) == []

    # The stack is as it was: the dice-roller answers, and so do rolls through the frontend.
    assert httpx.get(f"{stack.service_url}/", timeout=10).status_code == 200
    rolled = httpx.get(f"{stack.frontend_url}/api/roll", params={"die": "fair"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


@pytest.mark.timeout(300)
def test_ctrl_c_runs_the_start_command_and_stops_the_traffic(
    stage2: tuple[NativeStack, NativeControl], tmp_path: Path
) -> None:
    """The drill as users run it, with commands of its options: the stop command ends
    the dice-roller's process, Ctrl-C runs the start command (here it only leaves a
    mark: the test starts the process again itself, as compose would have)."""
    stack, control = stage2
    stopped = stack.components["dice-roller"].process
    pid = str(stopped.pid)
    started = tmp_path / "started"
    stop = python_command("import os, signal, sys; os.kill(int(sys.argv[1]), signal.SIGTERM)", pid)
    start = python_command("import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])")
    start += f" {shlex.quote(str(started))} {{service}}"
    command = drill_command(
        "upstream-down",
        *stack_options(stack),
        "--frontend-url",
        stack.frontend_url,
        "--stop-command",
        stop,
        "--start-command",
        start,
        "--give-up",
        "600",
    )
    drill = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:

        def sending() -> bool | None:
            assert drill.poll() is None, drill.communicate()
            return bool(live_generators(stack.frontend_url)) or None

        eventually(sending, "no traffic", 120, interval=0.1)
        drill.send_signal(signal.SIGINT)
        out, err = drill.communicate(timeout=60)
    finally:
        if drill.poll() is None:
            drill.kill()
        stopped.wait(30)  # uvicorn lets the requests in flight finish first
        control.start("dice-roller")  # what `docker compose start` would have done
    assert drill.returncode == 130, out + err
    assert stack.components["dice-roller"].process.pid != stopped.pid
    assert started.read_text() == "dice-roller"
    assert "Stopping the dice-roller: `" in out and "Started the dice-roller again" in out
    assert err.strip().endswith("interrupted; the dice-roller is started again"), err
    assert "Traceback" not in err
    assert live_generators(stack.frontend_url) == []
