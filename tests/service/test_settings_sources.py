"""A bad setting is reported with the value that was read, from where it was read.

The command line passes every flag to `load_settings`, set or not; these tests go
through `dice_roller.cli.main` itself so an unset flag (None) is part of the call,
as it is when a user starts the service.
"""

from __future__ import annotations

import pytest
from dice_roller.cli import main

BAD_ENVIRONMENT = {
    "DICE_PORT": "abc",
    "DICE_MAX_DELAY_SECONDS": "soon",
    "DICE_SEED": "lucky",
    "DICE_LOG_LEVEL": "loud",
}


def start(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of the command, which must stop before serving anything."""
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("variable", "value"), sorted(BAD_ENVIRONMENT.items()))
def test_an_environment_value_is_shown_as_given(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    code, err = start([], capsys)
    assert code == 2
    assert f"{variable}={value!r}:" in err, err
    assert "=None" not in err, err


def test_every_bad_environment_value_is_shown_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable, value in BAD_ENVIRONMENT.items():
        monkeypatch.setenv(variable, value)
    code, err = start([], capsys)
    assert code == 2
    shown = [line.strip().split(":", 1)[0] for line in err.splitlines()[1:]]
    assert sorted(shown) == sorted(f"{var}={value!r}" for var, value in BAD_ENVIRONMENT.items())


def test_a_flag_that_is_set_is_named_instead_of_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DICE_PORT", "abc")
    code, err = start(["--port", "http"], capsys)
    assert code == 2
    assert "--port='http':" in err and "DICE_PORT" not in err, err
