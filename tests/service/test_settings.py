"""Bad settings stop the service at start-up with a clear message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from dice_roller.settings import SettingsError, load_settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dice_roller", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_defaults() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8100)
    assert settings.max_delay_seconds == 1.0 and settings.risky_failure_rate == 0.1
    assert settings.seed is None and settings.log_level == "INFO"
    assert settings.flags_file is None, "no flag file: the spec's behaviour"


def test_environment_and_flags() -> None:
    env = {"DICE_PORT": "9000", "DICE_SEED": "42", "DICE_LOG_LEVEL": "debug"}
    settings = load_settings(env, port="9001")
    assert settings.port == 9001 and settings.seed == 42 and settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DICE_PORT", "abc", "DICE_PORT='abc'"),
        ("DICE_PORT", "70000", "less than or equal to 65535"),
        ("DICE_MAX_DELAY_SECONDS", "-1", "greater than or equal to 0"),
        ("DICE_MAX_DELAY_SECONDS", "nan", "DICE_MAX_DELAY_SECONDS"),
        ("DICE_RISKY_FAILURE_RATE", "1.5", "less than or equal to 1"),
        ("DICE_SEED", "lucky", "DICE_SEED='lucky'"),
        ("DICE_FLAGS_FILE", "/no/such/flags.json", "'/no/such/flags.json': Path does not point"),
        ("DICE_FLAGS_FILE", "/", "DICE_FLAGS_FILE='/': Path does not point to a file"),
        ("DICE_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "must be one of otlp, console, none"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "must be http/protobuf"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert expected in str(raised.value)


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"DICE_PORT": "0", "DICE_RISKY_FAILURE_RATE": "2"})
    assert "DICE_PORT" in str(raised.value) and "DICE_RISKY_FAILURE_RATE" in str(raised.value)


def test_cli_exits_2_with_a_message_and_no_traceback() -> None:
    result = run_cli(DICE_MAX_DELAY_SECONDS="soon")
    assert result.returncode == 2
    assert "DICE_MAX_DELAY_SECONDS='soon'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

    result = run_cli(DICE_FLAGS_FILE="/no/such/flags.json")
    assert result.returncode == 2
    assert "DICE_FLAGS_FILE='/no/such/flags.json': Path does not point to a file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

    result = run_cli("--port", "http")
    assert result.returncode == 2 and "--port='http'" in result.stderr


def test_help_lists_flags_and_environment() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in (
        "--host",
        "--port",
        "DICE_MAX_DELAY_SECONDS",
        "DICE_FLAGS_FILE",
        "OTEL_TRACES_EXPORTER",
    ):
        assert word in result.stdout
