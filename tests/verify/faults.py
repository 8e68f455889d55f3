"""The scaffolding of servers that misbehave on purpose, for the failure scenarios.

Each scenario breaks one part of the stack. Whatever answers for that part (a proxy
in front of a real component, or the Grafana stand-in) is a `FaultyServer`: a small
threaded HTTP server on 127.0.0.1 that records every request and can be told to
misbehave per path prefix, `fail["/path"] = mode`, with mode one of

- "500": HTTP 500 with a plain-text error;
- "404": HTTP 404 "404 page not found", as Go's mux answers an unknown path;
- "malformed": HTTP 200 with JSON cut off in the middle;
- "empty": a valid answer without data (what that means is the subclass's business);
- "hang": no answer at all, until the server stops.

`answer` is what a subclass does otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.http_server import LocalHTTPServer, QuietHandler

__all__ = ["MODES", "Answer", "FaultyServer", "Request", "json_answer", "text_answer"]

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
    """The path, percent-decoded: what fault prefixes and routes match."""
    params: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes


class FaultyServer(LocalHTTPServer):
    """A threaded HTTP server whose `answer` a subclass writes, with faults on demand."""

    name = "server"

    def __init__(self) -> None:
        self.fail: dict[str, str] = {}
        self.requests: list[str] = []
        """`METHOD /path` of every request, faulty or not, in order."""
        super().__init__(self._handler_class())

    def reset(self) -> None:
        """Behave again: no faults, no requests remembered."""
        self.fail.clear()
        self.requests.clear()

    def mode_for(self, path: str) -> str | None:
        for prefix, mode in self.fail.items():
            if path.startswith(prefix):
                return mode
        return None

    def answer(self, request: Request, mode: str | None) -> Answer:
        """The answer when no fault replaces it; `mode` is "empty" or None."""
        raise NotImplementedError

    def respond(self, request: Request) -> Answer | None:
        """The answer to `request`, faults included; None to hang."""
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
