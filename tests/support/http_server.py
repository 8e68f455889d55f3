"""The scaffold of the small HTTP servers tests run in-process as stand-ins.

Where a test needs a component that cannot run here (Grafana), one that misbehaves
on purpose (a proxy in front of a real one), or a receiver it can inspect, it plays
it with `http.server`: a `ThreadingHTTPServer` on 127.0.0.1, on a port the OS picks
(so parallel tests never collide), served from a daemon thread. Stand-ins that
misbehave on purpose hold a request open ("hang") by waiting on `release`; `stop`
sets it first, so shutting the server down never waits for them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

__all__ = ["LocalHTTPServer", "QuietHandler", "serving"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to stderr (pytest shows it)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 answering with `handler`; see `serving`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.release = threading.Event()
        """Set when the server stops: handlers holding a request open let it go."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


S = TypeVar("S", bound=LocalHTTPServer)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """Serve with `server` until the block ends."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
