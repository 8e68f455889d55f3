"""Stage 2's frontend, as users run it (a process) and in-process with its spans in memory.

`running_frontend` is the counterpart of `running_service`: `python -m frontend` on a
free port of 127.0.0.1, in front of whatever dice-roller URL the test gives (a real
one, a stand-in, or a port where nothing listens), its stdout captured for the test to
read. `in_process_frontend` serves the app through httpx's ASGI transport instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import httpx
from frontend.app import create_app
from frontend.settings import Settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .servers import RunningServer, running_server
from .tools import free_port

__all__ = [
    "DEFAULT_FRONTEND_ENV",
    "InProcessFrontend",
    "RunningFrontend",
    "in_process_frontend",
    "running_frontend",
]

DEFAULT_FRONTEND_ENV: Mapping[str, str] = {"OTEL_TRACES_EXPORTER": "none"}
"""Traces are off unless a test brings a receiver."""

RunningFrontend = RunningServer
"""A frontend process (tests/support/servers.py)."""


@contextmanager
def running_frontend(
    dice_roller_url: str, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningFrontend]:
    """Run the frontend in front of `dice_roller_url`, with `env` on top of
    `DEFAULT_FRONTEND_ENV`, until the block ends (then it is stopped with SIGTERM)."""
    port = free_port()
    env = {
        **DEFAULT_FRONTEND_ENV,
        **(env or {}),
        "FRONTEND_HOST": "127.0.0.1",
        "FRONTEND_PORT": str(port),
        "FRONTEND_DICE_ROLLER_URL": dice_roller_url,
    }
    with running_server(
        "frontend",
        port,
        [],
        env,
        ready_path="/metrics",  # not `/`: the page's count is the test's own
        ready_timeout=ready_timeout,
        graceful_stop=True,
    ) as frontend:
        yield frontend


@dataclass(frozen=True)
class InProcessFrontend:
    client: httpx.AsyncClient
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@asynccontextmanager
async def in_process_frontend(
    settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[InProcessFrontend]:
    """The frontend app, served through httpx's ASGI transport with its lifespan run,
    every span it ends kept in memory. `transport` stands in for the network under its
    own clients (the dice-roller's and the relay's); None means the real network."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings or Settings(), provider, transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://frontend"
        ) as client,
    ):
        yield InProcessFrontend(client, exporter)
