"""JSON logs on stdout, each line carrying the trace and span of its request.

One JSON object per line, uvicorn's own lines included, so a log pipeline (Alloy to
Loki here) parses every line with `| json`. The ids come from the span current when
the line is written: that is what lets Grafana jump from a trace to its logs and back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from .tracing import current_ids

__all__ = [
    "MAX_MESSAGE_CHARS",
    "ExportWarningLimiter",
    "JsonLogFormatter",
    "MessageLengthLimiter",
    "ShutdownCancellationFilter",
    "TraceContextFilter",
    "configure_logging",
    "cut_text",
    "handling_cancellation",
]

MAX_MESSAGE_CHARS = 2048
"""Docker splits stdout lines over 16 KiB, and Loki then gets broken JSON: a message
(which may quote what a client sent) is cut well before."""


def configure_logging(level: str) -> None:
    """Send every logger, uvicorn's included, through one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(TraceContextFilter())
    handler.addFilter(ExportWarningLimiter())
    handler.addFilter(ShutdownCancellationFilter())
    handler.addFilter(MessageLengthLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # httpx says "HTTP Request: GET ..." for every call: the client span and the
    # request's own line say it already, so it speaks only of trouble.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class JsonLogFormatter(JsonFormatter):
    """Fields: timestamp (ISO 8601, UTC), level, logger, message, then the line's own."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn's ANSI-coloured copy of its message has no place in a JSON line.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            exc_info_as_array=False,  # a traceback stays one escaped string
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        log_data["timestamp"] = stamp.replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the current span to every record.

    OpenTelemetry's logging instrumentation no longer does it by default. Lines written
    outside any span (start-up, shutdown) get no ids rather than zeros matching nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        if ids is not None:
            record.trace_id = ids.trace_id
            record.span_id = ids.span_id
        return True


class ExportWarningLimiter(logging.Filter):
    """Lets each OpenTelemetry logger's warnings through at most once per `interval`
    seconds.

    With no collector listening, the exporter fails every batch, once a second; one
    line now and then says so without drowning the service's own lines. Each logger
    has a budget of its own: the propagators warn about a client's `traceparent`,
    `tracestate` or `baggage` header, and a client must not spend the budget of the
    exporter's warning that spans are being lost. Logger names come from
    OpenTelemetry's modules, so the budgets are few.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._next_allowed: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("opentelemetry"):
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_allowed.get(record.name, 0.0):
                self._suppressed[record.name] += 1
                return False
            self._next_allowed[record.name] = now + self.interval
            record.suppressed_since_last = self._suppressed.get(record.name, 0)
            self._suppressed[record.name] = 0
        return True


def handling_cancellation() -> bool:
    """Whether the exception passing through the caller's `except` or `finally` is its
    task's cancellation. For a request, uvicorn's doing: it cancels those still running
    at the shutdown grace limit (`timeout_graceful_shutdown`), and at no other time."""
    return isinstance(sys.exception(), asyncio.CancelledError)


class ShutdownCancellationFilter(logging.Filter):
    """Drops uvicorn's traceback of a request it cancelled at the shutdown grace limit.

    After `timeout_graceful_shutdown`, uvicorn cancels the requests still running and
    logs each one's `CancelledError` as "Exception in ASGI application", a 4 KB
    traceback that only shows where the request was waiting. `RequestTelemetry`
    writes the request's own line instead: "Request cancelled at shutdown".
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.name == "uvicorn.error" and isinstance(error, asyncio.CancelledError))


def cut_text(text: str, max_chars: int) -> str:
    """`text`, cut to `max_chars` characters plus a note of how many were cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... [{len(text) - max_chars} more characters]"


class MessageLengthLimiter(logging.Filter):
    """Cuts a message longer than `max_chars`, saying how much was cut."""

    def __init__(self, max_chars: int = MAX_MESSAGE_CHARS) -> None:
        super().__init__()
        self.max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > self.max_chars:
            record.msg = cut_text(message, self.max_chars)
            record.args = None
        return True
