"""Structured JSON logs on stdout, each line carrying the trace and span of its request.

One JSON object per line, uvicorn's own lines included, so a log pipeline (Alloy to
Loki here) can parse every line with `| json`. Each request writes one line of its
own (`dice_roller.request_log`); uvicorn's access line is off. The ids come from the span that is
current when the line is written, which is what lets Grafana jump from a trace to
its logs and back.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from .ids import current_ids

__all__ = [
    "ExportWarningLimiter",
    "JsonLogFormatter",
    "MessageLengthLimiter",
    "TraceContextFilter",
    "configure_logging",
    "cut_text",
]

LOGGER_NAME = "dice_roller"
"""The logger of the service's own events (`logger` field of roll events)."""

_RENAMED_FIELDS = {"levelname": "level", "name": "logger"}


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the current span to every record.

    OpenTelemetry's logging instrumentation no longer injects these by default, so the
    filter does it itself, from the ids the request formatted once for all its signals
    (`dice_roller.ids`). Lines written outside any request (start-up, shutdown) carry
    no ids at all rather than all-zero ones that would match nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        if ids is not None:
            record.trace_id = ids.trace_id
            record.span_id = ids.span_id
        return True


class ExportWarningLimiter(logging.Filter):
    """Lets OpenTelemetry's own warnings through at most once per `interval` seconds.

    With no collector listening, the exporter fails every batch, once a second; one
    line now and then says so without drowning the roll events.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._next_allowed = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("opentelemetry"):
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_allowed:
                self._suppressed += 1
                return False
            self._next_allowed = now + self.interval
            record.suppressed_since_last = self._suppressed
            self._suppressed = 0
        return True


def cut_text(text: str, max_chars: int) -> str:
    """`text`, cut to `max_chars` characters plus a note of how many were cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... [{len(text) - max_chars} more characters]"


class MessageLengthLimiter(logging.Filter):
    """Cuts a message longer than `max_chars`, saying how much was cut.

    A message can quote what a client sent (an exception's text, a library's
    warning). Docker splits any stdout line over 16 KiB into pieces, and a log
    pipeline then receives each piece as a line of its own: broken JSON. Cut, the
    line arrives whole. (The request line cuts its own path and query the same way.)
    """

    def __init__(self, max_chars: int = 2048) -> None:
        super().__init__()
        self.max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > self.max_chars:
            record.msg = cut_text(message, self.max_chars)
            record.args = None
        return True


class JsonLogFormatter(JsonFormatter):
    """The field names README.md shows: timestamp (ISO 8601, UTC), level, message, logger, ..."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields=_RENAMED_FIELDS,
            # uvicorn's ANSI-coloured copy of its message has no place in a JSON line.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            # Exceptions stay inside the JSON object, as one escaped string.
            exc_info_as_array=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = (
            datetime.fromtimestamp(record.created, tz=UTC).isoformat().replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)


def configure_logging(level: str) -> None:
    """Send every logger, uvicorn's included, through one JSON handler on stdout."""
    # No line shows the thread, process or asyncio task that wrote it: the logging
    # HOWTO's "Optimization" switches spare looking them up for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(TraceContextFilter())
    handler.addFilter(ExportWarningLimiter())
    handler.addFilter(MessageLengthLimiter())

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
