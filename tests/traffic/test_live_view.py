"""On a terminal the generator draws a live panel; in a pipe it writes plain lines."""

from __future__ import annotations

import os
import pty
import re
import subprocess

from tests.support.service import RunningService
from tests.support.traffic_gen import gen_command, run_gen

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the generator with a pseudo-terminal as its stdout, as in an interactive shell."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    gen = subprocess.Popen(gen_command(*args), stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        gen.wait(60)
    return gen.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_terminal_gets_a_live_panel(dice_service: RunningService) -> None:
    code, raw = run_on_a_terminal(
        "--url", dice_service.url, "--users", "3", "--rolls", "20", "--think", "0.05"
    )
    assert code == 0
    assert ANSI.search(raw)  # the cursor moves: the panel is redrawn in place
    text = ANSI.sub("", raw)
    assert "╭" in text and "traffic-gen" in text  # the panel's frame and title
    assert re.search(r"\d+ s elapsed · \d+ sent · \d+ finished · \d+ in flight", text)
    assert re.search(r"[\d.]+/s now · [\d.]+% success", text)
    assert re.search(r"errors: HTTP \d+ · timeout \d+ · connection \d+ · invalid \d+", text)
    assert re.search(r"User \d roll \d+/20: (fair|risky) -> ", text)
    assert "Traffic generation complete in " in text


def test_pipe_gets_plain_lines(dice_service: RunningService) -> None:
    run = run_gen("--url", dice_service.url, "--users", "2", "--rolls", "3", "--think", "0")
    assert not ANSI.search(run.output)
    assert "╭" not in run.output
