"""Stage 3's die-service as users run it: `python -m die_service` on a free port of
127.0.0.1, its stdout captured for the test to read (tests/support/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .servers import RunningServer, running_server
from .tools import free_port

__all__ = ["DEFAULT_DIE_SERVICE_ENV", "RunningDieService", "running_die_service"]

DEFAULT_DIE_SERVICE_ENV: Mapping[str, str] = {"OTEL_TRACES_EXPORTER": "none"}
"""Traces are off unless a test brings a receiver."""

RunningDieService = RunningServer
"""A die-service process (tests/support/servers.py)."""


@contextmanager
def running_die_service(
    env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningDieService]:
    """Run the die-service with `env` on top of `DEFAULT_DIE_SERVICE_ENV`, until the block
    ends (then it is stopped with SIGTERM, so its last spans leave)."""
    port = free_port()
    env = {
        **DEFAULT_DIE_SERVICE_ENV,
        **(env or {}),
        "DIE_SERVICE_HOST": "127.0.0.1",
        "DIE_SERVICE_PORT": str(port),
    }
    with running_server(
        "die_service",
        port,
        [],
        env,
        ready_path="/metrics",  # not `/dice`: the lookups a test counts are its own
        ready_timeout=ready_timeout,
        graceful_stop=True,
    ) as service:
        yield service
