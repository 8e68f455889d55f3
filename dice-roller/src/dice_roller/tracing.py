"""Traces: the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

The server span of each request comes from FastAPI's built-in OpenTelemetry support
(`fastapi_telemetry`), which costs less per request than OpenTelemetry's generic ASGI
middleware (see docs/performance.md); `dice_roller.middleware` names the trace in a
`traceresponse` header of every answer that has one: all but `/metrics`, which makes
no span.

The SDK reads the endpoint, protocol, headers, timeouts and batch sizes itself
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_BSP_*`, ...). This module only picks the
exporter named by `OTEL_TRACES_EXPORTER` and sets the defaults this service wants to
differ from the SDK's: the service name; a batch sent every second rather than every
five, so a trace shows up in Tempo about as soon as its logs show up in Loki; and an
export that gives up after 3 s rather than 10, so a missing collector cannot hold up
shutdown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from . import SERVICE_NAME as DEFAULT_SERVICE_NAME
from . import __version__
from .metrics import SCRAPE_PATH
from .settings import traces_exporter_names

__all__ = [
    "NO_TELEMETRY",
    "create_tracer_provider",
    "fastapi_telemetry",
]

DEFAULT_SCHEDULE_DELAY_MILLIS = 1000
DEFAULT_EXPORT_TIMEOUT_SECONDS = 3.0
"""The SDK waits up to 10 s per export; with no collector, 3 s keeps shutdown quick."""


def create_tracer_provider(environ: Mapping[str, str] | None = None) -> TracerProvider:
    """A tracer provider exporting the way `OTEL_TRACES_EXPORTER` says (otlp by default)."""
    env = os.environ if environ is None else environ
    attributes = {SERVICE_VERSION: __version__}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    # Resource.create() also merges OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(resource=Resource.create(attributes))

    schedule_delay = None if "OTEL_BSP_SCHEDULE_DELAY" in env else DEFAULT_SCHEDULE_DELAY_MILLIS
    for name in traces_exporter_names(env):
        exporter = _create_exporter(name, env)
        if exporter is not None:
            provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay)
            )
    return provider


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's OpenTelemetry support switched off, for a build without traces: even
finding it unconfigured costs something on every request."""


def fastapi_telemetry(provider: TracerProvider | None) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support, set to make one server span per request.

    With no provider (a build without traces), it is off altogether: `NO_TELEMETRY`.

    The span is named after the route (`GET /roll`) and carries the stable HTTP
    semantic conventions (`http.request.method`, `http.route`, `url.path`,
    `http.response.status_code`, ...). Its metrics and logs stay off: Prometheus counts
    the requests and the JSON lines tell the story. So do the per-operation child spans
    (dependencies, endpoint, serialization), which would triple the spans of a roll.
    `/metrics` makes no span: a scrape every 5 s is not a request worth tracing.
    """
    if provider is None:
        return NO_TELEMETRY
    return {
        "tracer_provider": provider,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": _is_metrics_scrape,
    }


def _is_metrics_scrape(scope: MutableMapping[str, Any]) -> bool:
    return bool(scope.get("path") == SCRAPE_PATH)


def _create_exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        # One compact JSON object per line, like every other line on stdout.
        return ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    # Imported here so `OTEL_TRACES_EXPORTER=none` never loads the HTTP stack.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    has_timeout = "OTEL_EXPORTER_OTLP_TIMEOUT" in env or "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" in env
    return OTLPSpanExporter(timeout=None if has_timeout else DEFAULT_EXPORT_TIMEOUT_SECONDS)
