"""A small OTLP/HTTP trace receiver, for tests that need to see the spans really sent.

No collector can run here, so this plays one: it decodes the protobuf payload with
opentelemetry-proto, exactly as a collector would, and can also misbehave (answer
503, or accept and never answer) to test the service against a sick collector.
It reads OTLP/JSON too (what a browser's exporter sends), whose ids are hex strings:
protobuf's `json_format` would read them as base64, so they are decoded here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stackclient import wait_until

from .http_server import LocalHTTPServer, QuietHandler, serving
from .processes import eventually

__all__ = ["OtlpReceiver", "ReceivedSpan", "only", "otlp_receiver", "spans_of"]

Behaviour = Literal["accept", "unavailable", "hang"]


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    name: str
    kind: int
    status_code: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    parent_span_id: str = ""
    """The parent's span id, hex; empty for a root span."""
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Each event's name and attributes, in order (protobuf payloads only)."""

    @property
    def duration_seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class OtlpReceiver(LocalHTTPServer):
    """Collects the spans posted to `/v1/traces`; `behaviour` decides how it answers."""

    def __init__(self, behaviour: Behaviour = "accept") -> None:
        self.behaviour = behaviour
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""
        return self.url

    def service_env(self, **extra: str) -> dict[str, str]:
        """The environment of a service whose spans all come here, plus `extra`."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            **extra,
        }

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        def enough() -> bool | None:
            with self._lock:
                return len(self.spans) >= count or None

        wait_until(enough, timeout, interval=0.05)
        with self._lock:
            return list(self.spans)

    def _record(self, body: bytes, content_type: str = "application/x-protobuf") -> None:
        if content_type.split(";")[0].strip().lower() == "application/json":
            received = _spans_from_json(json.loads(body))
            with self._lock:
                self.spans.extend(received)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                            parent_span_id=span.parent_span_id.hex(),
                            events=tuple(
                                (e.name, {a.key: _value(a.value) for a in e.attributes})
                                for e in span.events
                            ),
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests += 1
                if receiver.behaviour == "hang":
                    receiver.release.wait(60)
                    return
                if receiver.behaviour == "unavailable":
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver._record(body, self.headers.get("Content-Type", ""))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler


def _json_value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue; 64-bit integers come as strings there."""
    if "intValue" in value:
        return int(value["intValue"])
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    return None


def _json_attributes(attributes: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _json_value(a.get("value", {})) for a in attributes or []}


def _spans_from_json(request: dict[str, Any]) -> list[ReceivedSpan]:
    """The spans of an OTLP/JSON export request (ids in hex, as the spec says)."""
    received = []
    for resource_spans in request.get("resourceSpans", []):
        resource = _json_attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                received.append(
                    ReceivedSpan(
                        trace_id=span["traceId"].lower(),
                        span_id=span["spanId"].lower(),
                        name=span["name"],
                        kind=int(span.get("kind", 0)),
                        status_code=int(span.get("status", {}).get("code", 0)),
                        start_ns=int(span["startTimeUnixNano"]),
                        end_ns=int(span["endTimeUnixNano"]),
                        attributes=_json_attributes(span.get("attributes")),
                        resource=resource,
                        parent_span_id=(span.get("parentSpanId") or "").lower(),
                    )
                )
    return received


@contextmanager
def otlp_receiver(behaviour: Behaviour = "accept") -> Iterator[OtlpReceiver]:
    with serving(OtlpReceiver(behaviour)) as receiver:
        yield receiver


def spans_of(receiver: OtlpReceiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    """The spans of `trace_id` once `count` of them have arrived."""

    def arrived() -> list[ReceivedSpan] | None:
        spans = [s for s in list(receiver.spans) if s.trace_id == trace_id]
        return spans if len(spans) >= count else None

    return eventually(arrived, f"{count} spans of trace {trace_id} arrived", timeout=15)


def only(spans: list[ReceivedSpan], service: str, kind: int) -> ReceivedSpan:
    """The one span of `service` of this kind among `spans`."""
    found = [s for s in spans if s.resource.get("service.name") == service and s.kind == kind]
    assert len(found) == 1, (service, kind, spans)
    return found[0]
