"""Bad command lines get exit code 2 and a message naming what is allowed, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.traffic_gen import run_gen

# No service is needed: every one of these must be refused before any request.
NOWHERE = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--users", "0"], "argument --users: expected a whole number of at least 1, got '0'"),
        (["--users", "many"], "argument --users: expected a whole number, got 'many'"),
        (["--rolls", "0"], "argument --rolls: expected at least 1 roll"),
        (["--rolls", "20-1"], "argument --rolls: expected at least 1 roll and a range"),
        (["--rolls", "1-x"], "argument --rolls: expected a whole number like 20 or a range"),
        (["--think", "-1"], "argument --think: expected seconds like 0.5 or a range"),
        (["--think", "2-1"], "argument --think: expected seconds of at least 0"),
        (["--think", "nan"], "argument --think: expected seconds of at least 0"),
        (["--rate", "0"], "argument --rate: expected a number greater than 0, got '0'"),
        (["--rate", "inf"], "argument --rate: expected a finite number, got 'inf'"),
        (["--duration", "-5"], "argument --duration: expected a number greater than 0"),
        (["--risky-share", "1.5"], "argument --risky-share: expected a share from 0 to 1"),
        (["--timeout", "0"], "argument --timeout: expected a number greater than 0"),
        (["--wait", "-1"], "argument --wait: expected a number of at least 0"),
        (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
        (["--max-in-flight", "0", "--rate", "5"], "argument --max-in-flight: expected a whole"),
        (["--url", "localhost:8100"], "argument --url: expected an http:// or https:// URL"),
        (["--url", "ftp://x"], "argument --url: expected an http:// or https:// URL"),
        (["--target", "backend"], "argument --target: expected dice-roller or frontend, got"),
        (
            ["--target", "frontend", "--rate", "5"],
            "--rate sends rolls to the dice-roller at a fixed rate; --target frontend simulates",
        ),
        (["--rate", "5", "--users", "3"], "--rate sends at a fixed rate; it cannot be combined"),
        (["--rate", "5", "--think", "1"], "cannot be combined with --think"),
        (["--max-in-flight", "5"], "--max-in-flight only applies with --rate"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message(args: list[str], expected: str) -> None:
    run = run_gen("--url", NOWHERE, *args) if "--url" not in args else run_gen(*args)
    assert run.returncode == 2
    assert expected in run.stderr
    assert "usage:" in run.stderr
    assert "Traceback" not in run.output
    assert run.stdout == ""


def test_help_lists_every_option() -> None:
    run = run_gen("--help")
    assert run.returncode == 0
    for option in (
        "--target",
        "--url",
        "--users",
        "--rolls",
        "--think",
        "--rate",
        "--max-in-flight",
        "--duration",
        "--risky-share",
        "--timeout",
        "--wait",
        "--seed",
        "--quiet",
        "--json",
    ):
        assert option in run.stdout
    assert "Exit codes" in run.stdout
    assert "http://localhost:8200 with --target frontend" in " ".join(run.stdout.split())


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ([sys.executable, "-m", "traffic_gen"], "python -m traffic_gen"),
        (
            [sys.executable, str(ROOT / "traffic-gen" / "generate_traffic.py")],
            "generate_traffic.py",
        ),
    ],
    ids=["module", "script"],
)
def test_each_way_in_names_itself_in_its_usage_line(command: list[str], name: str) -> None:
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: {name} "), done.stdout.splitlines()[0]
