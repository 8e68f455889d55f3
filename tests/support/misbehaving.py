"""Servers that answer badly on purpose, for the tests of what meets a broken component.

("Fault" in this project means the dice-roller's fault flags; these are something
else: stand-ins and proxies that misbehave when a test tells them to.)

`MisbehavingServer` is what answers for a broken part of the stack in the checks'
scenarios (a proxy in front of a real component, tests/support/proxies.py, or the
Grafana stand-in, tests/support/fake_grafana.py): a small threaded HTTP server on
127.0.0.1 that records every request and can be told to misbehave per path prefix,
`fail["/path"] = mode`, with mode one of

- "500": HTTP 500 with a plain-text error;
- "404": HTTP 404 "404 page not found", as Go's mux answers an unknown path;
- "malformed": HTTP 200 with JSON cut off in the middle;
- "empty": a valid answer without data (what that means is the subclass's business);
- "hang": no answer at all, until the server stops.

`answer` is what a subclass does otherwise.

`hanging_server` is lower down: a TCP server that accepts connections and never
answers a roll, for the traffic generator's tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.http_server import LocalHTTPServer, QuietHandler
from tests.support.tcp_server import serving_tcp

__all__ = [
    "MODES",
    "Answer",
    "HangingServer",
    "MisbehavingServer",
    "Request",
    "hanging_server",
    "json_answer",
    "text_answer",
]

Answer = tuple[int, str, bytes]
"""Status, content type, body."""

MODES = ("500", "404", "malformed", "empty", "hang")


def json_answer(body: Any, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(body).encode()


def text_answer(text: str, status: int = 200) -> Answer:
    return status, "text/plain; charset=utf-8", text.encode()


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    target: str
    """Path and query exactly as sent: what a proxy forwards."""
    path: str
    """The path, percent-decoded: what the `fail` prefixes and routes match."""
    params: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes


class MisbehavingServer(LocalHTTPServer):
    """A threaded HTTP server whose `answer` a subclass writes, misbehaving on demand."""

    name = "server"

    def __init__(self) -> None:
        self.fail: dict[str, str] = {}
        self.requests: list[str] = []
        """`METHOD /path` of every request, answered well or not, in order."""
        super().__init__(self._handler_class())

    def reset(self) -> None:
        """Behave again: no misbehaviour, no requests remembered."""
        self.fail.clear()
        self.requests.clear()

    def mode_for(self, path: str) -> str | None:
        for prefix, mode in self.fail.items():
            if path.startswith(prefix):
                return mode
        return None

    def answer(self, request: Request, mode: str | None) -> Answer:
        """The answer when no misbehaviour replaces it; `mode` is "empty" or None."""
        raise NotImplementedError

    def respond(self, request: Request) -> Answer | None:
        """The answer to `request`, misbehaviour included; None to hang."""
        self.requests.append(f"{request.method} {request.path}")
        mode = self.mode_for(request.path)
        if mode == "hang":
            self.release.wait(120)
            return None
        if mode == "500":
            return text_answer("internal server error: something broke", 500)
        if mode == "404":
            return text_answer("404 page not found\n", 404)
        if mode == "malformed":
            return 200, "application/json", b'{"status": "success", "data": {'
        try:
            return self.answer(request, mode)
        except Exception as error:  # a bug here shows up as a 500, not a hung test
            return text_answer(f"{self.name} failed: {error!r}", 500)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", "0") or 0)
                request = Request(
                    method=method,
                    target=self.path,
                    path=unquote(parts.path),
                    params={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = server.respond(request)
                if answer is None:
                    return
                status, content_type, payload = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


@dataclass
class HangingServer:
    url: str
    connections: int = 0  # accepted so far


@contextmanager
def hanging_server(*, answer_root: bool, roll_body: bytes | None = None) -> Iterator[HangingServer]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers a roll.

    With ``answer_root`` it answers ``GET /`` like the service, so the generator gets
    past its start-up check and then waits on every roll; without it, even the check
    hangs. With ``roll_body`` it answers rolls after all: 200, with that body, as a
    misconfigured proxy or a bug would. Stopped when the block ends.
    """
    server_info = HangingServer(url="")
    root = b'{"service": "hanging", "version": "0"}'

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopped: asyncio.Event
    ) -> None:
        server_info.connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if answer_root and head.startswith(b"GET / "):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(root), root)
                )
                await writer.drain()
                continue
            if roll_body is not None:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(roll_body), roll_body)
                )
                await writer.drain()
                continue
            await stopped.wait()  # hold the connection open, say nothing
            return

    with serving_tcp(handle) as url:
        server_info.url = url
        yield server_info
