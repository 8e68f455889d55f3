"""Trace Collection and Trace-to-Logs Correlation, followed from one fresh request.

The fair roll of the service checks returned a `traceresponse` header naming its
trace. These checks look that trace up in Tempo (`tempo`), inspect its server span
(`otlp_json`), then open the "Logs for this span" link the way Grafana would
(`trace_link`) and run it against Loki. This module only says which boxes there are
and what ticks each one.
"""

from __future__ import annotations

import time
from typing import Any

from stackclient import ApiError

from .context import CONTAINER, SERVICE_NAME, Context, FreshRequest, poll
from .logs import json_object, lines_of
from .model import Failed, Run
from .otlp_json import server_span, spans_of
from .tempo import tempo_trace
from .trace_link import link_query, span_link, tempo_link_settings

__all__ = ["run_trace_checks", "run_trace_to_logs_checks"]

TRACES = "Trace Collection"
LINKS = "Trace-to-Logs Correlation"
TRACEQL = f'{{resource.service.name="{SERVICE_NAME}"}}'
SEARCH_SECONDS = 3600
SEARCH_LIMIT = 20

DURATION_SLACK = 0.05
"""Seconds a server span may exceed the client's round trip (two clocks, rounding)."""
DURATION_TOLERANCE = 0.25
"""Seconds of round trip the server span may miss: connection, proxy, serialization."""

HINT_TEMPO = (
    "Traces go service → Alloy (OTLP, port 4318) → Tempo. Check "
    "`docker compose logs alloy tempo` for export errors and "
    "`docker compose exec dice-roller env | grep OTEL` for the endpoint; without Docker "
    "(`python3 tasks.py nativestack`), the logs folder it prints has alloy.log and tempo.log. "
    "Tempo's search skips the newest 30 s: after a first `python3 tasks.py compose traffic`, wait "
    "half a minute."
)
HINT_FRESH = (
    "The request's trace did not reach Tempo in time. The service batches spans for up to "
    "1 s; `docker compose logs dice-roller` shows export failures, `docker compose logs "
    "alloy` what Alloy forwards (without Docker: dice-roller.log and alloy.log in the "
    "logs folder `python3 tasks.py nativestack` prints). Raise --wait on a slow machine."
)
HINT_ATTRIBUTES = (
    "The roll route sets die.type and die.result on the request's span "
    "(dice-roller/src/dice_roller/app.py); a trace without them comes from another build: "
    "`docker compose up -d --build`, or restart `python3 tasks.py nativestack`."
)
HINT_DURATION = (
    "The server span should cover the whole request, random delay included. A much shorter "
    "span means the span ended early; a longer one, clock trouble. Try again: a busy "
    "machine can delay the client."
)
HINT_LINK = (
    "Grafana's Tempo data source needs tracesToLogsV2 pointing at the Loki data source "
    "(stack/grafana/provisioning/datasources/). After editing it, `python3 tasks.py compose "
    "reload` with "
    "Docker (`python3 tasks.py nativestack` runs no Grafana yet)."
)
HINT_LOGS = (
    "The link's query must select the service's stream (container_name label set in "
    "stack/alloy/config.alloy) and match the trace_id field of its JSON lines. Run it in "
    "Grafana → Explore → Loki to see what it finds."
)


def run_trace_checks(ctx: Context, run: Run) -> None:
    run.check(
        TRACES,
        "Traces show up within seconds of requests: the fair roll's trace, by id",
        HINT_FRESH,
        lambda: _fresh_trace(ctx),
    )
    run.check(
        TRACES,
        f"Traces in Tempo: search {TRACEQL}",
        HINT_TEMPO,
        lambda: _search(ctx),
    )
    run.check(
        TRACES,
        "Trace includes custom attributes die.type and die.result",
        HINT_ATTRIBUTES,
        lambda: _attributes(ctx),
    )
    run.check(
        TRACES,
        "Trace duration matches request time (includes the delay)",
        HINT_DURATION,
        lambda: _duration(ctx),
    )


def run_trace_to_logs_checks(ctx: Context, run: Run) -> None:
    run.check(
        LINKS,
        "Open a trace in Tempo: the fresh request's trace id finds its trace",
        HINT_FRESH,
        lambda: _open_trace(ctx),
    )
    run.check(
        LINKS,
        "Click on a span: the span named by the traceresponse header is in it",
        HINT_ATTRIBUTES,
        lambda: _click_span(ctx),
    )
    run.check(
        LINKS,
        '"Logs for this span" is configured: Tempo data source → Loki (tracesToLogsV2)',
        HINT_LINK,
        lambda: _link_configured(ctx),
    )
    run.check(
        LINKS,
        "It jumps to Loki with the correct trace_id filter (Loki accepts the query)",
        HINT_LINK,
        lambda: _link_filters(ctx),
    )
    run.check(
        LINKS,
        "Logs with the matching trace_id appear",
        HINT_LOGS,
        lambda: _linked_logs(ctx),
    )


# ------------------------------------------------------------ checks


def _need_fresh(ctx: Context) -> FreshRequest:
    if ctx.fresh is None:
        raise Failed(
            "no request to follow: the fair roll above failed or had no traceresponse header"
        )
    return ctx.fresh


