"""Ctrl-C or SIGTERM to `python3 tasks.py drill` while it drives the native stack: the
flag file gets its exact bytes back, the generator stops, the exit code is 130."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nativestack.stack import NativeStack
from tests.support.drills import copy_flags, live_generators, stack_options
from tests.support.paths import ROOT
from tests.support.processes import eventually

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]


def _wait(
    condition: Callable[[], object], what: str, timeout: float, process: subprocess.Popen[str]
) -> None:

    def met() -> bool | None:
        if condition():
            return True
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the drill ended ({process.returncode}) before {what}:\n{out}\n{err}")
        return None

    eventually(met, what, timeout, interval=0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_drill_puts_the_flag_file_back_byte_for_byte(
    native: NativeStack, tmp_path: Path, sig: signal.Signals
) -> None:
    flags = copy_flags(tmp_path)
    original = flags.read_bytes()
    command = [
        sys.executable,
        "tasks.py",
        "drill",
        "loaded-die",
        "--flags-file",
        str(flags),
        "--give-up",
        "600",
        *stack_options(native),
    ]
    # A session of its own: only the signal below reaches it, as from `kill`.
    drill = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait(lambda: flags.read_bytes() != original, "the drill switched its flag", 300, drill)
        _wait(lambda: live_generators(native.service_url), "traffic started", 60, drill)
        drill.send_signal(sig)
        out, err = drill.communicate(timeout=60)
    finally:
        if drill.poll() is None:
            drill.kill()
    assert drill.returncode == 130, err
    assert flags.read_bytes() == original
    assert sorted(p.name for p in flags.parent.iterdir()) == ["flags.json"]
    assert "Flags put back" in out
    assert err.strip().endswith("interrupted; the flags are back as they were"), err
    assert "Traceback" not in err
    assert live_generators(native.service_url) == []
