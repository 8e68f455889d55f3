"""Bad flags and environment variables: exit code 2, a message naming what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from verify.cli import main
from verify.context import ROOT


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--loki-url", "localhost:3100"], "--loki-url: expected an http:// or https:// URL"),
        (["--grafana-url", "ftp://host"], "--grafana-url: expected an http:// or https:// URL"),
        (["--timeout", "0"], "--timeout: expected seconds, a number greater than 0"),
        (["--timeout", "soon"], "--timeout: expected seconds, a number greater than 0"),
        (["--wait", "-1"], "--wait: expected seconds, a number at least 0"),
        (["--wait", "nan"], "--wait: expected seconds, a number at least 0"),
        (["--traffic-args", "--users '3"], "--traffic-args: cannot split"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_flags_exit_2_naming_what_is_allowed(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert words in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("VERIFY_TEMPO_URL", "tempo:3200", "VERIFY_TEMPO_URL: expected an http:// or https:// URL"),
        ("VERIFY_TIMEOUT", "-5", "VERIFY_TIMEOUT: expected seconds, a number greater than 0"),
        ("VERIFY_WAIT", "a minute", "VERIFY_WAIT: expected seconds, a number at least 0"),
        ("VERIFY_GRAFANA_PASSWORD", "s3cret", "a Grafana password needs a user"),
    ],
)
def test_bad_environment_exits_2_naming_the_variable(
    name: str,
    value: str,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err


def test_the_command_line_itself_exits_2_without_a_traceback() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "verify", "--prometheus-url", "prometheus"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert finished.returncode == 2
    assert "--prometheus-url: expected an http:// or https:// URL" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""
