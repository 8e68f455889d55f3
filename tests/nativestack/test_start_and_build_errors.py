"""A component that fails says which, how it was run, and what it printed; a refused
module says so in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nativestack.build import BuildError, _failure
from nativestack.stack import Component, NativeStackError, _wait_ready, native_stack
from nativestack.substitutions import ROOT


def test_a_component_that_exits_while_starting_is_named_with_its_command_and_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "loki.log"
    command = ["sh", "-c", "echo 'line one'; echo 'failed parsing config: bad key'; exit 1"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    component = Component("loki", process, ["loki", "-config.file=x.yaml"], log)
    with pytest.raises(NativeStackError) as raised:
        _wait_ready(component, "http://127.0.0.1:9/ready", timeout=30)
    message = str(raised.value)
    assert message.startswith("loki exited with code 1 while starting: `loki -config.file=x.yaml`")
    assert "failed parsing config: bad key" in message and str(log) in message


def test_a_component_never_ready_is_stopped_waiting_within_its_limit(tmp_path: Path) -> None:
    log = tmp_path / "alloy.log"
    log.write_text("waiting for nothing\n")
    process = subprocess.Popen(["sleep", "30"])
    try:
        component = Component("alloy", process, ["alloy", "run"], log)
        with pytest.raises(NativeStackError, match=r"alloy was not ready within 1 s") as raised:
            _wait_ready(component, "http://127.0.0.1:9/-/ready", timeout=1)
        assert "waiting for nothing" in str(raised.value)
    finally:
        component.stop(timeout=5)
    assert process.poll() is not None


def test_a_failed_build_names_the_component_the_command_and_the_logs_last_lines(
    tmp_path: Path,
) -> None:
    log = tmp_path / "build.log"
    log.write_text("\n".join(f"line {n}" for n in range(100)) + "\n")
    message = _failure("loki", ["go", "build", "./cmd/loki"], log)
    assert message.startswith("building loki failed: `go build ./cmd/loki`")
    assert "line 99" in message and "line 70" not in message
    assert isinstance(BuildError(message), RuntimeError)


def test_a_stage_the_native_stack_does_not_run_is_refused_before_anything_starts() -> None:
    stack = native_stack(stage=9)
    with pytest.raises(
        NativeStackError, match=r"stage 9: the native stack runs stages \[1, 2, 3, 4, 5\]"
    ):
        stack.__enter__()


def test_nativestack_names_the_stages_it_runs_in_its_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nativestack", "--stage", "9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--stage: invalid choice: 9 (choose from 1, 2, 3, 4, 5)" in result.stderr
    assert "Traceback" not in result.stderr
