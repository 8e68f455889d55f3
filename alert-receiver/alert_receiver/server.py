"""The HTTP side: Alertmanager posts notifications here, people and healthchecks look.

- `POST /alerts`: a webhook notification; each alert becomes a line on stdout, and
  the answer is 200. A body that is not a version 4 payload gets 400 with the reason,
  and one log line on stderr says the same; nothing is printed for it.
- `GET /`: what this service is and its endpoints;
- `GET /ready`: 200 once it listens (compose's healthcheck).

stdout carries the alert lines only and stderr the service's own log lines, both as
JSON: Loki tells them apart by the `stream` label Alloy sets.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from . import SERVICE_NAME, __version__
from .payload import SUPPORTED_VERSION, PayloadError, alert_lines, parse_payload

__all__ = ["MAX_BODY_BYTES", "AlertReceiver", "Output"]

MAX_BODY_BYTES = 1024 * 1024
"""Alertmanager truncates a group to fit its own limits; a megabyte is far beyond it."""
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
        record = {"timestamp": _now(), "level": level, "message": message, **fields}
        with self._lock:
            self.log_stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.log_stream.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertReceiver(ThreadingHTTPServer):
    """The server: its handler reaches `output` through `self.server`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], output: Output) -> None:
        self.output = output
        super().__init__(address, _Handler)

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

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: stdout is for alerts, and refusals are logged where they happen."""

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
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "the request needs a Content-Length")
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes, more than the {MAX_BODY_BYTES} allowed",
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
            {"error": f"no endpoint {self.path}", "endpoints": ENDPOINTS},
        )
