"""`python -m die_service` and `die-service` as users run them: bad settings stop it
at once with exit code 2 and a message naming every bad variable, never a traceback;
`--help` says how to run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import free_port

COMMANDS = {
    "python -m die_service": [sys.executable, "-m", "die_service"],
    "die-service": [str(Path(sys.executable).parent / "die-service")],
}


def run(
    *args: str, prog: str = "python -m die_service", **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIE_SERVICE_", "OTEL_")) and k != "SANDBOX_PROG"
    }
    return subprocess.run(
        [*COMMANDS[prog], *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,  # a service that started serving instead would be stopped here
    )


@pytest.mark.parametrize("prog", list(COMMANDS))
def test_a_bad_port_says_what_is_allowed_with_exit_code_2_and_no_traceback(prog: str) -> None:
    result = run(prog=prog, DIE_SERVICE_PORT="80000")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{prog}: invalid configuration:",
        "  DIE_SERVICE_PORT='80000': Input should be less than or equal to 65535 "
        "(TCP port to listen on.)",
    ]


def test_every_bad_value_is_reported_at_once() -> None:
    result = run(
        DIE_SERVICE_PORT="port", DIE_SERVICE_LOG_LEVEL="chatty", OTEL_TRACES_EXPORTER="zipkin"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for named in (
        "DIE_SERVICE_PORT='port'",
        "DIE_SERVICE_LOG_LEVEL='chatty'",
        "OTEL_TRACES_EXPORTER='zipkin'",
    ):
        assert named in result.stderr


def test_a_bad_flag_is_named_as_the_flag() -> None:
    result = run("--port", "0", DIE_SERVICE_PORT=str(free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--port='0'" in result.stderr
    assert "DIE_SERVICE_PORT" not in result.stderr  # the variable was fine, the flag won


@pytest.mark.parametrize("prog", list(COMMANDS))
def test_help_names_the_command_and_its_settings(prog: str) -> None:
    result = run("--help", prog=prog)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: {prog} ")
    for name in (
        "--host",
        "--port",
        "DIE_SERVICE_HOST",
        "DIE_SERVICE_PORT",
        "DIE_SERVICE_LOG_LEVEL",
    ):
        assert name in result.stdout
    assert "default 8300" in result.stdout


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = run("--dice", "d7")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: python -m die_service ")
