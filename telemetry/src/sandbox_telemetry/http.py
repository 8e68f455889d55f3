"""Per request, for every route: HTTP metrics with exemplars, a `traceresponse`
header, and one log line; and the `/metrics` endpoint that Prometheus scrapes.

Why our own middleware rather than prometheus-fastapi-instrumentator: it cannot
attach exemplars, and without them a point on a latency graph leads nowhere. Our
names and labels follow its defaults (`http_requests_total{handler, method, status}`
with `status="2xx"`, `http_request_duration_seconds{handler, method}`), with buckets
fine enough for a delay of up to a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    make_asgi_app,
)
from starlette.datastructures import MutableHeaders
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import cut_text, handling_cancellation
from .tracing import current_exemplar, current_ids

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_FIELD_CHARS",
    "SCRAPE_PATH",
    "RequestTelemetry",
    "instrument",
    "metrics_route",
    "new_registry",
    "request_fields",
]

SCRAPE_PATH = "/metrics"
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025,
    *(round(0.05 * step, 2) for step in range(1, 21)),  # every 50 ms up to 1 s
    1.5, 2.5, 5.0,
)  # fmt: skip
"""Seconds. A 0-1 s delay needs fine buckets inside that second for p50, p95 and p99
to mean something; the instrumentator's default (0.1, 0.5, 1) cannot resolve them."""
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""Any other method token is labelled `_OTHER` (OpenTelemetry's word): uvicorn lets
dozens through, and each would otherwise mint series of its own."""
_STARTED, _LOGGED = "telemetry.started", "telemetry.logged"
"""What the middleware and a route's own log line tell each other, in the ASGI scope."""
MAX_FIELD_CHARS = 1024
"""The longest path or query a log line repeats: a client chooses them, up to 64 KiB."""


def new_registry() -> CollectorRegistry:
    """A registry of the service's own, with the process's CPU, memory and GC families.

    One per app rather than the global one: tests build several apps in one process.
    """
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def instrument(app: FastAPI, registry: CollectorRegistry, logger: logging.Logger) -> None:
    """Add the per-request telemetry to `app` and serve `registry` at `/metrics`."""
    app.add_middleware(RequestTelemetry, registry=registry, logger=logger)
    app.router.routes.append(metrics_route(registry))


def metrics_route(registry: CollectorRegistry) -> Route:
    """`/metrics`, served by prometheus_client's own ASGI app: it answers Prometheus in
    OpenMetrics (the only format with exemplars), `curl` in the classic text, and
    compresses and filters (`name[]`) when asked."""
    return Route(SCRAPE_PATH, _AsgiEndpoint(make_asgi_app(registry)), include_in_schema=False)


class _AsgiEndpoint:
    """An ASGI app as a route's endpoint: Starlette hands a plain function a Request,
    and any other callable the raw ASGI call, which `make_asgi_app`'s app needs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def request_fields(request: Request, status: int) -> dict[str, Any]:
    """How the current request was asked and answered, for a route's own log line.

    A route that logs its outcome ("Roll completed") puts these in that line, which
    then is the request's one line: `RequestTelemetry` writes none of its own.
    """
    request.scope[_LOGGED] = True
    return _exchange(request.scope, status, time.perf_counter() - request.scope[_STARTED])


def _exchange(scope: Scope, status: int, seconds: float) -> dict[str, Any]:
    route = scope.get("route")
    fields: dict[str, Any] = {
        "method": scope["method"],
        "route": getattr(route, "path", None),
        "path": cut_text(scope["path"], MAX_FIELD_CHARS),
    }
    if scope["query_string"]:
        fields["query"] = cut_text(scope["query_string"].decode("latin-1"), MAX_FIELD_CHARS)
    fields["status"] = status
    fields["duration_seconds"] = round(seconds, 6)
    if scope.get("client"):
        fields["client"] = cut_text("{}:{}".format(*scope["client"]), MAX_FIELD_CHARS)
    return fields


class RequestTelemetry:
    """Measures every request but scrapes, names its trace in a `traceresponse` header,
    and makes sure it has one log line.

    The server span is FastAPI's, opened outside this middleware, so it is current
    here. `handler` is the route template the router chose, or "none" when no route
    took the request (a 404, a redirect): no path can become a label. An answer that
    never started (an exception) counts, and is logged, as a 500.
    """

    def __init__(
        self, app: ASGIApp, *, registry: CollectorRegistry, logger: logging.Logger
    ) -> None:
        self.app = app
        self.log = logger
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status class.",
            ("handler", "method", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("handler", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_STARTED] = time.perf_counter()
        ids = current_ids()
        status = 500

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if ids is not None:  # W3C Trace Context Level 2: the trace that answered
                    headers = MutableHeaders(scope=message)
                    headers["traceresponse"] = f"00-{ids.trace_id}-{ids.span_id}-{ids.flags}"
                    headers["access-control-expose-headers"] = "traceresponse"
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            seconds = time.perf_counter() - scope[_STARTED]
            if scope["path"] != SCRAPE_PATH:
                self._measure(scope, status, seconds)
            if not scope.get(_LOGGED):
                message = "Request failed" if status >= 500 else "Request completed"
                level = logging.ERROR if status >= 500 else logging.INFO
                if handling_cancellation():  # the shutdown grace is over; uvicorn answers 500
                    message, level = "Request cancelled at shutdown", logging.WARNING
                self.log.log(level, message, extra=_exchange(scope, status, seconds))

    def _measure(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", "none")
        method = scope["method"] if scope["method"] in HTTP_METHODS else "_OTHER"
        exemplar = current_exemplar()
        self.requests.labels(route, method, f"{status // 100}xx").inc(exemplar=exemplar)
        self.duration.labels(route, method).observe(seconds, exemplar=exemplar)
