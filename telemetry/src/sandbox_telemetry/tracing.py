"""Traces: the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

The SDK reads the endpoint, protocol, headers, timeouts and batch sizes itself
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_BSP_*`, ...) and `OTEL_SDK_DISABLED=true` turns
it off. Here we only pick the exporters `OTEL_TRACES_EXPORTER` names and change two
defaults: a batch leaves every second rather than every five, so a trace reaches Tempo
about as soon as its logs reach Loki; and an export gives up after 3 s rather than 10,
so a missing collector cannot hold up shutdown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = [
    "DEFAULT_EXPORT_TIMEOUT_SECONDS",
    "DEFAULT_SCHEDULE_DELAY_MILLIS",
    "TRACES_EXPORTERS",
    "TraceIds",
    "create_tracer_provider",
    "current_exemplar",
    "current_ids",
    "otel_problems",
    "server_spans",
    "traces_exporter_names",
]

TRACES_EXPORTERS = ("otlp", "console", "none")
"""The values of `OTEL_TRACES_EXPORTER` a service understands."""
DEFAULT_SCHEDULE_DELAY_MILLIS = 1000
DEFAULT_EXPORT_TIMEOUT_SECONDS = 3.0


def traces_exporter_names(env: Mapping[str, str]) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (a comma-separated list), otlp by default."""
    return [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]


OTLP_PROTOCOLS = ("http/protobuf",)
"""Services ship the OTLP/HTTP exporter only, as the stack expects (Alloy on :4318)."""


def otel_problems(env: Mapping[str, str]) -> list[str]:
    """What is wrong with the `OTEL_*` variables a service gives its own meaning to,
    one line each, so a typo stops the service at start rather than losing its traces."""
    problems = []
    for exporter in traces_exporter_names(env):
        if exporter not in TRACES_EXPORTERS:
            allowed = ", ".join(TRACES_EXPORTERS)
            problems.append(f"OTEL_TRACES_EXPORTER={exporter!r}: must be one of {allowed}")
    for key in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        protocol = env.get(key)
        if protocol is not None and protocol not in OTLP_PROTOCOLS:
            problems.append(f"{key}={protocol!r}: must be {' or '.join(OTLP_PROTOCOLS)}")
    return problems


def create_tracer_provider(
    service_name: str, service_version: str, environ: Mapping[str, str] | None = None
) -> TracerProvider:
    """A tracer provider for `service_name` (unless `OTEL_SERVICE_NAME` says otherwise),
    exporting the way `OTEL_TRACES_EXPORTER` says."""
    env = os.environ if environ is None else environ
    attributes = {SERVICE_VERSION: service_version}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    # Resource.create() also merges OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(resource=Resource.create(attributes))
    delay = None if "OTEL_BSP_SCHEDULE_DELAY" in env else DEFAULT_SCHEDULE_DELAY_MILLIS
    for name in traces_exporter_names(env):
        exporter = _exporter(name, env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    return provider


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":  # one JSON object per line, like every other line on stdout
        return ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda s: s.to_json(indent=None) + "\n"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    timeout_set = "OTEL_EXPORTER_OTLP_TIMEOUT" in env or "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" in env
    return OTLPSpanExporter(timeout=None if timeout_set else DEFAULT_EXPORT_TIMEOUT_SECONDS)


def server_spans(
    provider: TracerProvider, untraced_paths: Sequence[str] = ("/metrics",)
) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support, set to make one server span per request.

    The span is named after the route (`GET /roll`) and carries the stable HTTP semantic
    conventions (`http.request.method`, `http.route`, `http.response.status_code`, ...).
    FastAPI's metrics and logs stay off (Prometheus and our JSON lines tell that story),
    and so do its per-operation child spans. A scrape every 5 s is not worth a trace,
    nor is anything under the other `untraced_paths` (a folder covers what is in it).
    """

    def untraced(scope: MutableMapping[str, Any]) -> bool:
        path = str(scope.get("path"))
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in untraced_paths)

    return {
        "tracer_provider": provider,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": untraced,
    }


@dataclass(frozen=True, slots=True)
class TraceIds:
    """A span's ids as logs, exemplars and headers write them: lower-case hex."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    flags: str  # 2 hex digits: sampled, random (W3C Trace Context Level 2)


def current_ids() -> TraceIds | None:
    """The ids of the current span, or None outside any real span (never all zeros)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return TraceIds(
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        format(context.trace_flags, "02x"),
    )


def current_exemplar() -> dict[str, str] | None:
    """The exemplar of an observation made now: the current trace's id, if any.

    Prometheus keeps it next to the sample, so a point on a graph leads to a trace.
    """
    ids = current_ids()
    return None if ids is None else {"trace_id": ids.trace_id}
