"""The browser's spans, relayed to the collector.

The page's OpenTelemetry SDK (static/tracing.js, bundled from web/) exports its spans
over OTLP/HTTP to `POST /v1/traces` on the page's own origin, and the frontend passes
them on unchanged. Same origin means no CORS to configure, and the collector need
not be reachable from the browser at all. What a browser may send is bounded: one
export of at most `MAX_EXPORT_BYTES`, in one of OTLP's two encodings.
"""

from __future__ import annotations

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse

__all__ = ["EXPORT_PATH", "MAX_EXPORT_BYTES", "BrowserSpans"]

EXPORT_PATH = "/v1/traces"
MAX_EXPORT_BYTES = 1024 * 1024
"""A page's batch is a few KiB; a MiB leaves room and still bounds the memory it takes."""
OTLP_CONTENT_TYPES = ("application/json", "application/x-protobuf")
RELAY_TIMEOUT_SECONDS = 3.0


class BrowserSpans:
    """Relays OTLP exports to `collector_url`, with a client of its own: these calls are
    not traced, or every export would make a trace of its own, forever."""

    def __init__(self, collector_url: str, transport: httpx.AsyncBaseTransport | None = None):
        self.collector_url = collector_url
        self.client = httpx.AsyncClient(timeout=RELAY_TIMEOUT_SECONDS, transport=transport)

    async def relay(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in OTLP_CONTENT_TYPES:
            allowed = " or ".join(OTLP_CONTENT_TYPES)
            return _problem(415, f"An OTLP export is sent as {allowed}.")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_EXPORT_BYTES:
                return _problem(413, f"An export is at most {MAX_EXPORT_BYTES} bytes.")
        try:
            answer = await self.client.post(
                self.collector_url, content=bytes(body), headers={"content-type": content_type}
            )
        except httpx.HTTPError as error:
            return _problem(502, f"The collector is unreachable ({type(error).__name__}).")
        return Response(
            answer.content,
            answer.status_code,
            media_type=answer.headers.get("content-type", content_type),
        )

    async def close(self) -> None:
        await self.client.aclose()


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