def _found_trace(ctx: Context) -> tuple[FreshRequest, Any]:
    fresh = _need_fresh(ctx)
    if fresh.trace is None:
        raise Failed(f"trace {fresh.trace_id} was not found in Tempo (see above)")
    return fresh, fresh.trace


def _fresh_trace(ctx: Context) -> str:
    fresh = _need_fresh(ctx)
    trace = poll(ctx, lambda: tempo_trace(ctx, fresh.trace_id))
    after = time.time() - fresh.started
    if trace is None:
        raise Failed(
            f"trace {fresh.trace_id} never arrived in Tempo within the wait: still no spans "
            f"{after:.0f} s after the request (--wait {ctx.settings.wait:g})"
        )
    fresh.trace = trace
    return f"trace {fresh.trace_id} with {len(spans_of(trace))} span(s), {after:.1f} s after"


def _search(ctx: Context) -> str:
    def attempt() -> list[Any] | None:
        now = int(time.time())
        return ctx.tempo.search(TRACEQL, now - SEARCH_SECONDS, now + 1, SEARCH_LIMIT) or None

    traces = poll(ctx, attempt)
    if not traces:
        raise Failed(f"no trace matches {TRACEQL} in the last hour (newest 30 s excluded)")
    first = traces[0] if isinstance(traces[0], dict) else {}
    return (
        f"{len(traces)} trace(s) (limit {SEARCH_LIMIT}), e.g. "
        f"{first.get('rootTraceName', '?')!r} {first.get('traceID', '?')}"
    )


def _attributes(ctx: Context) -> str:
    fresh, trace = _found_trace(ctx)
    span = server_span(trace, fresh.span_id)
    attributes = span["attributes"]
    missing = [key for key in ("die.type", "die.result") if key not in attributes]
    if missing:
        raise Failed(f"span {span['name']!r} lacks {', '.join(missing)}: has {sorted(attributes)}")
    return f"die.type={attributes['die.type']}, die.result={attributes['die.result']}"


def _duration(ctx: Context) -> str:
    fresh, trace = _found_trace(ctx)
    span = server_span(trace, fresh.span_id)
    seconds = span["seconds"]
    gap = fresh.seconds - seconds
    allowed = DURATION_TOLERANCE + 0.2 * fresh.seconds
    measured = f"span {seconds:.3f} s, request {fresh.seconds:.3f} s"
    if gap < -DURATION_SLACK:
        raise Failed(f"{measured}: the span is longer than the whole round trip")
    if gap > allowed:
        raise Failed(f"{measured}: the span misses {gap:.3f} s (more than {allowed:.2f} s)")
    return measured


def _open_trace(ctx: Context) -> str:
    fresh, trace = _found_trace(ctx)
    services = sorted({span["service"] for span in spans_of(trace)})
    return f"trace {fresh.trace_id}: {len(spans_of(trace))} span(s) from {', '.join(services)}"


def _click_span(ctx: Context) -> str:
    fresh, trace = _found_trace(ctx)
    for span in spans_of(trace):
        if span["span_id"] == fresh.span_id:
            return f"span {fresh.span_id} {span['name']!r} ({span['kind']})"
    raise Failed(f"no span {fresh.span_id} in trace {fresh.trace_id}")


# ---------------------------------------------------- trace-to-logs link


def _link(ctx: Context) -> tuple[str, float, float]:
    """The link's query for the fresh request's span, and its time range."""
    fresh, trace = _found_trace(ctx)
    link, _ = tempo_link_settings(ctx.settings.datasources_dir)
    return span_link(link, fresh.trace_id, server_span(trace, fresh.span_id))


def _link_configured(ctx: Context) -> str:
    link, loki = tempo_link_settings(ctx.settings.datasources_dir)
    query = link_query(link, "<trace id>", "<span id>")
    return f"→ {loki.get('name', loki.get('uid'))}: {query}"


def _link_filters(ctx: Context) -> str:
    fresh = _need_fresh(ctx)
    query, start, end = _link(ctx)
    if fresh.trace_id not in query:
        raise Failed(f"the query does not mention trace {fresh.trace_id}: {query}")
    if CONTAINER not in query:
        raise Failed(f"the query does not select the {CONTAINER} stream: {query}")
    ctx.loki.streams(query, start, end, 100)  # a parse error would be a 400 here
    return query


def _linked_logs(ctx: Context) -> str:
    fresh = _need_fresh(ctx)
    query, start, end = _link(ctx)

    def attempt() -> list[str] | None:
        return lines_of(ctx.loki.streams(query, start, end, 100)) or None

    try:
        lines = poll(ctx, attempt) or []
    except ApiError as error:
        raise Failed(str(error)) from None
    if not lines:
        raise Failed(f"Loki found no lines for the link's query: {query}")
    others = [line for line in lines if (json_object(line) or {}).get("trace_id") != fresh.trace_id]
    if others:
        raise Failed(
            f"{len(others)} of {len(lines)} lines are not of this trace: {others[0][:120]}"
        )
    return f"{len(lines)} line(s) with trace_id {fresh.trace_id}"
