"""`tasks.py drill`: the list, and every bad input as one clear message, never a traceback,
with the flag file left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drills.catalogue import DRILLS
from tests.support.drills import copy_flags, run_drill_module
from tests.support.paths import ROOT
from tests.support.tools import free_port


def _nowhere() -> dict[str, str]:
    """Every URL at a port where nothing listens."""
    port = free_port()
    return {
        f"VERIFY_{name}_URL": f"http://127.0.0.1:{port}"
        for name in ("SERVICE", "PROMETHEUS", "LOKI", "TEMPO", "ALERTMANAGER")
    }


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def test_list_names_every_drill_with_its_flags_and_patience() -> None:
    result = run_drill_module(["--list"])
    assert result.returncode == 0, result.stderr
    for drill in DRILLS.values():
        assert drill.name in result.stdout
        for key, variant in drill.flags.items():
            assert f"{key}={variant}" in result.stdout
    assert "stops: dice-roller, then starts it again" in result.stdout
    assert "stops: die-service, then starts it again" in result.stdout
    assert result.stdout.count("gives up after") == len(DRILLS)


def test_an_unknown_drill_lists_the_real_ones_on_one_line() -> None:
    result = run_drill_module(["earthquake"])
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "no drill 'earthquake'" in lines[0]
    assert lines[0].endswith(", ".join(DRILLS))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], f"name a drill ({', '.join(DRILLS)}), or --list"),
        (["latency", "--rate", "0"], "argument --rate: expected requests per second, a number"),
        (["latency", "--give-up", "soon"], "argument --give-up: expected seconds"),
        (["latency", "--round", "1"], "argument --round: expected seconds, a number greater"),
        (["latency", "--prometheus-url", "ftp://x"], "argument --prometheus-url: expected an http"),
        (["latency", "--timeout", "-1"], "argument --timeout: expected seconds"),
        (["recovery", "--follow", "Nope"], "argument --follow: expected one of DiceErrorBudget"),
        (["latency", "--follow", "DiceRollLatencyHigh"], "--follow applies to the recovery"),
        (["latency", "--colour"], "unrecognized arguments: --colour"),
        (["upstream-down", "--stop-command", ""], "argument --stop-command: expected a command"),
        (["upstream-down", "--start-command", "'x"], "argument --start-command: cannot split"),
    ],
    ids=[
        "no-name",
        "rate",
        "give-up",
        "round",
        "url",
        "timeout",
        "follow",
        "follow-where",
        "unknown",
        "stop-command",
        "start-command",
    ],
)
def test_a_bad_option_is_argparse_s_one_line_error(args: list[str], expected: str) -> None:
    result = run_drill_module(args)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith("python -m drills: error: ")
    assert expected in last
    _no_traceback(result)


def test_a_bad_environment_variable_names_it() -> None:
    result = run_drill_module(["latency"], env={"VERIFY_LOKI_URL": "loki:3100"})
    assert result.returncode == 2
    assert "environment variable VERIFY_LOKI_URL: expected an http" in result.stderr
    _no_traceback(result)
    result = run_drill_module(["upstream-down"], env={"DRILL_STOP_COMMAND": "'unclosed"})
    assert result.returncode == 2
    assert "environment variable DRILL_STOP_COMMAND: cannot split" in result.stderr
    _no_traceback(result)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "does not exist"), (b"{", "is not valid JSON"), (b'{"flags": {}}', "no flag")],
    ids=["missing", "unparsable", "without-the-flag"],
)
def test_a_flag_file_that_cannot_be_used_is_one_message(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_bytes(content)
    # The stack is unreachable too: the flag file is checked first, before anything
    # is asked of the stack or changed.
    result = run_drill_module(["loaded-die"], env={"DRILL_FLAGS_FILE": str(path), **_nowhere()})
    assert expected in result.stderr
    assert "--flags-file" in result.stderr
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    _no_traceback(result)
    if content is not None:
        assert path.read_bytes() == content


def test_an_unreachable_stack_is_one_message_naming_each_part_and_nothing_changes(
    tmp_path: Path,
) -> None:
    flags = copy_flags(tmp_path)
    original = flags.read_bytes()
    result = run_drill_module(
        ["error-spike", "--flags-file", str(flags), "--timeout", "2"], env=_nowhere()
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    for name in ("the dice roller", "Prometheus", "Loki", "Tempo", "Alertmanager"):
        assert f"{name} is unreachable" in lines[0]
    assert "--alertmanager-url (or VERIFY_ALERTMANAGER_URL)" in lines[0]
    assert result.stdout == ""
    assert flags.read_bytes() == original
    _no_traceback(result)


def test_upstream_down_on_an_unreachable_stack_names_stage_2_and_stops_nothing(
    tmp_path: Path,
) -> None:
    """Neither the flag file (the drill switches none) nor the stop command is touched
    before every part the drill needs has answered."""
    marker = tmp_path / "stopped"
    env = {**_nowhere(), "VERIFY_FRONTEND_URL": _nowhere()["VERIFY_SERVICE_URL"]}
    env["DRILL_FLAGS_FILE"] = str(tmp_path / "no-such-flags.json")
    stop = f"{sys.executable} -c 'import pathlib; pathlib.Path(\"{marker}\").touch()'"
    result = run_drill_module(["upstream-down", "--timeout", "2", "--stop-command", stop], env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    for name in ("the frontend", "the dice roller", "Prometheus", "Loki", "Tempo"):
        assert f"{name} is unreachable" in lines[0]
    assert "Alertmanager" not in lines[0]
    assert "--profile stage2" in lines[0] and "--frontend-url (or VERIFY_FRONTEND_URL)" in lines[0]
    assert not marker.exists()
    _no_traceback(result)


def test_die_service_down_on_an_unreachable_stack_names_stage_3_and_stops_nothing(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "stopped"
    stop = f"{sys.executable} -c 'import pathlib; pathlib.Path(\"{marker}\").touch()'"
    result = run_drill_module(
        ["die-service-down", "--timeout", "2", "--stop-command", stop], env=_nowhere()
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    for name in ("the dice roller", "Prometheus", "Loki", "Tempo"):
        assert f"{name} is unreachable" in lines[0]
    assert "Alertmanager" not in lines[0] and "the frontend" not in lines[0]
    assert "-f docker-compose.yml -f stages/stage3.yml up -d" in lines[0]
    assert "nativestack --stage 3" in lines[0]
    assert not marker.exists()
    _no_traceback(result)


@pytest.mark.slow
def test_tasks_py_runs_the_drill_command() -> None:
    """The command users type: through uv, with the same exit codes."""
    listed = subprocess.run(
        [sys.executable, "tasks.py", "drill", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in DRILLS)
    unknown = subprocess.run(
        [sys.executable, "tasks.py", "drill", "earthquake"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert unknown.returncode == 2
    assert f"the drills are: {', '.join(DRILLS)}" in unknown.stderr
