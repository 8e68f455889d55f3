"""`python -m frontend` as users run it: bad settings stop it at once with exit code 2
and a message naming every bad variable, never a traceback; `--help` says how to run it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.tools import free_port


def run_frontend(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FRONTEND_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "frontend", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,  # a frontend that started serving instead would be stopped here
    )


def test_bad_settings_are_all_reported_with_exit_code_2_and_no_traceback() -> None:
    result = run_frontend(
        FRONTEND_PORT="0",
        FRONTEND_UPSTREAM_TIMEOUT_SECONDS="100",
        FRONTEND_DICE_ROLLER_URL="dice-roller:8100",
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "python -m frontend: invalid configuration:"
    problems = [line.strip() for line in lines[1:]]
    assert len(problems) == 3, problems
    port, url, timeout = problems  # in the order of the settings
    assert port.startswith("FRONTEND_PORT='0': ") and "greater than or equal to 1" in port
    assert url.startswith("FRONTEND_DICE_ROLLER_URL='dice-roller:8100': ") and "URL" in url
    assert timeout.startswith("FRONTEND_UPSTREAM_TIMEOUT_SECONDS='100': ")
    assert "less than or equal to 30" in timeout


def test_a_timeout_of_zero_is_refused() -> None:
    result = run_frontend(FRONTEND_UPSTREAM_TIMEOUT_SECONDS="0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "FRONTEND_UPSTREAM_TIMEOUT_SECONDS='0'" in result.stderr
    assert "greater than or equal to 0.1" in result.stderr


def test_a_bad_flag_is_named_as_the_flag() -> None:
    result = run_frontend("--port", "0", FRONTEND_PORT=str(free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--port='0'" in result.stderr
    assert "FRONTEND_PORT" not in result.stderr  # the variable was fine, the flag won


def test_a_bad_otel_variable_stops_it_too() -> None:
    result = run_frontend(OTEL_TRACES_EXPORTER="zipkin", FRONTEND_LOG_LEVEL="chatty")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "OTEL_TRACES_EXPORTER='zipkin'" in result.stderr
    assert "FRONTEND_LOG_LEVEL='chatty'" in result.stderr


def test_help_names_the_command_and_its_settings() -> None:
    result = run_frontend("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m frontend ")
    for name in ("--host", "--port", "FRONTEND_DICE_ROLLER_URL", "FRONTEND_GRAFANA_URL"):
        assert name in result.stdout
    assert "default 8200" in result.stdout


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = run_frontend("--dice-roller", "http://x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: python -m frontend ")
