"""The HTTP side: Alertmanager posts notifications here, people and healthchecks look.

- `POST /alerts`: a webhook notification; each alert becomes a line on stdout, and
  the answer is 200. A body that is not a version 4 payload gets 400 with the reason,
  and one log line on stderr says the same; nothing is printed for it.
- `GET /`: what this service is and its endpoints;
- `GET /ready`: 200 once it listens (compose's healthcheck).

stdout carries the alert lines only and stderr the service's own log lines, both as
JSON: Loki tells them apart by the `stream` label Alloy sets.

What a client can make it hold is bounded (`limits`): at most MAX_HANDLERS connections
are served at once, a thread each, and one more is answered 503 at once without a
thread; a connection that leaves its handler waiting TIMEOUT_SECONDS is closed; what
an answer or a log line repeats of a request is cut.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from . import SERVICE_NAME, __version__
from .limits import (
    BUSY_LOG_SECONDS,
    MAX_BODY_BYTES,
    MAX_FIELD_CHARS,
    MAX_HANDLERS,
    MAX_MESSAGE_CHARS,
    TIMEOUT_SECONDS,
    cut_text,
)
from .payload import SUPPORTED_VERSION, PayloadError, alert_lines, parse_payload

__all__ = ["AlertReceiver", "Output"]

ENDPOINTS = {
    "POST /alerts": (
        f"Alertmanager's webhook (payload version {SUPPORTED_VERSION}): one JSON line per "
        "alert on stdout"
    ),
    "GET /ready": "200 when the receiver accepts notifications",
    "GET /": "this description",
}


class Output:
    """Where lines go: alert lines to `alerts` (stdout), log lines to `log` (stderr).

    One lock for both, so lines of concurrent requests never interleave mid-line.
    """

    def __init__(self, alerts: TextIO | None = None, log: TextIO | None = None) -> None:
        self.alerts = alerts or sys.stdout
        self.log_stream = log or sys.stderr
        self._lock = threading.Lock()

    def alert_lines(self, lines: list[str]) -> None:
        with self._lock:
            for line in lines:
                self.alerts.write(line + "\n")
            self.alerts.flush()

    def log(self, level: str, message: str, **fields: Any) -> None:
        """One JSON line on stderr; a message longer than MAX_MESSAGE_CHARS is cut."""
        message = cut_text(message, MAX_MESSAGE_CHARS)
        record = {"timestamp": _now(), "level": level, "message": message, **fields}
        with self._lock:
            self.log_stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.log_stream.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _busy_answer() -> bytes:
    """The whole 503 a connection beyond MAX_HANDLERS gets, written without a handler."""
    body = json.dumps(
        {"error": f"all {MAX_HANDLERS} handlers are busy: try again in a few seconds"}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {round(TIMEOUT_SECONDS)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


BUSY_ANSWER = _busy_answer()


class AlertReceiver(ThreadingHTTPServer):
    """The server: its handler reaches `output` through `self.server`.

    One thread (serve_forever's) accepts connections; each is served by a thread of
    its own, MAX_HANDLERS at most. A connection beyond that is answered 503 by the
    accepting thread itself, which never waits on a client: the answer fits in the
    new socket's empty send buffer.
    """

    daemon_threads = True
    request_queue_size = 64
    """The listen backlog: connections the kernel holds until they are accepted."""

    def __init__(self, address: tuple[str, int], output: Output) -> None:
        self.output = output
        self._handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        self._refused_since_logged = 0
        self._next_busy_log = 0.0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, or refuse it if all are busy."""
        if not self._handlers.acquire(blocking=False):
            self._refuse_busy(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handlers.release()  # no thread started: nothing else will release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._handlers.release()

    def _refuse_busy(self, request: socket.socket, client_address: Any) -> None:
        request.setblocking(False)  # should the client's buffers be full: give up
        with contextlib.suppress(OSError):
            request.sendall(BUSY_ANSWER)
        self.shutdown_request(request)
        self._log_busy(client_address)

    def _log_busy(self, client_address: Any) -> None:
        """One line per BUSY_LOG_SECONDS at most, counting the 503s since the last."""
        self._refused_since_logged += 1
        now = time.monotonic()
        if now >= self._next_busy_log:
            self.output.log(
                "warning",
                f"refused connections: all {MAX_HANDLERS} handlers busy",
                refused=self._refused_since_logged,
                client=str(client_address[0]),
            )
            self._refused_since_logged = 0
            self._next_busy_log = now + BUSY_LOG_SECONDS

    def handle_error(self, request: object, client_address: Any) -> None:
        """A request that broke the handler (a client gone mid-answer): one line, no
        traceback."""
        error = sys.exc_info()[1]
        self.output.log(
            "error",
            f"a request failed: {type(error).__name__}: {error}",
            client=str(client_address[0]),
        )


class _Handler(BaseHTTPRequestHandler):
    server: AlertReceiver
    server_version = f"{SERVICE_NAME}/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT_SECONDS
    """Set on the connection's socket: a read or a write waiting longer ends it."""

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: stdout is for alerts, and refusals are logged where they happen."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a request line it cannot read, an unknown method)
        quote the request in the status line and the body: cut, as everywhere."""
        if message is not None:
            message = cut_text(message, MAX_FIELD_CHARS)
        super().send_error(code, message, explain)

    def _answer(self, status: int, body: dict[str, Any], **headers: str) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(payload)

    def _refuse(self, status: int, message: str) -> None:
        self.server.output.log(
            "warning", f"refused a notification: {message}", client=self.client_address[0]
        )
        self._answer(status, {"error": message})

    def do_GET(self) -> None:
        if self.path == "/":
            self._answer(
                HTTPStatus.OK,
                {
                    "service": SERVICE_NAME,
                    "version": __version__,
                    "description": (
                        "Receives Alertmanager's notifications and prints one JSON line "
                        'per alert on stdout (in Loki: {compose_service="alert-receiver"}).'
                    ),
                    "endpoints": ENDPOINTS,
                },
            )
        elif self.path == "/ready":
            self._answer(HTTPStatus.OK, {"status": "ready"})
        elif self.path == "/alerts":
            self._answer(
                HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST notifications here"}, Allow="POST"
            )
        else:
            self._not_found()

    def do_POST(self) -> None:
        if self.path != "/alerts":
            self._not_found()
            return
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):  # "²" is a digit too
            self.close_connection = True
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "the request needs a Content-Length")
            return
        # Compared as text first: int() refuses more than 4,300 digits.
        if len(length.lstrip("0")) > len(str(MAX_BODY_BYTES)) or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {cut_text(length, 20)} bytes, "
                f"more than the {MAX_BODY_BYTES} allowed",
            )
            return
        body = self.rfile.read(int(length))
        try:
            lines = alert_lines(parse_payload(body))
        except PayloadError as error:
            self._refuse(HTTPStatus.BAD_REQUEST, str(error))
            return
        self.server.output.alert_lines(lines)
        self._answer(HTTPStatus.OK, {"alerts": len(lines)})

    def _not_found(self) -> None:
        self._answer(
            HTTPStatus.NOT_FOUND,
            {
                "error": f"no endpoint {cut_text(self.path, MAX_FIELD_CHARS)}",
                "endpoints": ENDPOINTS,
            },
        )
