"""`python -m verify`: parse the options, run every check, print the checklist, exit.

Exit codes: 0 every box ticked, 1 at least one cross, 2 bad usage (a flag or an
environment variable with a value it cannot take), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import httpx

import stackclient

from . import sources
from .context import Context, Settings
from .dashboard import run_dashboard_checks
from .logs import run_log_checks
from .metrics import run_metrics_checks
from .model import Run
from .report import render_json, render_text
from .service import run_service_checks
from .stage2 import run_stage2_checks
from .stage3 import run_stage3_checks
from .stage4 import run_stage4_checks
from .stage5 import run_stage5_checks
from .traces import run_trace_checks, run_trace_to_logs_checks
from .traffic import run_traffic

__all__ = ["UsageError", "build_parser", "from_env", "main", "report_usage_error", "run_checks"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STAGES = ("1", "2", "3", "4", "5")
ASCII_SPELLINGS = str.maketrans({"→": "->", "…": "...", "—": "-"})

URL_OPTIONS = {
    option: spec
    for option, spec in stackclient.URL_OPTIONS.items()
    if option != "--alertmanager-url"  # no box asks Alertmanager itself (Grafana does)
}
"""option: (Settings field, environment variable, what it is)"""


class UsageError(Exception):
    """A value the checks cannot work with; the message names what is allowed."""


def base_url(text: str) -> str:
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as http://localhost:9090, got {text!r}"
        )
    return text.rstrip("/")


def seconds(minimum: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum):
            bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
            raise argparse.ArgumentTypeError(f"expected seconds, a number {bound}, got {text!r}")
        return value

    return parse


def traffic_arguments(text: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"cannot split {text!r} into arguments: {error}") from None


def stage_number(text: str) -> int:
    if text.strip() not in STAGES:
        raise argparse.ArgumentTypeError(f"{text!r:.40}: the stages are {', '.join(STAGES)}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        # How it was run: `python3 tasks.py verify` names itself in SANDBOX_PROG.
        prog=os.environ.pop("SANDBOX_PROG", "") or "python -m verify",
        description=(
            "Check a running stack against the checklist of docs/checklist.md, through each "
            "component's HTTP API, and print each box ticked or crossed, with a fix hint "
            "under each cross."
        ),
        epilog=(
            "Every URL can also come from its environment variable (flags win). "
            "Exit codes: 0 all checks passed, 1 some failed, 2 bad usage, 130 interrupted."
        ),
    )
    urls = parser.add_argument_group("where the stack is")
    for option, (field, env, what) in URL_OPTIONS.items():
        urls.add_argument(
            option,
            type=base_url,
            metavar="URL",
            help=f"{what} (env {env}; default: {getattr(defaults, field)})",
        )
    urls.add_argument(
        "--grafana-user",
        help="Grafana user, when anonymous access is off "
        "(env VERIFY_GRAFANA_USER; default: anonymous)",
    )
    urls.add_argument("--grafana-password", help="its password (env VERIFY_GRAFANA_PASSWORD)")
    parser.add_argument(
        "--timeout",
        type=seconds(0, inclusive=False),
        metavar="SECONDS",
        help=f"limit for each HTTP call (env VERIFY_TIMEOUT; default: {defaults.timeout:g})",
    )
    parser.add_argument(
        "--wait",
        type=seconds(0, inclusive=True),
        metavar="SECONDS",
        help="how long, in all, to wait for fresh data to arrive (a new trace in Tempo, new "
        "log lines in Loki, a scrape, a panel's data) before crossing a box "
        f"(env VERIFY_WAIT; default: {defaults.wait:g})",
    )
    parser.add_argument(
        "--stage",
        type=stage_number,
        metavar="N",
        help="the stage that runs (docs/stages.md): 2 adds the Across Services boxes, 3 "
        "the Three Services boxes, 4 the Async Rolls boxes, 5 the PostgreSQL boxes "
        f"(env VERIFY_STAGE; default: {defaults.stage})",
    )
    parser.add_argument(
        "--with-traffic",
        action="store_true",
        help="run traffic-gen/generate_traffic.py against the service first",
    )
    parser.add_argument(
        "--traffic-args",
        type=traffic_arguments,
        default=(),
        metavar="'ARGS'",
        help="extra options for the generator, in one quoted string, e.g. '--users 5 --rolls 3'",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON: the summary, and each box with what blocked it "
        "(shape: verify/report.py)",
    )
    parser.add_argument("--ascii", action="store_true", help="[x] and [ ] instead of ✅ and ❌")
    return parser


def from_env(
    environ: Mapping[str, str], name: str, parse: Callable[[str], object]
) -> object | None:
    """Environment variable `name` parsed like its flag; None when unset or empty."""
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        return parse(text)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"environment variable {name}: {error}") from None


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags first, then environment variables, then the compose stack's defaults."""
    values: dict[str, object] = {}
    for option, (field, env, _) in URL_OPTIONS.items():
        value = getattr(args, option[2:].replace("-", "_")) or from_env(environ, env, base_url)
        if value is not None:
            values[field] = value
    for field, env, parse in (
        ("timeout", "VERIFY_TIMEOUT", seconds(0, inclusive=False)),
        ("wait", "VERIFY_WAIT", seconds(0, inclusive=True)),
        ("stage", "VERIFY_STAGE", stage_number),
    ):
        value = getattr(args, field)
        value = value if value is not None else from_env(environ, env, parse)
        if value is not None:
            values[field] = value
    user = args.grafana_user or environ.get("VERIFY_GRAFANA_USER") or None
    password = args.grafana_password or environ.get("VERIFY_GRAFANA_PASSWORD") or None
    if password is not None and user is None:
        raise UsageError(
            "a Grafana password needs a user: add --grafana-user (or VERIFY_GRAFANA_USER)"
        )
    return replace(
        Settings(),
        grafana_user=user,
        grafana_password=password,
        with_traffic=args.with_traffic,
        traffic_args=args.traffic_args,
        **values,  # type: ignore[arg-type]
    )


