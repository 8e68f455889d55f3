"""What the frontend's tests share: its metrics and log lines as a scraper and a log
pipeline read them, a stand-in dice-roller that misbehaves on demand, and the frontend
run in-process with its spans in memory.

The stand-in is a real HTTP server on 127.0.0.1 (`tests.support.http_server`), so the
frontend's real client meets real sockets: a real timeout, a real refused connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

import httpx
from frontend.app import create_app
from frontend.settings import Settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.http_server import LocalHTTPServer, QuietHandler

__all__ = [
    "OPENMETRICS",
    "Behaviour",
    "InProcessFrontend",
    "Metrics",
    "RecordedRequest",
    "StandInDiceRoller",
    "hex_id",
    "in_process_frontend",
    "log_records",
    "scrape",
]

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
"""What Prometheus asks for: the only exposition format that carries exemplars."""


# --- metrics and logs, as the scraper and the log pipeline see them -----------------------


@dataclass(frozen=True)
class Metrics:
    """One scrape of `/metrics` in OpenMetrics."""

    samples: list[Sample]

    def find(self, name: str, **labels: str) -> Sample:
        """The one sample `name` whose labels include `labels`; fails if not exactly one."""
        found = [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{len(found)} samples {name}{labels}"
        return found[0]

    def value(self, name: str, **labels: str) -> float:
        return float(self.find(name, **labels).value)

    def count(self, name: str, **labels: str) -> float:
        """A counter's value, 0 while its series does not exist yet (none was counted)."""
        found = [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, f"{len(found)} samples {name}{labels}"
        return float(found[0].value) if found else 0.0

    def exemplar_trace_ids(self, name: str, **labels: str) -> set[str]:
        """The trace ids of the exemplars on every sample `name` with `labels`."""
        return {
            s.exemplar.labels["trace_id"]
            for s in self.samples
            if s.name == name
            and all(s.labels.get(k) == v for k, v in labels.items())
            and s.exemplar is not None
        }


def scrape(base_url: str) -> Metrics:
    response = httpx.get(base_url + "/metrics", headers={"Accept": OPENMETRICS}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = text_string_to_metric_families(response.text)
    return Metrics([sample for family in families for sample in family.samples])


def log_records(output: str) -> list[dict[str, Any]]:
    """Every line the process printed, parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def hex_id(value: int, digits: int) -> str:
    """A span or trace id as logs, headers and exemplars write it: lower-case hex."""
    return format(value, f"0{digits}x")


# --- a stand-in dice-roller ---------------------------------------------------------------

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


# --- the frontend in-process, its spans in memory -------------------------------------------


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
