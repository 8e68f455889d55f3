"""`python3 tasks.py drill NAME` and `python3 tasks.py drill --list`.

Exit codes: 0 every signal responded, 1 a signal never did (or the drill could not
start: flag file, stack, a service that would not stop), 2 bad usage (an unknown
drill, a bad option or environment variable), 130 interrupted (Ctrl-C, SIGTERM,
SIGHUP), the flags put back (or the stopped service started) first.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence

import verify.cli

from . import timing
from .catalogue import DRILLS
from .outage import COMPOSE_FILES, START_COMMAND, STOP_COMMAND
from .runner import DrillError, run_drill
from .settings import (
    FLAGS_FILE,
    FLAGS_FILE_ENV,
    START_COMMAND_ENV,
    STOP_COMMAND_ENV,
    URL_OPTIONS,
    DrillSettings,
    command_line,
)
from .settings import settings_from as read_settings

__all__ = ["build_parser", "main"]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
PROG = "python -m drills"
"""How it was run, unless a wrapper names itself in SANDBOX_PROG (`python3 tasks.py drill`)."""


def positive(what: str, minimum: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= minimum:
            raise argparse.ArgumentTypeError(
                f"expected {what}, a number greater than {minimum:g}, got {text!r}"
            )
        return value

    return parse


def alert_name(text: str) -> str:
    if text not in timing.DRILL_ALERTS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(timing.DRILL_ALERTS)}, got {text!r}"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    defaults = DrillSettings()
    parser = argparse.ArgumentParser(
        prog=os.environ.pop("SANDBOX_PROG", "") or PROG,
        description=(
            "Break the running service on purpose through its feature flags (or stop it), "
            "drive traffic at it, say where to look, and check that each signal (metrics, "
            "logs, traces, alerts) responds; then put the flags back (or start it again). "
            "docs/drills.md tours each drill."
        ),
        epilog=(
            "Every URL can also come from its environment variable, as for verify (flags "
            "win). Exit codes: 0 every signal responded, 1 one never did or the drill could "
            "not start, 2 bad usage, 130 interrupted (the flags are put back, the stopped "
            "service started)."
        ),
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="the drill: " + ", ".join(DRILLS))
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    urls = parser.add_argument_group("where the stack is")
    for option, (field, env, what) in URL_OPTIONS.items():
        urls.add_argument(
            option,
            dest=field,
            type=verify.cli.base_url,
            metavar="URL",
            help=f"{what} (env {env}; default: {getattr(defaults, field)})",
        )
    urls.add_argument(
        "--timeout",
        type=verify.cli.seconds(0, inclusive=False),
        metavar="SECONDS",
        help=f"limit for each HTTP call (env VERIFY_TIMEOUT; default: {defaults.timeout:g})",
    )
    urls.add_argument(
        "--flags-file",
        metavar="PATH",
        help=f"the flag file the running service reads, its DICE_FLAGS_FILE as seen from "
        f"here (env {FLAGS_FILE_ENV}; default: {FLAGS_FILE.relative_to(FLAGS_FILE.parents[2])})",
    )
    stage3 = " ".join(f"-f {name}" for name in COMPOSE_FILES[3])
    outage = parser.add_argument_group("stopping a service (upstream-down, die-service-down)")
    outage.add_argument(
        "--stop-command",
        type=command_line,
        metavar="COMMAND",
        help=f"what stops the service, {{service}} its compose name, run from the "
        f"repository without a shell (env {STOP_COMMAND_ENV}; default: "
        f"{STOP_COMMAND.replace('%', '%%')}, with {stage3} for a stage-3 drill)",
    )
    outage.add_argument(
        "--start-command",
        type=command_line,
        metavar="COMMAND",
        help=f"what starts it again (env {START_COMMAND_ENV}; default: "
        f"{START_COMMAND.replace('%', '%%')}, with the same files)",
    )
    pace = parser.add_argument_group("traffic and patience")
    pace.add_argument(
        "--rate",
        type=positive("requests per second"),
        metavar="RPS",
        help=f"requests per second of the traffic generator (default: {defaults.rate:g})",
    )
    pace.add_argument(
        "--round",
        dest="round_seconds",
        type=verify.cli.seconds(1.0, inclusive=False),
        metavar="SECONDS",
        help="length of each generator run, which ends with its chi-square verdict "
        f"(default: {defaults.round_seconds:g})",
    )
    pace.add_argument(
        "--give-up",
        dest="give_up",
        type=verify.cli.seconds(0, inclusive=False),
        metavar="SECONDS",
        help="stop waiting for the signals after this long (default: the drill's own, "
        "from its alert's windows: see --list)",
    )
    pace.add_argument(
        "--poll",
        type=verify.cli.seconds(0, inclusive=False),
        metavar="SECONDS",
        help=f"time between two rounds of probes (default: {defaults.poll:g})",
    )
    pace.add_argument(
        "--follow",
        action="append",
        type=alert_name,
        metavar="ALERT",
        help="recovery: follow only this alert back to resolved (repeatable; default: "
        f"every one of {', '.join(timing.DRILL_ALERTS)} that fires)",
    )
    return parser


def list_drills() -> str:
    width = max(len(name) for name in DRILLS)
    lines = []
    for drill in DRILLS.values():
        does = []
        if drill.flags:
            does.append("flags: " + ", ".join(f"{k}={v}" for k, v in drill.flags.items()))
        if drill.stops is not None:
            does.append(f"stops: {drill.stops}, then starts it again")
        lines.append(f"{drill.name:<{width}}  {drill.summary}")
        lines.append(f"{'':<{width}}  {'; '.join(does)}; gives up after {drill.give_up_text}")
    return "\n".join(lines)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end a drill like Ctrl-C: the flags go back first."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a one-line message on a bad option
    if args.list:
        print(list_drills())
        return 0
    if args.name is None:
        parser.error(f"name a drill ({', '.join(DRILLS)}), or --list")
    drill = DRILLS.get(args.name)
    if drill is None:
        print(
            f"{parser.prog}: error: no drill {args.name!r}; the drills are: {', '.join(DRILLS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.follow and drill.name != "recovery":
        parser.error("--follow applies to the recovery drill only")
    try:
        settings = read_settings(args, os.environ)
    except verify.cli.UsageError as error:
        return verify.cli.report_usage_error(parser, error)
    _stop_on_signals()
    try:
        return run_drill(drill, settings)
    except DrillError as error:
        print(f"drill {drill.name}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if drill.stops is not None:
            state = f"the {drill.stops} is started again"
        else:
            state = "the flags " + (
                "stay shipped" if drill.keeps_flags else "are back as they were"
            )
        print(f"drill {drill.name}: interrupted; {state}", file=sys.stderr)
        return EXIT_INTERRUPTED
