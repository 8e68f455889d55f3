"""Runs against the real service: the messages the checklist looks for, each option's
effect, honest counts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.metrics import dice_rolls_total
from tests.support.paths import ROOT
from tests.support.service import DEFAULT_TEST_ENV, RunningService, service_command
from tests.support.tools import free_port, require_tool
from tests.support.traffic_gen import gen_command, roll_lines, run_gen

FAST = ("--think", "0")


def test_the_standalone_steps_work_as_written(dice_service: RunningService, tmp_path: Path) -> None:
    """`cd traffic-gen && uv pip install -r pyproject.toml && python generate_traffic.py`.

    In a fresh virtual environment holding only the dependencies, as traffic-gen/README.md
    has it outside the workspace: the script must find its package next to it. Defaults
    apart from the URL and a shorter think time (the default one only makes the test slow).
    The lock's versions constrain the install, so a release published since cannot
    change the result.
    """
    uv = require_tool("uv", "traffic-gen/README.md installs the generator's dependencies with uv")
    folder = tmp_path / "traffic-gen"
    shutil.copytree(
        ROOT / "traffic-gen", folder, ignore=shutil.ignore_patterns("__pycache__", ".venv")
    )
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    locked = tmp_path / "locked.txt"
    export = [uv, "export", "--frozen", "--no-hashes", "--package", "traffic-gen"]
    export += ["--no-emit-workspace", "--no-dev", "--output-file", str(locked)]
    subprocess.run(export, cwd=ROOT, check=True, capture_output=True)
    install = [uv, "pip", "install", "-r", "pyproject.toml", "--constraint", str(locked)]
    subprocess.run(install, cwd=folder, env=env, check=True)
    # The package itself is not installed there: only the script's folder provides it.
    assert subprocess.run([python, "-c", "import traffic_gen"], env=env).returncode != 0

    done = subprocess.run(
        [python, "generate_traffic.py", "--url", dice_service.url, "--think", "0-0.05"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Service dice-roller 0.1.0 is up at {dice_service.url}" in out
    lines = roll_lines(out)
    # About ten users, each making up to twenty rolls of one die.
    assert {int(m["user"]) for m in lines} == set(range(1, 11))
    for user in range(1, 11):
        mine = [m for m in lines if int(m["user"]) == user]
        total = int(mine[0]["of"])
        assert 1 <= total <= 20
        assert [int(m["number"]) for m in mine] == list(range(1, total + 1))
        assert len({m["die"] for m in mine}) == 1
    assert all(re.fullmatch(r"[1-7]|HTTP 500", m["result"]) for m in lines)
    assert re.search(r"^Traffic generation complete in \d+\.\d s$", out, re.MULTILINE)
    assert out.rstrip().endswith(" s")
    assert "Traceback" not in done.stderr


def test_summary_counts_equal_the_services_own(dice_service: RunningService) -> None:
    before = dice_rolls_total(dice_service.url)
    run = run_gen("--url", dice_service.url, "--users", "6", "--rolls", "15", *FAST, "--json")
    after = dice_rolls_total(dice_service.url)
    assert run.returncode == 0, run.stderr

    summary = run.summary()
    assert summary["requests"]["sent"] == summary["requests"]["finished"] == 6 * 15
    for die in ("fair", "risky"):
        outcomes = summary["dice"][die]["outcomes"]
        served_ok = after.get((die, "success"), 0) - before.get((die, "success"), 0)
        served_error = after.get((die, "error"), 0) - before.get((die, "error"), 0)
        assert outcomes["success"] == served_ok
        assert outcomes["http_error"] == served_error
        assert outcomes["timeout"] == outcomes["connection_error"] == 0
        assert sum(summary["dice"][die]["values"].values()) == outcomes["success"]
    # The per-roll lines (on stderr with --json) tell the same story as the summary.
    lines = roll_lines(run.stderr)
    assert len(lines) == 6 * 15
    errors = sum(summary["dice"][d]["outcomes"]["http_error"] for d in ("fair", "risky"))
    assert sum(m["result"] == "HTTP 500" for m in lines) == errors


def test_users_and_exact_rolls(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "3", "--rolls", "4", *FAST)
    assert run.returncode == 0
    lines = roll_lines(run.stdout)
    assert Counter(int(m["user"]) for m in lines) == {1: 4, 2: 4, 3: 4}
    assert {m["of"] for m in lines} == {"4"}
    assert "Requests: 12 sent, 12 finished" in run.stdout


def test_rolls_range(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "8", "--rolls", "2-3", *FAST)
    lines = roll_lines(run.stdout)
    assert {int(m["of"]) for m in lines} <= {2, 3}
    assert {int(m["user"]) for m in lines} == set(range(1, 9))


@pytest.mark.parametrize(("share", "dice"), [("0", {"fair"}), ("1", {"risky"})])
def test_risky_share(dice_service: RunningService, share: str, dice: set[str]) -> None:
    args = ("--users", "4", "--rolls", "3", *FAST, "--risky-share", share, "--json")
    run = run_gen("--url", dice_service.url, *args)
    assert {m["die"] for m in roll_lines(run.stderr)} == dice
    other = ({"fair", "risky"} - dice).pop()
    assert run.summary()["dice"][other]["requests"] == 0


def test_risky_share_is_a_share(dice_service: RunningService) -> None:
    run = run_gen(
        "--url", dice_service.url, "--rate", "200", "--duration", "1", "--quiet", "--json",
        "--risky-share", "0.25", "--seed", "7",
    )  # fmt: skip
    dice = run.summary()["dice"]
    risky, fair = dice["risky"]["requests"], dice["fair"]["requests"]
    assert risky + fair == 200
    assert 20 <= risky <= 80  # 50 expected; this is over 5 standard deviations wide


def test_seed_repeats_the_users_choices(dice_service: RunningService) -> None:
    def plan(seed: str) -> set[tuple[str, str, str]]:
        run = run_gen("--url", dice_service.url, "--users", "5", *FAST, "--seed", seed)
        return {(m["user"], m["of"], m["die"]) for m in roll_lines(run.stdout)}

    assert plan("11") == plan("11")
    assert plan("11") != plan("12")


def test_think_time_separates_a_users_rolls(dice_service: RunningService) -> None:
    """With a 30 s pause and a 3 s run, each user gets exactly one roll in."""
    args = ("--users", "2", "--rolls", "5", "--duration", "3", "--json")
    slow = run_gen("--url", dice_service.url, *args, "--think", "30").summary()
    quick = run_gen("--url", dice_service.url, *args, "--think", "0").summary()
    assert slow["requests"]["sent"] == 2
    assert quick["requests"]["sent"] > 2


def test_duration_keeps_users_rolling(dice_service: RunningService) -> None:
    run = run_gen(
        "--url", dice_service.url, "--users", "2", "--rolls", "1", *FAST, "--duration", "1"
    )
    assert run.returncode == 0
    sessions = {int(m["session"] or 1) for m in roll_lines(run.stdout)}
    assert max(sessions) > 1  # a user started a new session after its one roll
    once = run_gen("--url", dice_service.url, "--users", "2", "--rolls", "1", *FAST)
    assert len(roll_lines(once.stdout)) == 2


def test_open_loop_sends_rate_times_duration(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--rate", "40", "--duration", "1", "--json")
    assert run.returncode == 0
    summary = run.summary()
    assert summary["mode"] == "open-loop"
    assert summary["target_rate"] == 40
    assert summary["requests"]["sent"] == summary["requests"]["finished"] == 40
    assert summary["requests"]["skipped"] == 0
    assert summary["achieved_rate"] > 0
    numbers = sorted(int(m["request"]) for m in roll_lines(run.stderr))
    assert numbers == list(range(1, 41))


def test_quiet_drops_roll_lines_but_not_the_summary(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "2", "--rolls", "3", *FAST, "--quiet")
    assert run.returncode == 0
    assert roll_lines(run.stdout) == []
    assert "Requests: 6 sent, 6 finished" in run.stdout
    assert "Traffic generation complete" in run.stdout


def test_json_is_alone_on_stdout(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "2", "--rolls", "3", *FAST, "--json")
    summary = run.summary()  # fails unless stdout is exactly one JSON document
    assert summary["completed"] is True
    assert summary["service"] == "dice-roller 0.1.0"
    assert summary["requests"]["sent"] == 6
    latency = summary["latency_seconds"]
    assert latency["count"] == 6
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert "Traffic generation complete" in run.stderr


def test_human_summary_has_every_part(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "4", "--rolls", "10", *FAST)
    out = run.stdout
    assert re.search(r"^  fair +\d+ .* 100%", out, re.MULTILINE)
    assert re.search(r"^  risky +\d+ .* 90%", out, re.MULTILINE)
    assert re.search(r"Latency of answered requests \(n=40\): p50 .+, p95 .+, p99 .+, max", out)
    assert re.search(r"^  fair  1: +\d+  2: .* 6: +\d+ +(chi² |no rolls)", out, re.MULTILINE)
    assert re.search(r"^  risky 2: +\d+  3: .* 7: +\d+ +(chi² |no rolls)", out, re.MULTILINE)
    assert re.search(r"Requests: 40 sent, 40 finished, [\d.]+ requests/s achieved", out)


def test_wait_retries_until_the_service_is_up(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The fair die only: two risky rolls both fail one run in 400, and a run where
    # every roll fails exits 1.
    fair_only = ("--users", "1", "--rolls", "2", "--risky-share", "0", *FAST)
    gen = subprocess.Popen(
        gen_command("--url", url, "--wait", "60", *fair_only),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = {**os.environ, **DEFAULT_TEST_ENV}
    service = subprocess.Popen(
        service_command(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        out, err = gen.communicate(timeout=90)
    finally:
        service.terminate()
        service.wait(20)
        gen.kill()
    assert gen.returncode == 0, out + err
    assert len(roll_lines(out)) == 2


def test_plain_output_has_a_progress_line_every_ten_seconds(
    dice_service: RunningService,
) -> None:
    run = run_gen("--url", dice_service.url, "--rate", "20", "--duration", "10.5", "--quiet")
    assert run.returncode == 0
    progress = [line for line in run.stdout.splitlines() if line.startswith("Progress: ")]
    assert len(progress) == 1
    line = re.match(
        r"Progress: (\d+) s elapsed · \d+ sent · \d+ finished · \d+ in flight · "
        r"[\d.]+/s now · [\d.]+% success · errors: HTTP \d+ · timeout 0 · connection 0",
        progress[0],
    )
    assert line, progress[0]
    # Written with the first answer after ten seconds: "11 s" when a busy machine
    # delays that answer by half a second, never less than 10.
    assert int(line[1]) >= 10, progress[0]
