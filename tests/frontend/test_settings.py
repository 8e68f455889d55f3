"""The frontend's settings: `FRONTEND_*` variables, flags over them, every bad value
reported at once with the variable and what is allowed; and where the browser's
spans go."""

from __future__ import annotations

import pytest
from frontend.settings import SettingsError, browser_traces_url, load_settings


def problems(env: dict[str, str], **overrides: object) -> list[str]:
    """The lines of the error `load_settings` raises, after its heading."""
    with pytest.raises(SettingsError) as raised:
        load_settings(env, **overrides)
    heading, *lines = str(raised.value).splitlines()
    assert heading == "invalid configuration:"
    return [line.strip() for line in lines]


def test_defaults() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8200)
    assert str(settings.dice_roller_url) == "http://127.0.0.1:8100/"
    assert settings.upstream_timeout_seconds == 3.0
    assert str(settings.grafana_url) == "http://localhost:3000/"
    assert settings.log_level == "INFO"


def test_every_variable_is_read_and_flags_win() -> None:
    env = {
        "FRONTEND_HOST": "0.0.0.0",
        "FRONTEND_PORT": "9000",
        "FRONTEND_DICE_ROLLER_URL": "http://dice-roller:8000",
        "FRONTEND_UPSTREAM_TIMEOUT_SECONDS": "0.3",
        "FRONTEND_GRAFANA_URL": "https://grafana.example/",
        "FRONTEND_LOG_LEVEL": "DEBUG",
    }
    settings = load_settings(env, port="9001", host=None)  # None: a flag not given
    assert (settings.host, settings.port) == ("0.0.0.0", 9001)
    assert str(settings.dice_roller_url) == "http://dice-roller:8000/"
    assert settings.upstream_timeout_seconds == 0.3
    assert str(settings.grafana_url) == "https://grafana.example/"
    assert settings.log_level == "DEBUG"


def test_an_empty_variable_means_unset() -> None:
    assert load_settings({"FRONTEND_PORT": "", "FRONTEND_DICE_ROLLER_URL": ""}).port == 8200


def test_every_bad_value_is_reported_at_once_with_what_is_allowed() -> None:
    lines = problems(
        {
            "FRONTEND_PORT": "0",
            "FRONTEND_UPSTREAM_TIMEOUT_SECONDS": "0",
            "FRONTEND_DICE_ROLLER_URL": "dice-roller",
            "FRONTEND_GRAFANA_URL": "ftp://grafana.example",
            "FRONTEND_LOG_LEVEL": "LOUD",
        }
    )
    assert len(lines) == 5, lines
    by_variable = {line.split("=", 1)[0]: line for line in lines}
    assert by_variable["FRONTEND_PORT"].startswith("FRONTEND_PORT='0': ")
    assert "greater than or equal to 1" in by_variable["FRONTEND_PORT"]
    timeout = by_variable["FRONTEND_UPSTREAM_TIMEOUT_SECONDS"]
    assert "'0'" in timeout and "greater than or equal to 0.1" in timeout
    assert "'dice-roller'" in by_variable["FRONTEND_DICE_ROLLER_URL"]
    assert "URL" in by_variable["FRONTEND_DICE_ROLLER_URL"]
    assert "'http' or 'https'" in by_variable["FRONTEND_GRAFANA_URL"]
    assert "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'" in by_variable["FRONTEND_LOG_LEVEL"]


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("FRONTEND_PORT", "0", "greater than or equal to 1"),
        ("FRONTEND_PORT", "65536", "less than or equal to 65535"),
        ("FRONTEND_PORT", "http", "valid integer"),
        ("FRONTEND_UPSTREAM_TIMEOUT_SECONDS", "0", "greater than or equal to 0.1"),
        ("FRONTEND_UPSTREAM_TIMEOUT_SECONDS", "100", "less than or equal to 30"),
        ("FRONTEND_UPSTREAM_TIMEOUT_SECONDS", "nan", "less than or equal to 30"),
        ("FRONTEND_UPSTREAM_TIMEOUT_SECONDS", "3s", "valid number"),
        ("FRONTEND_DICE_ROLLER_URL", "not a url", "valid URL"),
        ("FRONTEND_DICE_ROLLER_URL", "ftp://dice-roller", "'http' or 'https'"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_is_allowed(
    variable: str, value: str, allowed: str
) -> None:
    [line] = problems({variable: value})
    assert line.startswith(f"{variable}={value!r}: ")
    assert allowed in line
    assert "(" in line and line.endswith(")")  # the setting's own description, as a hint


def test_a_bad_flag_is_named_as_the_flag() -> None:
    [line] = problems({"FRONTEND_PORT": "9000"}, port="70000")
    assert line.startswith("--port='70000': ")
    assert "less than or equal to 65535" in line


def test_an_unknown_traces_exporter_is_reported_with_the_frontends_problems() -> None:
    lines = problems({"OTEL_TRACES_EXPORTER": "jaeger", "FRONTEND_PORT": "0"})
    assert any(line.startswith("OTEL_TRACES_EXPORTER='jaeger'") for line in lines), lines
    assert any(line.startswith("FRONTEND_PORT='0'") for line in lines), lines


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://alloy:4318"}, "http://alloy:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://alloy:4318/"}, "http://alloy:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://alloy:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/custom",
            },
            "http://tempo:4318/custom",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}, "http://localhost:4318/v1/traces"),
    ],
)
def test_the_browsers_spans_go_where_the_frontends_own_go(
    env: dict[str, str], expected: str
) -> None:
    assert browser_traces_url(env) == expected
