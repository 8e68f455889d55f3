"""Where the stack is, where the flag file is, how to stop and start a service, and how
hard and how long to drive it.

A drill's settings are verify's (`verify.context.Settings`: where the stack is, and
the HTTP timeout) and its own. Its URL options are those of `stackclient.URL_OPTIONS`
that the drills call: the same options, environment variables and defaults as
verify's, so a stack that `python3 tasks.py verify` finds, a drill finds too.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import stackclient
import verify.cli
from verify.context import ROOT
from verify.context import Settings as VerifySettings

__all__ = [
    "FLAGS_FILE",
    "FLAGS_FILE_ENV",
    "START_COMMAND_ENV",
    "STOP_COMMAND_ENV",
    "URL_OPTIONS",
    "DrillSettings",
    "command_line",
    "settings_from",
]

FLAGS_FILE = ROOT / "stack" / "flags" / "flags.json"
"""The flag file compose mounts into the service, and `tasks.py run` points it at."""
FLAGS_FILE_ENV = "DRILL_FLAGS_FILE"
STOP_COMMAND_ENV, START_COMMAND_ENV = "DRILL_STOP_COMMAND", "DRILL_START_COMMAND"

URL_OPTIONS = {
    option: spec for option, spec in stackclient.URL_OPTIONS.items() if option != "--alloy-url"
}
"""option: (DrillSettings field, environment variable, what it is); no probe asks Alloy."""


@dataclass(frozen=True)
class DrillSettings(VerifySettings):
    """Everything a drill run needs to know; `cli` builds it from flags and env vars.
    Being verify's settings too, it is what the probes hand to verify's readers."""

    flags_file: Path = FLAGS_FILE
    """The file the running service reads (its DICE_FLAGS_FILE, seen from this machine)."""
    stop_command: str | None = None
    start_command: str | None = None
    """What stops a service and starts it again (upstream-down, die-service-down);
    `{service}` is its compose name. Run from the repository, the compose project. None:
    `docker compose stop` and `start`, with the compose files of the drill's stage
    (`outage.compose_command`)."""
    rate: float = 4.0
    """Requests per second the traffic generator sends, both dice: modest on purpose."""
    round_seconds: float = 30.0
    """The generator runs in rounds this long; each round ends with its summary (and its
    chi-square test of the values). 30 s at 4 requests/s is about 60 rolls per die."""
    give_up: float | None = None
    """Seconds to wait for every signal; None: the drill's own default (`--list`)."""
    poll: float = 2.0
    """Seconds between two rounds of probes."""
    follow: tuple[str, ...] = ()
    """recovery: the alerts to follow back to resolved (empty: every drill alert)."""


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> DrillSettings:
    """Flags first, then environment variables, then the compose stack's defaults."""
    values: dict[str, object] = {}
    for field, env, _ in URL_OPTIONS.values():
        value = getattr(args, field) or verify.cli.from_env(environ, env, verify.cli.base_url)
        if value is not None:
            values[field] = value
    timeout = args.timeout or verify.cli.from_env(
        environ, "VERIFY_TIMEOUT", verify.cli.seconds(0, inclusive=False)
    )
    if timeout is not None:
        values["timeout"] = timeout
    flags_file = args.flags_file or environ.get(FLAGS_FILE_ENV) or None
    if flags_file is not None:
        values["flags_file"] = Path(os.path.expanduser(str(flags_file)))
    for field, env in (("stop_command", STOP_COMMAND_ENV), ("start_command", START_COMMAND_ENV)):
        command = getattr(args, field) or verify.cli.from_env(environ, env, command_line)
        if command is not None:
            values[field] = command
    for field in ("rate", "round_seconds", "give_up", "poll", "follow"):
        value = getattr(args, field)
        if value is not None:
            values[field] = tuple(value) if field == "follow" else value
    return replace(DrillSettings(), **values)  # type: ignore[arg-type]


def command_line(text: str) -> str:
    """`text` if it splits into a command (shell quoting, run without a shell)."""
    try:
        parts = shlex.split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"cannot split {text!r} into a command: {error}") from None
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a command, got {text!r}")
    return text