def run_checks(settings: Settings) -> Run:
    """Every check, in an order where each finds what it needs from the earlier ones."""
    run = Run()
    api = stackclient.Api(timeout=settings.timeout, answered=sources.answered)
    ctx = Context(settings, api)
    try:
        if settings.with_traffic:
            run_traffic(ctx, run)
            ctx.start_waiting()
        run_service_checks(ctx, run)
        run_metrics_checks(ctx, run)
        run_log_checks(ctx, run)
        # The trace boxes follow the fresh request of the service checks through Tempo.
        with run.relying_on(ctx.service, ctx.tempo.component):
            run_trace_checks(ctx, run)
            run_trace_to_logs_checks(ctx, run)
        with run.relying_on(ctx.grafana.component):  # the panels are read from Grafana's dashboard
            run_dashboard_checks(ctx, run)
        if settings.stage >= 2:
            with run.relying_on(ctx.frontend):
                run_stage2_checks(ctx, run)
        if settings.stage >= 3:
            with run.relying_on(ctx.frontend):
                run_stage3_checks(ctx, run)
        if settings.stage >= 4:
            with run.relying_on(ctx.service):
                run_stage4_checks(ctx, run)
        if settings.stage >= 5:
            run_stage5_checks(ctx, run)
    finally:
        api.close()
    return run


def report_usage_error(parser: argparse.ArgumentParser, error: UsageError) -> int:
    """Say what was wrong the way argparse does for a bad flag; the exit code for it."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a one-line message on a bad flag
    try:
        settings = settings_from(args, os.environ)
    except UsageError as error:
        return report_usage_error(parser, error)
    try:
        run = run_checks(settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(render_json(run))
    else:
        notes = [] if settings.with_traffic else ["(Traffic Generation: add --with-traffic.)"]
        if not run.passed:
            notes.append('More help: stack/README.md, "When a signal is missing".')
        ascii_only = args.ascii or not _can_print("✅❌…→")
        text = render_text(run, ascii_only=ascii_only, notes=notes)
        if ascii_only:
            text = text.translate(ASCII_SPELLINGS).encode("ascii", "replace").decode("ascii")
        print(text)
    return EXIT_OK if run.passed else EXIT_FAILED
