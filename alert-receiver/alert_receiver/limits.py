"""Every bound the receiver keeps, in one place, and how it cuts text.

Whatever a client sends, the receiver answers it (or refuses it) with a bounded number
of threads, in bounded time, with bounded lines. The figures are the services' own
(telemetry/src/sandbox_telemetry: `http.MAX_FIELD_CHARS`, `logs.MAX_MESSAGE_CHARS`,
`logs.cut_text`), copied rather than imported: the receiver uses the standard library
only (alert-receiver/README.md).
"""

from __future__ import annotations

__all__ = [
    "BUSY_LOG_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_FIELD_CHARS",
    "MAX_HANDLERS",
    "MAX_LABELS_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_NESTING",
    "TIMEOUT_SECONDS",
    "cut_text",
]

MAX_BODY_BYTES = 1024 * 1024
"""Alertmanager truncates a group to fit its own limits; a megabyte is far beyond it."""
MAX_NESTING = 16
"""How deep lists and objects may nest in a body. Alertmanager's payload nests 4 deep
(the payload, its alerts, an alert, its labels); Python's parser recurses once per
level and fails past about a thousand, so the body is measured before it is parsed."""
MAX_FIELD_CHARS = 1024
"""The longest text a line repeats from a client: an alert's summary, a label, the
`version` a refusal quotes, the path a 404 names (the services cut a path or a query
at the same length)."""
MAX_LABELS_CHARS = 2048
"""How much of an alert line its labels may take, as JSON: the ones beyond are left
out, and the line's `labels_cut` says how many. With every text cut at
MAX_FIELD_CHARS, a line stays under the 16 KiB at which Docker splits it (and Loki
would get two halves of JSON), unless its texts are full of characters JSON escapes."""
MAX_MESSAGE_CHARS = 2048
"""The longest message of a log line on stderr, whatever it quotes."""
MAX_HANDLERS = 16
"""Connections served at once, each by a thread of its own. Alertmanager sends one
notification per group at a time; a connection beyond this many is answered 503 at
once and closed, without a thread."""
TIMEOUT_SECONDS = 5.0
"""How long a connection may leave its handler waiting for the next bytes of a request
(or an idle keep-alive connection for its next request) before it is closed: uvicorn's
keep-alive default, as for the services."""
BUSY_LOG_SECONDS = 60.0
"""The 503s of a busy receiver are logged in one line per this many seconds, with their
count: a flood of connections must not become a flood of lines."""


def cut_text(text: str, max_chars: int) -> str:
    """`text`, cut to `max_chars` characters plus a note of how many were cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... [{len(text) - max_chars} more characters]"
