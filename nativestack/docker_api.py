"""Just enough of the Docker Engine API for Alloy to discover the service and tail its logs.

The shipped stack/alloy/config.alloy finds containers with `discovery.docker` and
reads their output with `loki.source.docker`, both through the Docker socket. Without
a Docker engine, this server answers on a unix socket the calls their client
(github.com/moby/moby/client) makes, as Alloy 1.18.1 makes them:

- `HEAD`/`GET /_ping`: API version negotiation (the `API-Version` header);
- `GET /v1.NN/containers/json?filters=...`: the container list, filtered by label as
  the engine filters it (discovery.docker, via Prometheus' docker discovery);
- `GET /v1.NN/networks`: network labels for the same targets;
- `GET /v1.NN/containers/ID/json`: inspect; `Config.Tty` false says the log stream is
  multiplexed, `State` says it runs (loki.source.docker's tailer);
- `GET /v1.NN/containers/ID/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=S`:
  every line written since S, then each new line as it comes, in the engine's
  multiplexed framing: an 8-byte header (stream 1 = stdout, 2 = stderr, three zero
  bytes, the payload's length as a big-endian uint32), then
  `RFC3339Nano-timestamp line\\n`.

A container here is a process the native stack started; whatever it prints is fed to
`ContainerLog.append`, exactly the bytes the engine's json-file driver would keep.
"""

from __future__ import annotations

import json
import re
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["API_VERSION", "Container", "ContainerLog", "DockerApi", "serving_docker_api"]

API_VERSION = "1.51"
"""What the stand-in says it speaks (Docker 28); the client negotiates down to it."""
STDOUT, STDERR = 1, 2


class ContainerLog:
    """Everything a container wrote, with when, and a way to wait for more."""

    def __init__(self) -> None:
        self._entries: list[tuple[int, int, bytes]] = []
        self._changed = threading.Condition()
        self.closed = False

    def append(self, stream: int, line: bytes, at_ns: int | None = None) -> None:
        with self._changed:
            self._entries.append((at_ns or time.time_ns(), stream, line))
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def written(self, since_ns: int, streams: set[int]) -> list[tuple[int, int, bytes]]:
        """What is there now: the answer without `follow`."""
        with self._changed:
            return [e for e in self._entries if e[0] >= since_ns and e[1] in streams]

    def follow(
        self, since_ns: int, streams: set[int], stop: threading.Event
    ) -> Iterator[tuple[int, int, bytes]]:
        """Entries at or after `since_ns`, then new ones until `stop` or the log closes."""
        index = 0
        while not stop.is_set():
            with self._changed:
                while index >= len(self._entries) and not (self.closed or stop.is_set()):
                    self._changed.wait(0.5)
                pending, index = self._entries[index:], len(self._entries)
                finished = self.closed
            for entry in pending:
                if entry[0] >= since_ns and entry[1] in streams:
                    yield entry
            if finished and not pending:
                return


@dataclass
class Container:
    """A "container": a name, compose's labels, an address, and its log."""

    id: str
    name: str
    image: str
    labels: dict[str, str]
    network: str
    address: str
    ports: tuple[int, ...] = ()
    started: float = field(default_factory=time.time)
    log: ContainerLog = field(default_factory=ContainerLog)

    def summary(self, network_id: str) -> dict[str, Any]:
        """An item of `GET /containers/json`."""
        return {
            "Id": self.id,
            "Names": [self.name],
            "Image": self.image,
            "ImageID": "sha256:" + "0" * 64,
            "Command": "",
            "Created": int(self.started),
            "Ports": [{"PrivatePort": port, "Type": "tcp"} for port in self.ports],
            "Labels": self.labels,
            "State": "running",
            "Status": f"Up {int(time.time() - self.started)} seconds",
            "HostConfig": {"NetworkMode": self.network},
            "NetworkSettings": {
                "Networks": {
                    self.network: {
                        "NetworkID": network_id,
                        "EndpointID": self.id[:32],
                        "IPAddress": self.address,
                        "IPPrefixLen": 24,
                    }
                }
            },
            "Mounts": [],
        }

    def inspect(self) -> dict[str, Any]:
        """`GET /containers/ID/json`, the fields a log reader looks at."""
        return {
            "Id": self.id,
            "Name": self.name,
            "Created": _rfc3339(int(self.started * 1e9)),
            "State": {
                "Status": "running",
                "Running": not self.log.closed,
                "StartedAt": _rfc3339(int(self.started * 1e9)),
                "FinishedAt": "0001-01-01T00:00:00Z",
            },
            "Config": {"Tty": False, "Image": self.image, "Labels": self.labels},
            "HostConfig": {"NetworkMode": self.network},
        }


def _rfc3339(ns: int) -> str:
    """Docker's timestamps: RFC 3339, nanoseconds, UTC."""
    seconds, nanos = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def _since_ns(value: str) -> int:
    """`since` as the client sends it: Unix seconds, maybe with a fraction."""
    seconds, _, fraction = value.partition(".")
    return int(seconds or 0) * 10**9 + int((fraction + "000000000")[:9] or 0)


