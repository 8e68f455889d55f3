"""The ids of the request's span, read and formatted once per request, for every signal.

A roll would otherwise look the current span up and format its trace id for each
signal: the roll's exemplar, the HTTP exemplar, the request's log line and the
`traceresponse` header. Each look-up walks OpenTelemetry's context. Instead the
middleware around every traced request (`middleware.RequestTelemetryMiddleware`,
inside FastAPI's server span) formats them once and publishes them here, in a
context variable that the request's task, and only it, sees; the log filter, the
exemplars and the header read that.

Outside such a request (start-up lines, a build without traces, a test holding a
span of its own) nothing is published, and `current_ids` reads the current span as
before, so a line or an observation made outside any span still carries no ids.

The published ids are those of the request's server span. The service opens no child
span inside a request; one that did would see its parent's ids here.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanContext

__all__ = ["RequestIds", "current_ids", "ids_of", "publish_current", "unpublish"]


@dataclass(frozen=True, slots=True)
class RequestIds:
    """A span's ids as every signal writes them: hex strings and a ready exemplar."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    traceresponse: str  # the W3C header value: version, ids, flags
    exemplar: dict[str, str]  # prometheus_client only reads it; one dict serves all


_published: ContextVar[RequestIds | None] = ContextVar("dice_roller_request_ids", default=None)


def ids_of(context: SpanContext) -> RequestIds | None:
    """The formatted ids of `context`, or None when it is not a real span's."""
    if not context.is_valid:
        return None
    trace_id = format(context.trace_id, "032x")
    span_id = format(context.span_id, "016x")
    return RequestIds(
        trace_id=trace_id,
        span_id=span_id,
        traceresponse=f"00-{trace_id}-{span_id}-{context.trace_flags:02x}",
        exemplar={"trace_id": trace_id},
    )


def current_ids() -> RequestIds | None:
    """The ids of the request being served, else of the current span, else None."""
    ids = _published.get()
    if ids is not None:
        return ids
    return ids_of(trace.get_current_span().get_span_context())


def publish_current() -> tuple[RequestIds | None, Token[RequestIds | None]]:
    """Format the current span's ids once and publish them, until `unpublish(token)`.

    A pair of calls rather than a context manager: this runs on every request, and a
    generator-based one costs more than the look-ups it saves.
    """
    ids = ids_of(trace.get_current_span().get_span_context())
    return ids, _published.set(ids)


def unpublish(token: Token[RequestIds | None]) -> None:
    """End what `publish_current` started: the request is over."""
    _published.reset(token)
