"""`POST /v1/traces`: the browser's spans, relayed to the collector unchanged, within
bounds, and without a trace of the relay's own.

The frontend runs in-process; the collector is a stand-in on a real socket that keeps
what it was sent (or OpenTelemetry's own receiver, `tests.support.otlp`), so the test
compares the bytes that arrive with the bytes the browser sent.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from frontend.browser import MAX_EXPORT_BYTES
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.support.frontend import InProcessFrontend, in_process_frontend
from tests.support.http_server import LocalHTTPServer, QuietHandler, serving
from tests.support.otlp import otlp_receiver
from tests.support.tools import free_port

PROTOBUF, JSON = "application/x-protobuf", "application/json"
TRACE_ID, SPAN_ID = secrets.token_bytes(16), secrets.token_bytes(8)


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: bytes


class Collector(LocalHTTPServer):
    """A collector that keeps every export it gets and answers `status` with `answer`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()
        super().__init__(self._handler_class())

    def reset(self) -> None:
        with self._lock:
            self.status = 200
            self.answer = b"\x0a\x00"  # bytes of the collector's own, to be passed back
            self.answer_type = PROTOBUF
            self.received: list[Received] = []

    def exports(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                export = Received(self.path, self.headers.get("Content-Type", ""), body)
                with collector._lock:
                    collector.received.append(export)
                self.send_response(collector.status)
                self.send_header("Content-Type", collector.answer_type)
                self.send_header("Content-Length", str(len(collector.answer)))
                self.end_headers()
                self.wfile.write(collector.answer)

        return Handler


@pytest.fixture(scope="module")
def running_collector() -> Iterator[Collector]:
    with serving(Collector()) as collector:
        yield collector


@pytest.fixture
def collector(running_collector: Collector) -> Collector:
    """The module's collector, as new: nothing received, answering 200."""
    running_collector.reset()
    return running_collector


@pytest.fixture(autouse=True)
def no_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says where the collector is; none inherits it from the environment."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)


def a_browser_export() -> bytes:
    """An OTLP/protobuf export as the page's SDK sends it: one fetch span."""
    span = Span(trace_id=TRACE_ID, span_id=SPAN_ID, name="HTTP GET", kind=Span.SPAN_KIND_CLIENT)
    service = KeyValue(key="service.name", value=AnyValue(string_value="frontend-web"))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[service]),
                scope_spans=[ScopeSpans(spans=[span])],
            )
        ]
    )
    return request.SerializeToString()


JSON_EXPORT = (
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE_ID.hex().encode() + b'",'
    b'"spanId":"' + SPAN_ID.hex().encode() + b'","name":"documentLoad",'
    b'"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}'
)


def relay(
    *posts: tuple[str | None, bytes | AsyncIterable[bytes]],
) -> tuple[list[httpx.Response], InProcessFrontend]:
    """POST each (content type, body) to the frontend's `/v1/traces`; the answers, and
    the frontend (whose spans say what it traced)."""

    async def scenario() -> tuple[list[httpx.Response], InProcessFrontend]:
        async with in_process_frontend() as frontend:
            answers = []
            for content_type, body in posts:
                headers = {"content-type": content_type} if content_type else {}
                answers.append(
                    await frontend.client.post("/v1/traces", content=body, headers=headers)
                )
            return answers, frontend

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("content_type", "body"),
    [(PROTOBUF, a_browser_export()), (JSON, JSON_EXPORT)],
    ids=["protobuf", "json"],
)
def test_an_export_is_forwarded_unchanged_and_the_collectors_answer_passed_back(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, content_type: str, body: bytes
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url + "/")
    [answer], _ = relay((content_type, body))
    assert [(e.path, e.content_type, e.body) for e in collector.exports()] == [
        ("/v1/traces", content_type, body)
    ]
    assert answer.status_code == 200
    assert answer.content == collector.answer
    assert answer.headers["content-type"] == PROTOBUF


def test_the_traces_endpoint_is_used_as_it_is_and_wins(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url + "/otlp/spans")
    [answer], _ = relay((PROTOBUF, a_browser_export()))
    assert answer.status_code == 200
    assert [e.path for e in collector.exports()] == ["/otlp/spans"]


def test_the_collectors_refusal_is_passed_back(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser's exporter decides whether to retry, so it must see the collector's
    own status (a 503 is worth a retry, a 400 is not)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    collector.status, collector.answer, collector.answer_type = 503, b'{"code":14}', JSON
    [answer], _ = relay((JSON, JSON_EXPORT))
    assert answer.status_code == 503
    assert answer.content == b'{"code":14}'
    assert answer.headers["content-type"] == JSON


def test_a_real_receiver_decodes_the_relayed_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        answers, _ = relay((PROTOBUF, a_browser_export()), (JSON, JSON_EXPORT))
        spans = receiver.wait_for_spans(2)
    assert [a.status_code for a in answers] == [200, 200]
    assert {(s.trace_id, s.span_id, s.name) for s in spans} == {
        (TRACE_ID.hex(), SPAN_ID.hex(), "HTTP GET"),
        (TRACE_ID.hex(), SPAN_ID.hex(), "documentLoad"),
    }


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml", "multipart/x"])
def test_other_content_types_are_a_415_and_not_forwarded(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, content_type: str | None
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    [answer], _ = relay((content_type, a_browser_export()))
    assert answer.status_code == 415
    assert PROTOBUF in answer.json()["detail"] and JSON in answer.json()["detail"]
    assert collector.exports() == []


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterable[bytes]:
    """`total` bytes in chunks, sent without a Content-Length (chunked)."""
    while total > 0:
        yield b"\x01" * min(size, total)
        total -= size


@pytest.mark.parametrize("streamed", [False, True], ids=["with-length", "chunked"])
def test_an_export_past_one_mib_is_a_413_and_not_forwarded(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    size = MAX_EXPORT_BYTES + 1
    body = chunks(size) if streamed else b"\x01" * size
    [answer], _ = relay((PROTOBUF, body))
    assert answer.status_code == 413
    assert str(MAX_EXPORT_BYTES) in answer.json()["detail"]
    assert collector.exports() == []


def test_an_export_of_exactly_one_mib_is_forwarded(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_EXPORT_BYTES == 1024 * 1024
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    [answer], _ = relay((PROTOBUF, chunks(MAX_EXPORT_BYTES)))
    assert answer.status_code == 200
    [export] = collector.exports()
    assert export.body == b"\x01" * MAX_EXPORT_BYTES


def test_an_unreachable_collector_is_a_502(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    [answer], _ = relay((PROTOBUF, a_browser_export()))
    assert answer.status_code == 502
    assert "collector is unreachable" in answer.json()["detail"]


def test_the_relay_makes_no_span(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A span for each export would be exported in turn, relayed, traced again: a trace
    per export, forever. Neither the relay's request nor its call to the collector is
    traced, however the relay answers."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    answers, frontend = relay(
        (PROTOBUF, a_browser_export()), (JSON, JSON_EXPORT), ("text/plain", b"x")
    )
    assert [a.status_code for a in answers] == [200, 200, 415]
    assert len(collector.exports()) == 2
    assert frontend.spans() == []
    assert not [a for a in answers if "traceresponse" in a.headers]
