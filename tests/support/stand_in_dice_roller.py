"""A stand-in dice-roller that misbehaves on demand, for the frontend's tests.

It is a real HTTP server on 127.0.0.1 (`tests.support.http_server`), so the frontend's
real client meets real sockets: a real timeout, a real refused connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Literal

from tests.support.http_server import LocalHTTPServer, QuietHandler

__all__ = ["Behaviour", "RecordedRequest", "StandInDiceRoller"]

Behaviour = Literal[
    "roll",  # 200 {"die": ..., "roll": 4}, as the real one
    "slow",  # holds the request until the stand-in stops: longer than any timeout
    "error",  # answers `status` with {"detail": `detail`}, as FastAPI does
    "error_text",  # answers `status` with a body that is not JSON
    "answer",  # answers 200 with `body` as it is (a broken or foreign answer)
]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]


class StandInDiceRoller(LocalHTTPServer):
    """A dice-roller on 127.0.0.1 that answers as `behaviour` says and records every
    request it gets, headers included; set the attributes between requests."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = "roll"
        self.status = 500
        self.detail = "Roll failed"
        self.body = b""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    def received(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                recorded = RecordedRequest(
                    "GET", self.path, {k.lower(): v for k, v in self.headers.items()}
                )
                with stand_in._lock:
                    stand_in.requests.append(recorded)
                behaviour = stand_in.behaviour
                if behaviour == "slow":
                    stand_in.release.wait(60)  # the frontend must give up long before
                    return
                if behaviour == "roll":
                    self._answer(200, "application/json", b'{"die": "fair", "roll": 4}')
                elif behaviour == "error":
                    body = json.dumps({"detail": stand_in.detail}).encode()
                    self._answer(stand_in.status, "application/json", body)
                elif behaviour == "error_text":
                    self._answer(stand_in.status, "text/html", b"<h1>Bad Gateway</h1>")
                else:
                    self._answer(200, "application/json", stand_in.body)

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
