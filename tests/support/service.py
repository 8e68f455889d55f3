"""Start the real dice-roller as a process, the way users run it, and stop it again.

Tests talk to it over real HTTP on 127.0.0.1 and read what it printed, so they
check the same bytes a log pipeline and a scraper would see.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from verify.service import parse_traceresponse

from .servers import RunningServer, running_server
from .tools import free_port

__all__ = ["DEFAULT_TEST_ENV", "RunningService", "running_service", "service_command", "trace_of"]

DEFAULT_TEST_ENV: Mapping[str, str] = {
    "DICE_MAX_DELAY_SECONDS": "0.05",
    "OTEL_TRACES_EXPORTER": "none",
    "DICE_LOG_LEVEL": "INFO",
}
"""A short delay keeps tests quick; traces are off unless a test brings a receiver."""

RunningService = RunningServer
"""A dice-roller process (tests/support/servers.py)."""


def _arguments(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def service_command(port: int) -> list[str]:
    """The dice-roller's command line on `port`, for a test that starts it itself."""
    return [sys.executable, "-m", "dice_roller", *_arguments(port)]


@contextmanager
def running_service(
    env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningService]:
    """Run the service with `env` on top of `DEFAULT_TEST_ENV`, until the block ends
    (then it is killed)."""
    port = free_port()
    with running_server(
        "dice_roller",
        port,
        _arguments(port),
        {**DEFAULT_TEST_ENV, **(env or {})},
        ready_path="/",
        ready_timeout=ready_timeout,
        graceful_stop=False,
    ) as service:
        yield service


def trace_of(headers: Mapping[str, str]) -> tuple[str, str]:
    """(trace id, span id) of an answer, from its `traceresponse` header.

    Fails the test when the header is missing, malformed or names the all-zero trace.
    """
    ids = parse_traceresponse(headers.get("traceresponse"))
    assert ids is not None, f"no valid traceresponse header: {headers.get('traceresponse')!r}"
    return ids
