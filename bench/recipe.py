"""The common recipe: the instrumentation most tutorials give, with their defaults.

The full service's cost means little on its own; what matters to someone choosing
is what it costs against what they would otherwise write. This build is that
alternative, on the bare build's `/roll` (`bench.apps`: the service's dice, its
answers), with a roll line of its own, as a tutorial's route would write:

- traces: opentelemetry-instrumentation's `FastAPIInstrumentor.instrument_app`, its
  generic ASGI middleware with every default (the "http send" and "http receive"
  child spans included), and a `BatchSpanProcessor` with an `OTLPSpanExporter()`
  configured by `OTEL_EXPORTER_OTLP_ENDPOINT` alone;
- metrics: prometheus-fastapi-instrumentator's `Instrumentator().instrument(app)
  .expose(app)`, defaults and global registry;
- logs: a `logging.Formatter` that `json.dumps` a dict with the current span's ids,
  for the roll line; uvicorn's default plain-text access line (see `bench.serve`).

It does less than the service: no `die.*` span attributes, no roll metrics, no
exemplars, no `traceresponse` header. So "full / recipe" overstates what the
service's extra evidence costs, never understates it.
"""

from __future__ import annotations

import json
import logging
import sys

from dice_roller.settings import Settings
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator

from .apps import build_bare_app

__all__ = ["RECIPE", "RecipeJsonFormatter", "build_recipe_app", "configure_recipe_logging"]

RECIPE = "recipe"
"""The build's name in the benchmark."""

log = logging.getLogger("dice_roller")
"""The roll line's logger, named as the service's so that the lines compare."""
_EXTRA_FIELDS = ("die_type", "roll_value", "error")
"""The roll line's own fields, which a tutorial's formatter would pass through too."""


class RecipeJsonFormatter(logging.Formatter):
    """The tutorial formatter: one dict per record, the span's ids in hex, `json.dumps`."""

    def format(self, record: logging.LogRecord) -> str:
        context = trace.get_current_span().get_span_context()
        entry: dict[str, object] = {
            "timestamp": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
        }
        for name in _EXTRA_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        return json.dumps(entry)


def configure_recipe_logging(level: str) -> None:
    """The JSON formatter on the root logger; uvicorn keeps its own default config."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(RecipeJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def build_recipe_app(
    settings: Settings,
    span_processor: SpanProcessor | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The bare build's route with the recipe's instrumentation (see the module docstring).

    `span_processor` defaults to the tutorial's batch processor exporting over OTLP;
    `registry` to prometheus_client's global one. Tests pass their own.
    """
    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "dice-roller-recipe"}))
    provider.add_span_processor(span_processor)

    app = build_bare_app(settings, log)  # its roll line; uvicorn's access line the rest
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    Instrumentator(registry=registry).instrument(app).expose(app)
    return app
