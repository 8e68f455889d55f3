"""A sandbox service's command: its settings, its logging, and uvicorn, the same way
for every service, with a bound on everything a client can make the service hold.

Uvicorn with httptools is the fastest way to serve these apps, but it bounds neither
how long a client may take to send a request head nor how big that head may be, and
it holds as many connections as the process can open files. A client that sends half
a request and waits is held forever; a few hundred such clients leave no file for the
real ones; a 40 MB header is read whole. `BoundedHttpToolsProtocol` adds those bounds
to uvicorn's own protocol, which uvicorn takes as its `http` setting: the parsing, the
answers and the shutdown stay uvicorn's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .logs import configure_logging
from .settings import SettingsError

__all__ = [
    "GRACEFUL_SHUTDOWN_SECONDS",
    "HEADER_TIMEOUT_SECONDS",
    "IDLE_TIMEOUT_SECONDS",
    "LIMITS_MESSAGE",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "TRUSTED_PROXIES_VARIABLE",
    "BoundedHttpToolsProtocol",
    "ServiceSettings",
    "connection_limit",
    "run_service",
    "serve",
]

log = logging.getLogger(__name__)


class ServiceSettings(Protocol):
    """What every service's settings have: where to listen, and how much to log."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_level(self) -> str: ...


Settings = TypeVar("Settings", bound=ServiceSettings)

GRACEFUL_SHUTDOWN_SECONDS = 5
"""On SIGTERM, requests in flight get this long to finish before uvicorn closes the
connections and the service flushes its spans."""
MAX_HEADER_BYTES = 64 * 1024
"""The longest request head read (request line, headers and the blank line ending them),
however it arrives. A longer one is answered 431 and its connection closed as soon as
the limit is reached: without it a 40 MB header was read whole, and each connection
may hold this much while its head is on the way."""
HEADER_TIMEOUT_SECONDS = 10
"""A connection must send a whole request head within this long of opening, or of its
previous answer. One that sent part of a head is answered 408 and closed, one that sent
nothing is closed: otherwise a client that stops halfway is held forever."""
IDLE_TIMEOUT_SECONDS = 5
"""A kept-alive connection with no new request in this long is closed (uvicorn's
`timeout_keep_alive`, its default, stated here with the other limits)."""
MAX_CONNECTIONS = 1024
"""Connections open at once, at most: each holds a file and up to `MAX_HEADER_BYTES` of
a head on the way (1,000 such heads took the dice-roller from 69 to 137 MiB, inside the
container's 256). A connection past the limit takes the place of the one that has
waited longest for a request head (stalled or idle), so clients that stall cannot keep
real ones out; when every other connection is busy with a request, it is answered 503
and closed."""
RESERVED_FILES = 128
"""Files the service keeps for itself whatever its connections: its socket, its logs,
its span exports, the frontend's own connections to the dice-roller (up to 100). With
fewer files allowed than `MAX_CONNECTIONS` plus these, the connection limit is lowered:
past the process's file limit, new connections would be dropped without a word."""
LIMITS_REPORT_SECONDS = 60
"""Connections closed at these limits are counted and reported in one line: the first a
second after the first closure (a burst is one line), then at most one line per this
many seconds, however many sockets misbehave."""
LINGER_SECONDS = 2.0
"""After a refusal (431, 408, 503), what the client is still sending is read and dropped
for up to this long before the connection closes. Closed at once, the socket would
answer the rest with a reset, and the client could lose the refusal it had not read."""
LIMITS_MESSAGE = "Connections closed at the server's limits"
PROG_VARIABLE = "SANDBOX_PROG"
"""The name a wrapper ran a command under (`python3 tasks.py run`), for its usage line and
messages: read once, and taken out of the environment, so the processes the command
starts do not inherit it."""
TRUSTED_PROXIES_VARIABLE = "FORWARDED_ALLOW_IPS"
"""Uvicorn's own variable: the proxies (addresses or networks, comma-separated) whose
`X-Forwarded-For` and `X-Forwarded-Proto` the service believes. Unset or empty, none:
uvicorn's default, 127.0.0.1, let any local client put what it liked in `client`."""