def frame(stream: int, payload: bytes) -> bytes:
    """One chunk of the engine's multiplexed stream."""
    return struct.pack(">BxxxI", stream, len(payload)) + payload


class DockerApi:
    """The engine's view: containers on one network, by id."""

    def __init__(self, network: str) -> None:
        self.network = network
        self.network_id = "f" * 64
        self.containers: dict[str, Container] = {}
        self.stop = threading.Event()
        self.requests: list[str] = []

    def add(self, container: Container) -> Container:
        self.containers[container.id] = container
        return container

    def matches(self, container: Container, filters: dict[str, Any]) -> bool:
        """The engine's `filters` for the filter names a discovery config may use."""
        for name, wanted in filters.items():
            values = list(wanted) if isinstance(wanted, dict | list) else [wanted]
            if name == "label":
                ok = any(
                    container.labels.get(key) == value if sep else key in container.labels
                    for key, sep, value in (v.partition("=") for v in values)
                )
            elif name == "name":
                ok = any(re.search(v, container.name) for v in values)
            elif name == "id":
                ok = any(container.id.startswith(v) for v in values)
            elif name == "status":
                ok = "running" in values
            else:
                raise ValueError(f"invalid filter '{name}'")
            if not ok:
                return False
        return True

    def networks(self) -> list[dict[str, Any]]:
        project = next(iter(self.containers.values())).labels.get("com.docker.compose.project", "")
        return [
            {
                "Name": self.network,
                "Id": self.network_id,
                "Scope": "local",
                "Driver": "bridge",
                "Internal": False,
                "Ingress": False,
                "Labels": {
                    "com.docker.compose.network": "monitoring",
                    "com.docker.compose.project": project,
                },
            }
        ]


def _handler(api: DockerApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "Docker/28.5.2 (dice-sandbox stand-in)"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def address_string(self) -> str:  # unix sockets have no client address
            return "unix"

        def _json(self, body: Any, status: int = 200) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, message: str) -> None:
            self._json({"message": message}, status)

        def do_HEAD(self) -> None:
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:
            parts = urlsplit(self.path)
            path = re.sub(r"^/v\d+\.\d+", "", parts.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            api.requests.append(f"GET {path}")
            if path == "/_ping":
                self.send_response(200)
                self.send_header("Api-Version", API_VERSION)
                self.send_header("Ostype", "linux")
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", "2")
                self.end_headers()
                if not head:
                    self.wfile.write(b"OK")
                return
            if path == "/version":
                self._json({"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux"})
                return
            if path == "/containers/json":
                try:
                    filters = json.loads(query.get("filters") or "{}")
                    chosen = [c for c in api.containers.values() if api.matches(c, filters)]
                except ValueError as error:
                    self._error(400, str(error))
                    return
                self._json([c.summary(api.network_id) for c in chosen])
                return
            if path == "/networks":
                self._json(api.networks())
                return
            match = re.fullmatch(r"/containers/([^/]+)/(json|logs)", path)
            container = self._find(match.group(1)) if match else None
            if match is None:
                self._error(404, f"page not found: {path}")
            elif container is None:
                self._error(404, f"No such container: {match.group(1)}")
            elif match.group(2) == "json":
                self._json(container.inspect())
            else:
                self._logs(container, query)

        def _find(self, key: str) -> Container | None:
            for container in api.containers.values():
                if container.id.startswith(key) or container.name.lstrip("/") == key.lstrip("/"):
                    return container
            return None

        def _logs(self, container: Container, query: dict[str, str]) -> None:
            streams = {
                s
                for s, flag in ((STDOUT, "stdout"), (STDERR, "stderr"))
                if query.get(flag) in ("1", "true")
            }
            if not streams:
                self._error(400, "Bad parameters: you must choose at least one stream")
                return
            since = _since_ns(query.get("since", "0"))
            timestamps = query.get("timestamps") in ("1", "true")
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            follow = query.get("follow") in ("1", "true")
            entries = (
                container.log.follow(since, streams, api.stop)
                if follow
                else iter(container.log.written(since, streams))
            )
            try:
                for at_ns, stream, line in entries:
                    text = (_rfc3339(at_ns).encode() + b" " + line) if timestamps else line
                    self.wfile.write(frame(stream, text if text.endswith(b"\n") else text + b"\n"))
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def serving_docker_api(api: DockerApi, socket_path: Path) -> Iterator[DockerApi]:
    """Serve `api` on the unix socket `socket_path` until the block ends."""
    socket_path.unlink(missing_ok=True)
    server = _UnixServer(str(socket_path), _handler(api))
    thread = threading.Thread(target=server.serve_forever, name="docker-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.stop.set()
        for container in api.containers.values():
            container.log.close()
        server.shutdown()
        server.server_close()
        socket_path.unlink(missing_ok=True)
