"""Running the traffic generator (traffic-gen) as users do, as a process, and reading
what it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["PAGE_LINE", "ROLL_LINE", "GenRun", "gen_command", "page_lines", "roll_lines", "run_gen"]

#: "User 3 roll 5/12: risky -> 6 (12 ms)", "... -> HTTP 500 (3 ms)", "... -> TIMEOUT"
ROLL_LINE = re.compile(
    r"^(?P<who>User (?P<user>\d+)(?: \(session (?P<session>\d+)\))?|Request (?P<request>\d+))"
    r"(?: roll (?P<number>\d+)/(?P<of>\d+))?: (?P<die>fair|risky) -> (?P<result>.+?)"
    r"(?: \((?P<ms>\d+) ms\))?$"
)

#: A frontend visitor's page load: "User 3 page: HTTP 200 + 3 assets (25 ms)", "... -> TIMEOUT"
PAGE_LINE = re.compile(
    r"^User (?P<user>\d+)(?: \(session (?P<session>\d+)\))? page: (?P<result>.+?)"
    r"(?: \((?P<ms>\d+) ms\))?$"
)


@dataclass
class GenRun:
    """A finished run: exit code and both streams."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary (stdout must be exactly one JSON document)."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


def gen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "traffic_gen", *args]


def run_gen(*args: str, timeout: float = 120.0) -> GenRun:
    """Run ``traffic-gen ARGS`` to the end (stdout is a pipe, so output is plain lines)."""
    done = subprocess.run(gen_command(*args), capture_output=True, text=True, timeout=timeout)
    return GenRun(done.returncode, done.stdout, done.stderr)


def roll_lines(text: str) -> list[re.Match[str]]:
    """Every per-roll log line in ``text``, parsed."""
    return [m for line in text.splitlines() if (m := ROLL_LINE.match(line.strip()))]


def page_lines(text: str) -> list[re.Match[str]]:
    """Every page-load log line of the frontend's visitors in ``text``, parsed."""
    return [m for line in text.splitlines() if (m := PAGE_LINE.match(line.strip()))]