def serve(app: FastAPI, host: str, port: int, trusted_proxies: str = "") -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down gracefully and return.

    Forwarded headers are believed from `trusted_proxies` only, and from none when empty.
    """
    # Uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found. A handler that ignores it makes a clean shutdown exit with 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _after_graceful_shutdown)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the JSON handlers configure_logging installed
        access_log=False,  # every request writes its own line (sandbox_telemetry.http)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
        http=BoundedHttpToolsProtocol,
        timeout_keep_alive=IDLE_TIMEOUT_SECONDS,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies,
    )


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """Uvicorn has already stopped cleanly when this runs: nothing is left to do."""


def connection_limit() -> int:
    """`MAX_CONNECTIONS`, or fewer when the process may not open that many files."""
    files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if files == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, files - RESERVED_FILES))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's HTTP/1.1 protocol on httptools, with the limits above.

    Per connection it keeps `head_bytes`, what it has read of the request head on the
    way (None while a head is whole and its request is read or answered), and
    `head_timer`, the time left to finish that head (None while nothing is awaited).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_bytes: int | None = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self.waiting_since = 0.0
        self.refused = False  # answered at a limit: what still arrives is dropped
        self._await_head()
        if len(self.connections) > connection_limit():
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.head_bytes is None or self.head_bytes + len(data) <= MAX_HEADER_BYTES:
            if self.head_bytes is not None:
                self.head_bytes += len(data)
            super().data_received(data)
            return
        # This read would take the head past its limit: parse only what the limit
        # leaves. If the head ends within it, on_headers_complete resets `head_bytes`.
        room = MAX_HEADER_BYTES - self.head_bytes
        self.head_bytes = MAX_HEADER_BYTES
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self.head_bytes == MAX_HEADER_BYTES:
            self._close("too_large", 431, "Request header fields too large.")
        else:
            self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_bytes = 0  # what the client sends next is the next request's head

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # no request read ahead: the next head is awaited
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self.waiting_since = self.loop.time()
        self.head_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.head_bytes:
            self._close("stalled", 408, "Request head not received in time.")
        else:
            self.transport.close()  # nothing was sent: an idle connection, let go quietly

    def _make_room(self) -> None:
        """Close the connection that has waited longest for a request head, or this one
        if every other is busy with a request."""
        waiting = [
            connection
            for connection in self.connections
            if isinstance(connection, BoundedHttpToolsProtocol)
            and connection.head_timer is not None
            and connection is not self
            and not connection.transport.is_closing()
        ]
        if waiting:
            min(waiting, key=lambda connection: connection.waiting_since)._close("made_room")
        else:
            self._close("refused", 503, "Too many connections.")

    def _close(self, reason: str, status: int | None = None, text: str = "") -> None:
        """Answer `status` (if any) and close, counting the connection under `reason`."""
        self._stop_head_timer()
        _closed_at_limits.count(reason, self.loop, len(self.connections))
        if status is None or not self.transport.can_write_eof():
            self.transport.close()
            return
        body = text.encode()
        head = b"content-type: text/plain\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(body) + body)
        self.transport.write_eof()  # the answer is whole; the client's rest is dropped
        self.refused = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class ClosedAtLimits:
    """Counts the connections closed at the limits, by reason, and writes them in one
    line: `delay` seconds after the first, then at most once every `interval` seconds."""

    def __init__(self, interval: float = LIMITS_REPORT_SECONDS, delay: float = 1.0) -> None:
        self.interval = interval
        self.delay = delay
        self.closed: Counter[str] = Counter()
        self.open_connections = 0
        self.line_due = False
        self.next_line_at = 0.0

    def count(self, reason: str, loop: asyncio.AbstractEventLoop, open_connections: int) -> None:
        self.closed[reason] += 1
        self.open_connections = open_connections
        if not self.line_due:
            self.line_due = True
            loop.call_at(max(loop.time() + self.delay, self.next_line_at), self._write, loop)

    def _write(self, loop: asyncio.AbstractEventLoop) -> None:
        log.warning(
            LIMITS_MESSAGE,
            extra={
                "closed": dict(self.closed),
                "open_connections": self.open_connections,
                "connection_limit": connection_limit(),
            },
        )
        self.closed.clear()
        self.line_due = False
        self.next_line_at = loop.time() + self.interval


_closed_at_limits = ClosedAtLimits()
"""One per process, like the server it reports on."""


def run_service(
    prog: str,
    description: str,
    model: type[BaseModel],
    prefix: str,
    load_settings: Callable[..., Settings],
    create_app: Callable[[Settings], FastAPI],
    argv: Sequence[str] | None = None,
) -> int:
    """The `prog` command: `--host`/`--port` over the `PREFIX_*` settings, then serve.

    `prog` is how it was run (`dice-roller`, `python -m dice_roller`), unless a wrapper
    named itself in SANDBOX_PROG. A bad setting is one message naming every bad value,
    and exit code 2.
    """
    prog = os.environ.pop(PROG_VARIABLE, "") or prog
    fields = model.model_fields
    variables = ", ".join(f"{prefix}{name.upper()}" for name in fields)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=(
            f"Environment: {variables}; {TRUSTED_PROXIES_VARIABLE}, the proxies whose "
            "X-Forwarded-For is believed (none by default); OpenTelemetry reads its standard "
            "OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, "
            "OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_EXPORTER=otlp|console|none, ...). "
            "Flags win over the environment."
        ),
    )
    for name in ("host", "port"):
        field = fields[name]
        parser.add_argument(
            f"--{name}",
            help=f"{field.description} [{prefix}{name.upper()}, default {field.default}]",
        )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port)
    except SettingsError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    trusted_proxies = os.environ.get(TRUSTED_PROXIES_VARIABLE, "")
    serve(create_app(settings), settings.host, settings.port, trusted_proxies)
    return 0
