"""What Tempo's answers mean to the trace checks, which ask through `stackclient.Tempo`:
one trace by id, and a TraceQL search.

Answers as Tempo 3.0.3, the version the stack runs, gives them (seen on a real 3.0.3
built from source, on stack/tempo/config.yaml):

- `GET /api/v2/traces/<id>` ("Query V2") answers `{"trace": {"resourceSpans": [...]}}`
  once Tempo has the trace, in OpenTelemetry's JSON form (see `otlp_json`). Before,
  it answers HTTP 200 with `{"trace": {}, "metrics": {}}`, not 404: a fresh trace
  becomes readable about a second after its request (0.2 to 1.1 s measured), so that
  answer means "not yet" and the caller keeps polling. An answer without a `trace`
  object is malformed, and fails at once.
- `GET /api/search?q=<TraceQL>&start&end&limit` answers `{"traces": [{"traceID",
  "rootServiceName", "rootTraceName", "durationMs", ...}], "metrics": {...}}`. Tempo
  writes protobuf JSON, which leaves an empty list out: no `traces` key means none
  found. Search leaves out the newest 30 s by default (`query_end_cutoff`), which is
  why a fresh trace is fetched by id instead.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .model import Failed
from .otlp_json import spans_of

__all__ = ["read_trace_answer", "tempo_trace"]


def read_trace_answer(body: Any) -> dict[str, Any] | None:
    """The trace in Tempo's answer to `/api/v2/traces/<id>`, or None while it has no spans.

    Raises `Failed` when the answer is not Tempo's at all: no `trace` object, or
    `resourceSpans` that is not a list.
    """
    trace = body.get("trace") if isinstance(body, dict) else None
    if not isinstance(trace, dict):
        raise Failed(f"expected {{'trace': {{'resourceSpans': [...]}}}}, got {body!r:.120}")
    if not isinstance(trace.get("resourceSpans", []), list):
        raise Failed(f"expected a list of resourceSpans in Tempo's trace, got {body!r:.120}")
    return trace if spans_of(trace) else None


def tempo_trace(ctx: Context, trace_id: str) -> dict[str, Any] | None:
    """Tempo's trace for `trace_id` (`{"resourceSpans": [...]}`), or None while not there yet."""
    return read_trace_answer(ctx.tempo.trace(trace_id))
