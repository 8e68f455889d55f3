"""A lean OTLP/HTTP receiver for the benches: counts spans, notes when each trace arrived.

It plays the collector. Unlike the test receiver (tests/support/otlp.py) it builds
no Python object per span, since it shares the machine's two cores with the service
under load and must cost as little as possible: the protobuf is parsed by
opentelemetry-proto's C parser and only the trace ids are read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from stackclient import wait_until

__all__ = ["BenchReceiver", "bench_receiver"]

_REPLY = ExportTraceServiceResponse().SerializeToString()


class BenchReceiver:
    """Accepts `POST /v1/traces`; `spans` counts what arrived, `arrivals` says when."""

    def __init__(self) -> None:
        self.spans = 0
        self.exports = 0
        self.arrivals: dict[str, float] = {}  # trace id (hex) -> wall-clock arrival time
        self.track_arrivals = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def service_env(self, max_delay_seconds: float) -> dict[str, str]:
        """The environment of a service whose roll delay is `max_delay_seconds` and whose
        spans all come here over OTLP."""
        return {
            "DICE_MAX_DELAY_SECONDS": f"{max_delay_seconds:g}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def span_count(self) -> int:
        with self._lock:
            return self.spans

    def wait_for_spans(self, count: int, timeout: float) -> int:
        """Wait until `count` spans have arrived, or `timeout` seconds; the count then."""
        wait_until(lambda: self.span_count() >= count or None, timeout, interval=0.02)
        return self.span_count()

    def arrival_of(self, trace_id: str) -> float | None:
        with self._lock:
            return self.arrivals.get(trace_id)

    def _record(self, body: bytes, arrived: float) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        count = 0
        trace_ids: list[str] = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                count += len(scope_spans.spans)
                if self.track_arrivals:
                    trace_ids.extend(span.trace_id.hex() for span in scope_spans.spans)
        with self._lock:
            self.spans += count
            self.exports += 1
            for trace_id in trace_ids:
                self.arrivals.setdefault(trace_id, arrived)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver._record(body, arrived)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(_REPLY)))
                self.end_headers()
                self.wfile.write(_REPLY)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def bench_receiver() -> Iterator[BenchReceiver]:
    receiver = BenchReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
