"""What stands in for Tempo 3.0.3 in the native stack, while its Go module cannot be had.

The Go module proxy refuses every version of github.com/grafana/tempo here ("403
Forbidden: This module version is not available"), so Tempo cannot be built like the
other components. This process takes its place at the same address and ports, so
Alloy's exporter (`tempo:4317`) and everything that reads traces (`tempo:3200`) are
unchanged:

- OTLP in: gRPC on 4317 (what Alloy's `otelcol.exporter.otlp` sends) and HTTP
  `POST /v1/traces` on 4318, as Tempo's distributor receives them;
- `GET /api/v2/traces/ID`: `{"trace": {"resourceSpans": [...]}}` in protobuf JSON
  (camelCase, base64 ids, enum names), and for a trace it does not have yet the
  answer the real Tempo 3.0.3 gives on our config: HTTP 200 `{"trace": {}, "metrics": {}}`;
- `GET /api/search?q=...` for the one TraceQL shape the checks use,
  `{ resource.service.name = "NAME" }`; any other query is a 400 saying so;
- `GET /ready`, `GET /api/echo`.

It keeps spans in memory and computes no span metrics: the metrics generator's
series (the dashboard's "Trace Count") need the real Tempo.

    python -m nativestack.tempo_standin  # gRPC 4317, OTLP HTTP 4318, API 3200
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["TraceStore", "main"]

NOT_FOUND_YET: dict[str, Any] = {"trace": {}, "metrics": {}}
"""Tempo 3.0.3's answer to /api/v2/traces/ID for a trace it has not ingested."""
SEARCH = re.compile(r'\{\s*resource\.service\.name\s*=\s*"([^"]*)"\s*\}')


class TraceStore:
    """Received spans, grouped by trace id, each with its resource and scope."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[bytes, list[trace_pb2.ResourceSpans]] = {}

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        piece = trace_pb2.ResourceSpans(
                            resource=resource_spans.resource,
                            schema_url=resource_spans.schema_url,
                            scope_spans=[
                                trace_pb2.ScopeSpans(scope=scope_spans.scope, spans=[span])
                            ],
                        )
                        self._traces.setdefault(span.trace_id, []).append(piece)

    def trace(self, trace_id: bytes) -> dict[str, Any]:
        with self._lock:
            pieces = list(self._traces.get(trace_id, []))
        if not pieces:
            return NOT_FOUND_YET
        return {"trace": {"resourceSpans": [MessageToDict(piece) for piece in pieces]}}

    def search(self, service: str, start_s: int, end_s: int, limit: int) -> dict[str, Any]:
        found = []
        with self._lock:
            traces = list(self._traces.items())
        for trace_id, pieces in traces:
            services = {
                attribute.value.string_value
                for piece in pieces
                for attribute in piece.resource.attributes
                if attribute.key == "service.name"
            }
            spans = [span for piece in pieces for span in piece.scope_spans[0].spans]
            start = min(span.start_time_unix_nano for span in spans)
            end = max(span.end_time_unix_nano for span in spans)
            if service in services and start_s * 10**9 <= start <= end_s * 10**9:
                root = min(spans, key=lambda span: span.start_time_unix_nano)
                found.append(
                    {
                        "traceID": trace_id.hex(),
                        "rootServiceName": service,
                        "rootTraceName": root.name,
                        "startTimeUnixNano": str(start),
                        "durationMs": (end - start) // 10**6,
                    }
                )
        found.sort(key=lambda t: int(str(t["startTimeUnixNano"])), reverse=True)
        answer: dict[str, Any] = {"metrics": {"inspectedTraces": len(traces)}}
        if found:  # protobuf JSON leaves an empty list out
            answer["traces"] = found[:limit]
        return answer


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.store.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(store: TraceStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, text: str) -> None:
            self._send(status, text.encode(), "text/plain; charset=utf-8")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/v1/traces":
                self._text(404, "404 page not found\n")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = trace_service_pb2.ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception as error:  # protobuf's DecodeError
                self._text(400, f"could not decode OTLP protobuf: {error}")
                return
            store.add(request)
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self._send(200, payload, "application/x-protobuf")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/ready":
                self._text(200, "ready\n")
            elif parts.path == "/api/echo":
                self._text(200, "echo")
            elif match := re.fullmatch(r"/api/v2/traces/([0-9a-fA-F]{1,32})", parts.path):
                trace_id = bytes.fromhex(match.group(1).rjust(32, "0"))
                self._send(200, json.dumps(store.trace(trace_id)).encode(), "application/json")
            elif parts.path.startswith("/api/v2/traces/"):
                self._text(400, "invalid trace id\n")
            elif parts.path == "/api/search":
                query = SEARCH.fullmatch(params.get("q", "").strip())
                if query is None:
                    self._text(
                        400, 'this Tempo stand-in only searches { resource.service.name = "..." }'
                    )
                    return
                found = store.search(
                    query.group(1),
                    int(params.get("start", 0)),
                    int(params.get("end", 2**33)),
                    int(params.get("limit", 20)),
                )
                self._send(200, json.dumps(found).encode(), "application/json")
            else:
                self._text(404, "404 page not found\n")

    return Handler


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tempo-standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", default="0.0.0.0:4317", help="OTLP gRPC listen address")
    parser.add_argument("--otlp-http", default="0.0.0.0:4318", help="OTLP HTTP listen address")
    parser.add_argument("--http", default="0.0.0.0:3200", help="query API listen address")
    args = parser.parse_args(argv)
    store = TraceStore()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # generated, untyped
    register(_TraceService(store), grpc_server)  # type: ignore[no-untyped-call]
    grpc_server.add_insecure_port(args.grpc)
    http_servers = [
        ThreadingHTTPServer(_address(address), _http_handler(store))
        for address in (args.http, args.otlp_http)
    ]
    grpc_server.start()
    for server in http_servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(
        f"tempo stand-in: OTLP gRPC {args.grpc}, OTLP HTTP {args.otlp_http}, API {args.http}",
        flush=True,
    )
    stopped.wait()
    grpc_server.stop(grace=1)
    for server in http_servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
