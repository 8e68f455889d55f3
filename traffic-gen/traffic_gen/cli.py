"""The ``traffic-gen`` command: parse and check the options, run, summarize, exit.

Exit codes: 0 the run completed, 1 the service was unreachable at the start or every
request of a completed run failed (every roll, or with the frontend every page load),
2 bad usage (argparse's own convention), 130 stopped by Ctrl-C or SIGTERM (the shell's
convention for SIGINT). The summary is printed in every case where traffic was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence

import httpx

from .client import ClientGroup
from .config import DEFAULT_URLS, FloatRange, IntRange, Settings, Target
from .frontend import check_frontend, run_visitors
from .load import ServiceUnavailable, check_service, run_open_loop, run_users, unless_stopped
from .progress import open_display
from .report import closing_line, render_text, summarize
from .stats import RunStats

__all__ = ["build_parser", "main", "parse_settings"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Each target as the "cannot reach" message names it, and the command that starts it.
SERVICES = {
    Target.DICE_ROLLER: ("dice-roller service", "docker compose up -d"),
    Target.FRONTEND: ("frontend", "docker compose --profile stage2 up -d"),
}


# -- argument types: each raises ArgumentTypeError, which argparse turns into a
#    one-line "error: argument --x: ..." message and exit code 2, never a traceback.


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def share(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def _split_range(text: str) -> tuple[str, str]:
    low, sep, high = text.partition("-")
    return (low, high) if sep else (text, text)


def roll_range(text: str) -> IntRange:
    """``N`` (exactly N rolls) or ``A-B`` (a random number from A to B)."""
    low_text, high_text = _split_range(text.strip())
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number like 20 or a range like 1-20, got {text!r}"
        ) from None
    if low < 1 or high < low:
        raise argparse.ArgumentTypeError(
            f"expected at least 1 roll and a range written low-high, got {text!r}"
        )
    return IntRange(low, high)


def seconds_range(text: str) -> FloatRange:
    """``S`` (exactly S seconds) or ``A-B`` (a random time from A to B seconds)."""
    low_text, high_text = _split_range(text.strip())
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds like 0.5 or a range like 0.1-1.0, got {text!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
        raise argparse.ArgumentTypeError(
            f"expected seconds of at least 0 and a range written low-high, got {text!r}"
        )
    return FloatRange(low, high)


def target(text: str) -> Target:
    try:
        return Target(text)
    except ValueError:
        allowed = " or ".join(t.value for t in Target)
        raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None


def base_url(text: str) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as http://localhost:8100, got {text!r}"
        )
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        description=(
            "Simulated users rolling dice against the dice-roller service, with a live "
            "view and an end-of-run summary. By default, users roll until each has made "
            "its rolls (closed loop); with --rate, requests leave on a fixed schedule "
            "however slowly the service answers (open loop). With --target frontend, the "
            "users are visitors of the frontend's page: each visit loads the page and its "
            "assets, then rolls through /api/roll."
        ),
        epilog=(
            "Exit codes: 0 completed, 1 service unreachable or every request failed, "
            "2 bad usage, 130 interrupted (the summary is still printed)."
        ),
    )
    parser.add_argument(
        "--target",
        type=target,
        default=defaults.target,
        metavar="|".join(t.value for t in Target),
        help=(
            "whom to send the traffic to: the dice-roller's GET /roll, or the frontend's "
            f"page and GET /api/roll, as people with a browser do (default: {defaults.target})"
        ),
    )
    parser.add_argument(
        "--url",
        type=base_url,
        help=(
            f"the service's base URL (default: {DEFAULT_URLS[Target.DICE_ROLLER]}, or "
            f"{DEFAULT_URLS[Target.FRONTEND]} with --target frontend)"
        ),
    )
    users = parser.add_argument_group("simulated users (closed loop, the default)")
    users.add_argument(
        "--users",
        type=positive_int,
        metavar="N",
        help=f"how many users roll at the same time (default: {defaults.users})",
    )
    users.add_argument(
        "--rolls",
        type=roll_range,
        metavar="N|A-B",
        help=(
            f"rolls per user: exactly N, or a random number from A to B (default: {defaults.rolls})"
        ),
    )
    users.add_argument(
        "--think",
        type=seconds_range,
        metavar="S|A-B",
        help=f"seconds a user waits between rolls (default: {defaults.think})",
    )
    rate = parser.add_argument_group("fixed rate (open loop)")
    rate.add_argument(
        "--rate",
        type=positive_float,
        metavar="RPS",
        help="send this many requests per second, whatever the answers' latency",
    )
    rate.add_argument(
        "--max-in-flight",
        type=positive_int,
        metavar="N",
        help=(
            "with --rate, skip (and count) requests due while N are unanswered "
            f"(default: {defaults.max_in_flight})"
        ),
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        metavar="SECONDS",
        help=(
            "run for this long: users start new sessions until then; with --rate the "
            "default is to run until interrupted"
        ),
    )
    parser.add_argument(
        "--risky-share",
        type=share,
        default=defaults.risky_share,
        metavar="P",
        help=f"share of rolls that use the risky die, 0 to 1 (default: {defaults.risky_share})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=defaults.timeout,
        metavar="SECONDS",
        help=f"give up on a request after this long (default: {defaults.timeout:g})",
    )
    parser.add_argument(
        "--wait",
        type=non_negative_float,
        default=defaults.wait,
        metavar="SECONDS",
        help="keep retrying the start-up check of GET / for this long (default: 0)",
    )
    parser.add_argument(
        "--seed",
        type=_whole,
        metavar="INT",
        help="make the dice, roll counts and pauses repeatable",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no line per roll, only progress and the summary"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (messages and roll lines go to stderr)",
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse and cross-check the options; exits with code 2 and a message when wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = Settings()
    if args.rate is not None and args.target is Target.FRONTEND:
        parser.error(
            "--rate sends rolls to the dice-roller at a fixed rate; --target frontend "
            "simulates visitors, who wait for each answer (use --users, --rolls, --think)"
        )
    if args.rate is not None:
        clashing = [
            f"--{name}" for name in ("users", "rolls", "think") if getattr(args, name) is not None
        ]
        if clashing:
            parser.error(
                f"--rate sends at a fixed rate; it cannot be combined with "
                f"{', '.join(clashing)}, which shape simulated users"
            )
    elif args.max_in_flight is not None:
        parser.error("--max-in-flight only applies with --rate")
    return Settings(
        url=args.url or DEFAULT_URLS[args.target],
        target=args.target,
        users=args.users if args.users is not None else defaults.users,
        rolls=args.rolls or defaults.rolls,
        think=args.think or defaults.think,
        duration=args.duration,
        rate=args.rate,
        max_in_flight=args.max_in_flight or defaults.max_in_flight,
        risky_share=args.risky_share,
        timeout=args.timeout,
        wait=args.wait,
        seed=args.seed,
        quiet=args.quiet,
        json=args.json,
    )


def _describe(settings: Settings) -> str:
    until = f" for {settings.duration:g} s" if settings.duration else ""
    if settings.open_loop:
        until = until or " until interrupted (Ctrl-C)"
        return f"Sending {settings.rate:g} requests/s{until}"
    each = "per session" if settings.duration else "each"
    rolls = f"{settings.rolls} rolls {each}"
    who = "users"
    if settings.target is Target.FRONTEND:
        who, rolls = "visitors", f"the page, then {rolls}"
    return (
        f"Starting {settings.users} {who}{until}: {rolls}, "
        f"{settings.think} s between rolls, {settings.risky_share:.0%} risky"
    )


def _install_stop_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM (``docker stop``) end the run gracefully, with a summary."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # e.g. Windows' event loop
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))


async def run(settings: Settings) -> int:
    """Check the service, send the traffic, print the summary; return the exit code."""
    stop = asyncio.Event()
    _install_stop_signals(stop)
    out = sys.stderr if settings.json else sys.stdout
    frontend = settings.target is Target.FRONTEND
    check = check_frontend if frontend else check_service
    async with ClientGroup(settings) as client:
        try:
            service = await unless_stopped(check(client, settings.wait), stop)
        except ServiceUnavailable as exc:
            name, start = SERVICES[settings.target]
            print(
                f"Cannot reach the {name} at {settings.url}: {exc}. "
                f"Is it running? Start it with `{start}`, or point --url at it.",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if service is None:
            print("Interrupted before any traffic was sent.", file=sys.stderr)
            return EXIT_INTERRUPTED
        stats = RunStats()
        with open_display(out, stats, quiet=settings.quiet, title="traffic-gen") as display:
            display.message(f"Service {service} is up at {settings.url}")
            display.message(_describe(settings))
            cpu_at_start = time.process_time()
            if frontend:
                timing = await run_visitors(
                    client, settings, stats, display.page, display.result, stop
                )
            else:
                runner = run_open_loop if settings.open_loop else run_users
                timing = await runner(client, settings, stats, display.result, stop)
            cpu_seconds = time.process_time() - cpu_at_start

    summary = summarize(settings, stats, timing, service, cpu_seconds=cpu_seconds)
    if settings.json:
        print(json.dumps(summary, indent=2))
        print(closing_line(summary), file=sys.stderr)
    else:
        print(render_text(summary))
    if timing.interrupted:
        return EXIT_INTERRUPTED
    failure = _all_failed(stats)
    if failure:
        print(f"{failure}: see the summary above.", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _all_failed(stats: RunStats) -> str | None:
    """What failed every time, if anything did: the rolls, or the frontend's page."""
    if stats.pages.total and not stats.pages.successes:
        return "Every page load failed"
    if stats.finished and not stats.successes:
        return "Every roll failed" if stats.pages.total else "Every request failed"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:  # only when the signal handlers could not be installed
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
