"""Traffic Generation: run the project's traffic generator once, before the other checks.

The generator's `--json` summary (on stdout) says what it sent and what came back;
its exit code says whether it completed (0), found no service (1) or was misused (2).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from .context import Context
from .model import Failed, Run

__all__ = ["run_traffic"]

GROUP = "Traffic Generation"
TIMEOUT = 900.0
"""Seconds the generator may run: its defaults finish in well under a minute."""

_USER_LINE = re.compile(r"^\s*User \d+ roll \d+")

HINT_RUN = (
    "Run it by hand to see its messages, from the repository's root: "
    "`.venv/bin/python traffic-gen/generate_traffic.py --url http://localhost:8100` (or "
    "`python3 tasks.py compose traffic`, in a container). Exit code 1 means the service was "
    "unreachable or every "
    "request failed."
)
HINT_ERRORS = (
    "Risky-die 500s are part of the game: the generator must count them and go on. "
    "See traffic-gen/traffic_gen/load.py."
)


def run_traffic(ctx: Context, run: Run) -> None:
    outcome: dict[str, Any] = {}
    command = [
        sys.executable,
        str(ctx.settings.traffic_script),
        "--url",
        ctx.settings.service_url,
        "--json",
        *ctx.settings.traffic_args,
    ]
    run.check(
        GROUP,
        "Script runs successfully: generate_traffic.py exits with 0",
        HINT_RUN,
        lambda: _run(command, outcome),
    )
    run.check(
        GROUP,
        'Script logs user activity: "User X roll Y" lines',
        HINT_RUN,
        lambda: _user_lines(outcome),
    )
    run.check(
        GROUP,
        'Script completes: "Traffic generation complete"',
        HINT_RUN,
        lambda: _completes(outcome),
    )
    run.check(
        GROUP,
        "Script handles errors gracefully: risky die errors don't crash it",
        HINT_ERRORS,
        lambda: _errors(outcome),
    )


def _run(command: list[str], outcome: dict[str, Any]) -> str:
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except FileNotFoundError as error:
        raise Failed(f"cannot start the generator: {error}") from None
    except subprocess.TimeoutExpired:
        raise Failed(f"the generator was still running after {TIMEOUT:g} s") from None
    outcome["code"] = finished.returncode
    outcome["messages"] = finished.stderr.splitlines()
    last_words = " ".join(finished.stderr.strip().splitlines()[-3:])[-300:]
    if finished.returncode != 0:
        raise Failed(f"exit code {finished.returncode}: {last_words or 'no message'}")
    try:
        summary = json.loads(finished.stdout)
    except json.JSONDecodeError:
        raise Failed(
            f"exit code 0 but no JSON summary on stdout: {finished.stdout[:120]!r}"
        ) from None
    if not isinstance(summary, dict):
        raise Failed(f"exit code 0 but the summary is not an object: {finished.stdout[:120]!r}")
    outcome["summary"] = summary
    requests = summary.get("requests") or {}
    rate = summary.get("success_rate")
    shown = f"{rate:.0%}" if isinstance(rate, int | float) else "?"
    elapsed = summary.get("elapsed_seconds", 0)
    return f"{requests.get('finished', '?')} requests in {elapsed:.0f} s, {shown} successful"


def _messages(outcome: dict[str, Any]) -> list[str]:
    if "messages" not in outcome:
        raise Failed("the generator did not run (see above)")
    messages: list[str] = outcome["messages"]
    return messages


def _user_lines(outcome: dict[str, Any]) -> str:
    lines = [line for line in _messages(outcome) if _USER_LINE.match(line)]
    if not lines:
        raise Failed("no 'User X roll Y' line among its messages (was --quiet passed?)")
    return f"{len(lines)} lines, e.g. {lines[0].strip()!r}"


def _completes(outcome: dict[str, Any]) -> str:
    done = [line for line in _messages(outcome) if "Traffic generation complete" in line]
    summary = outcome.get("summary") or {}
    if not done:
        raise Failed("no 'Traffic generation complete' message")
    if summary.get("completed") is not True:
        raise Failed(f"its summary says completed={summary.get('completed')!r}")
    return done[-1].strip()


def _errors(outcome: dict[str, Any]) -> str:
    if "summary" not in outcome:
        code = outcome.get("code")
        raise Failed("the generator did not complete" + (f" (exit code {code})" if code else ""))
    outcomes = (outcome["summary"].get("requests") or {}).get("outcomes") or {}
    errors = outcomes.get("http_error", 0)
    if not errors:
        return "completed; no risky die failed during this run"
    return f"completed despite {errors} HTTP error(s)"
