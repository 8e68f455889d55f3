"""The die-service's settings: `DIE_SERVICE_*` variables, flags over them, every bad
value reported at once with the variable and what is allowed."""

from __future__ import annotations

import pytest
from die_service.settings import DATABASE_URL_PATTERN, SettingsError, load_settings


def problems(env: dict[str, str], **overrides: object) -> list[str]:
    """The lines of the error `load_settings` raises, after its heading."""
    with pytest.raises(SettingsError) as raised:
        load_settings(env, **overrides)
    heading, *lines = str(raised.value).splitlines()
    assert heading == "invalid configuration:"
    return [line.strip() for line in lines]


def test_defaults() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8300, "INFO")


def test_every_variable_is_read_and_flags_win() -> None:
    env = {
        "DIE_SERVICE_HOST": "0.0.0.0",
        "DIE_SERVICE_PORT": "9000",
        "DIE_SERVICE_LOG_LEVEL": "debug",
    }
    settings = load_settings(env, port="9001", host=None)  # None: a flag not given
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9001, "DEBUG")


def test_an_empty_variable_means_unset() -> None:
    assert load_settings({"DIE_SERVICE_PORT": "", "DIE_SERVICE_HOST": ""}).port == 8300


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("DIE_SERVICE_PORT", "0", "greater than or equal to 1"),
        ("DIE_SERVICE_PORT", "65536", "less than or equal to 65535"),
        ("DIE_SERVICE_PORT", "http", "valid integer"),
        ("DIE_SERVICE_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_is_allowed(
    variable: str, value: str, allowed: str
) -> None:
    [line] = problems({variable: value})
    assert line.startswith(f"{variable}={value!r}: ")
    assert allowed in line


def test_every_bad_value_is_reported_at_once_otel_included() -> None:
    lines = problems(
        {
            "DIE_SERVICE_PORT": "0",
            "DIE_SERVICE_LOG_LEVEL": "chatty",
            "OTEL_TRACES_EXPORTER": "jaeger",
        }
    )
    assert len(lines) == 3, lines
    assert {line.split("=", 1)[0] for line in lines} == {
        "DIE_SERVICE_PORT",
        "DIE_SERVICE_LOG_LEVEL",
        "OTEL_TRACES_EXPORTER",
    }


def test_an_unknown_setting_name_is_no_setting() -> None:
    """Only the fields are read: a variable of another service's prefix changes nothing."""
    assert load_settings({"DIE_SERVICE_DICE": "d7", "DICE_PORT": "1"}).port == 8300


def test_the_database_settings_default_to_dice_in_memory() -> None:
    settings = load_settings({})
    assert settings.database_url == ""
    assert (settings.database_timeout_seconds, settings.database_pool_size) == (0.4, 5)


def test_the_database_settings_are_read() -> None:
    url = "postgresql://dice:dice@postgres:5432/dice"
    settings = load_settings(
        {
            "DIE_SERVICE_DATABASE_URL": url,
            "DIE_SERVICE_DATABASE_TIMEOUT_SECONDS": "0.25",
            "DIE_SERVICE_DATABASE_POOL_SIZE": "100",
        }
    )
    assert settings.database_url == url
    assert (settings.database_timeout_seconds, settings.database_pool_size) == (0.25, 100)
    assert load_settings({"DIE_SERVICE_DATABASE_URL": "postgres://h/d"}).database_url


URL_RULE = f"should match pattern '{DATABASE_URL_PATTERN}'"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("DIE_SERVICE_DATABASE_URL", "mysql://dice:dice@db/dice", URL_RULE),
        ("DIE_SERVICE_DATABASE_URL", "postgresql://dice:dice@postgres:5432", URL_RULE),
        ("DIE_SERVICE_DATABASE_URL", "postgresql://dice@postgres/my dice", URL_RULE),
        ("DIE_SERVICE_DATABASE_URL", "postgresql://h/" + "d" * 500, "at most 512 characters"),
        ("DIE_SERVICE_DATABASE_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("DIE_SERVICE_DATABASE_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("DIE_SERVICE_DATABASE_TIMEOUT_SECONDS", "30.5", "less than or equal to 30"),
        ("DIE_SERVICE_DATABASE_TIMEOUT_SECONDS", "soon", "valid number"),
        ("DIE_SERVICE_DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
        ("DIE_SERVICE_DATABASE_POOL_SIZE", "101", "less than or equal to 100"),
        ("DIE_SERVICE_DATABASE_POOL_SIZE", "2.5", "valid integer"),
    ],
    ids=[
        "url-not-postgres",
        "url-without-database",
        "url-with-space",
        "url-too-long",
        "timeout-zero",
        "timeout-negative",
        "timeout-too-long",
        "timeout-not-a-number",
        "pool-empty",
        "pool-too-big",
        "pool-not-an-integer",
    ],
)
def test_a_bad_database_setting_names_its_variable_and_the_rule(
    variable: str, value: str, allowed: str
) -> None:
    [line] = problems({variable: value})
    assert line.startswith(f"{variable}=")
    assert allowed in line


def test_a_bad_database_url_is_said_back_without_its_password() -> None:
    """The message goes to a terminal and to logs: the user and host help find the
    typo, the password is not theirs to see."""
    with pytest.raises(SettingsError) as error:
        load_settings({"DIE_SERVICE_DATABASE_URL": "postgresql://dice:s3cret@postgres:5432"})
    message = str(error.value)
    assert "s3cret" not in message
    assert "DIE_SERVICE_DATABASE_URL='postgresql://dice:***@postgres:5432'" in message
