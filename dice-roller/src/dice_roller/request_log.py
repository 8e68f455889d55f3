"""One log line per request, written when the answer has gone: the canonical log line.

Every request, whatever its route or status, ends in exactly one JSON line carrying
what happened (`message`, and for a roll the die fields) together with how it was
asked and answered (method, route, path, status, duration, client) and, when the
request was traced, its trace and span ids. One line rather than two (an event line
plus uvicorn's access line) costs half the logging, and it answers the usual
questions with one LogQL filter: `| json | route="/roll" and status>=500`.

A route does not log for itself: it describes its outcome with `describe_request`,
and `RequestTelemetryMiddleware` (`dice_roller.middleware`) writes the line once the
response is sent, so the duration covers the whole answer.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from .logs import LOGGER_NAME, cut_text

__all__ = [
    "MAX_FIELD_CHARS",
    "RequestOutcome",
    "begin_request",
    "describe_request",
    "end_request",
    "write_request_line",
]

MAX_FIELD_CHARS = 1024
"""The longest path or query string a line repeats. A client chooses them, up to the
64 KiB uvicorn's parser allows; Docker splits stdout lines over 16 KiB, and a log
pipeline then gets broken JSON. Cut, the line arrives whole and still names the request."""

log = logging.getLogger(LOGGER_NAME)


@dataclass(slots=True)
class RequestOutcome:
    """What a route says about the request it served; the rest the middleware knows."""

    message: str | None = None
    level: int = logging.INFO
    fields: dict[str, Any] = field(default_factory=dict)


_current: ContextVar[RequestOutcome | None] = ContextVar("dice_roller_request", default=None)


def begin_request() -> tuple[RequestOutcome, Token[RequestOutcome | None]]:
    """Open the outcome of the request being served, for its route to fill in."""
    outcome = RequestOutcome()
    return outcome, _current.set(outcome)


def end_request(token: Token[RequestOutcome | None]) -> None:
    _current.reset(token)


def describe_request(message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Name the outcome of the current request in its line (`"Roll completed"`, ...).

    Outside a request's line (an app built without `RequestTelemetryMiddleware`, as the
    benchmark's recipe build is) there is no line to add to, so the event is logged on
    its own line at once, rather than lost.
    """
    outcome = _current.get()
    if outcome is None:
        log.log(level, message, extra=fields)
        return
    outcome.message = message
    outcome.level = level
    outcome.fields.update(fields)


def write_request_line(
    outcome: RequestOutcome,
    *,
    method: str,
    route: str | None,
    path: str,
    query: bytes,
    status: int,
    seconds: float,
    client: tuple[str, int] | None,
) -> None:
    """Write the request's one line; an answer in the 5xx range is logged at ERROR."""
    level = outcome.level if status < 500 else max(outcome.level, logging.ERROR)
    if not log.isEnabledFor(level):
        return
    message = outcome.message or ("Request failed" if status >= 500 else "Request completed")
    fields = outcome.fields
    fields["method"] = method
    fields["route"] = route
    fields["path"] = cut_text(path, MAX_FIELD_CHARS)
    if query:
        fields["query"] = cut_text(query.decode("latin-1"), MAX_FIELD_CHARS)
    fields["status"] = status
    fields["duration_seconds"] = round(seconds, 6)
    if client is not None:
        fields["client"] = f"{client[0]}:{client[1]}"
    # The caller is always this function: `makeRecord` and `handle` skip the stack walk
    # that `log.info` makes to find it, a few microseconds on every request.
    log.handle(log.makeRecord(LOGGER_NAME, level, __file__, 0, message, (), None, extra=fields))
