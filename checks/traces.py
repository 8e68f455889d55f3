"""Trace Collection and Trace-to-Logs Correlation, followed from one fresh request.

The fair roll of the service checks returned a `traceresponse` header naming its
trace. These checks look that trace up in Tempo, inspect its server span, then open
the "Logs for this span" link the way Grafana would: the Tempo data source's
`tracesToLogsV2` query, read from the provisioning file, run against Loki.

Tempo API followed: Tempo HTTP API as documented for Tempo 2.x and 3.x,
`GET /api/search?q=<TraceQL>&start&end&limit` answering `{"traces": [{"traceID",
"rootServiceName", "durationMs", ...}], "metrics": {...}}`, and the "Query V2"
endpoint `GET /api/v2/traces/<id>` answering `{"trace": {"resourceSpans": [...]}}`
in OpenTelemetry's JSON form (404 while the trace is unknown).

Tempo's search leaves out the newest 30 s by default (`query_end_cutoff`), so a fresh
trace is fetched by id rather than searched for.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from pathlib import Path
from typing import Any

from .context import CONTAINER, SERVICE_NAME, Context, FreshRequest, poll
from .http import ApiError
from .logs import lines_of, loki_streams
from .model import Failed, Run
from .provisioning import provisioned_datasources

__all__ = ["link_query", "run_trace_checks", "run_trace_to_logs_checks", "tempo_trace"]

TRACES = "Trace Collection"
LINKS = "Trace-to-Logs Correlation"
TRACEQL = f'{{resource.service.name="{SERVICE_NAME}"}}'

DURATION_SLACK = 0.05
"""Seconds a server span may exceed the client's round trip (two clocks, rounding)."""
DURATION_TOLERANCE = 0.25
"""Seconds of round trip the server span may miss: connection, proxy, serialization."""

HINT_TEMPO = (
    "Traces go service → Alloy (OTLP, port 4318) → Tempo. Check "
    "`docker compose logs alloy tempo` for export errors and "
    "`docker compose exec dice-roller env | grep OTEL` for the endpoint. Tempo's search "
    "skips the newest 30 s: after a first `make traffic`, wait half a minute."
)
HINT_FRESH = (
    "The request's trace did not reach Tempo in time. The service batches spans for up to "
    "1 s; `docker compose logs dice-roller` shows export failures, `docker compose logs "
    "alloy` what Alloy forwards. Raise --wait on a slow machine."
)
HINT_ATTRIBUTES = (
    "The roll route sets die.type and die.result on the request's span "
    "(dice-roller/src/dice_roller/app.py); a trace without them comes from another build: "
    "`docker compose up -d --build`."
)
HINT_DURATION = (
    "The server span should cover the whole request, random delay included. A much shorter "
    "span means the span ended early; a longer one, clock trouble. Try again: a busy "
    "machine can delay the client."
)
HINT_LINK = (
    "Grafana's Tempo data source needs tracesToLogsV2 pointing at the Loki data source "
    "(stack/grafana/provisioning/datasources/). After editing it, `make reload`."
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


# ------------------------------------------------------------------ Tempo


def tempo_trace(ctx: Context, trace_id: str) -> Any | None:
    """Tempo's trace for `trace_id` (`{"resourceSpans": [...]}`), or None while unknown."""
    response = ctx.api.request(ctx.tempo, "GET", f"/api/v2/traces/{trace_id}", ok=(200, 404))
    if response.status_code == 404:
        return None
    try:
        body = response.json()
    except ValueError:
        raise Failed(
            f"Tempo answered the trace with something that is not JSON: {response.text[:80]!r}"
        ) from None
    trace = body.get("trace") if isinstance(body, dict) else None
    if not isinstance(trace, dict) or not isinstance(trace.get("resourceSpans"), list):
        raise Failed(f"expected {{'trace': {{'resourceSpans': [...]}}}}, got {body!r:.120}")
    return trace if spans_of(trace) else None


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
        raise Failed(f"trace {fresh.trace_id} not in Tempo {after:.0f} s after the request")
    fresh.trace = trace
    return f"trace {fresh.trace_id} with {len(spans_of(trace))} span(s), {after:.1f} s after"


def _search(ctx: Context) -> str:
    def attempt() -> list[Any] | None:
        now = time.time()
        body = ctx.api.get_json(
            ctx.tempo,
            "/api/search",
            {"q": TRACEQL, "start": str(int(now - 3600)), "end": str(int(now) + 1), "limit": "20"},
        )
        # Tempo's protobuf JSON leaves out empty lists: no "traces" key means none found.
        traces = body.get("traces", []) if isinstance(body, dict) else None
        if not isinstance(traces, list):
            raise Failed(f"expected {{'traces': [...]}} from /api/search, got {body!r:.120}")
        return traces or None

    traces = poll(ctx, attempt)
    if not traces:
        raise Failed(f"no trace matches {TRACEQL} in the last hour (newest 30 s excluded)")
    first = traces[0] if isinstance(traces[0], dict) else {}
    return (
        f"{len(traces)} trace(s) (limit 20), e.g. {first.get('rootTraceName', '?')!r} "
        f"{first.get('traceID', '?')}"
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


# ------------------------------------------------------------- spans


def _hex_id(value: Any, length: int) -> str:
    """An OTLP id as hex: OTLP/JSON writes hex, Tempo's JSON base64; accept both."""
    text = str(value or "")
    if re.fullmatch(f"[0-9a-fA-F]{{{length}}}", text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _attribute_value(value: Any) -> Any:
    """The Python value of an OTLP AnyValue (`{"stringValue": "x"}`, `{"intValue": "3"}`)."""
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "intValue":
        return int(inner)
    return inner


def _attributes_of(items: Any) -> dict[str, Any]:
    return {
        str(item.get("key")): _attribute_value(item.get("value"))
        for item in items or []
        if isinstance(item, dict)
    }


def spans_of(trace: Any) -> list[dict[str, Any]]:
    """Every span of an OTLP JSON trace, flattened, with the fields the checks use."""
    spans = []
    for resource_spans in trace.get("resourceSpans") or []:
        resource = _attributes_of((resource_spans.get("resource") or {}).get("attributes"))
        scopes = resource_spans.get("scopeSpans") or resource_spans.get(
            "instrumentationLibrarySpans"
        )
        for scope in scopes or []:
            for span in scope.get("spans") or []:
                start = int(span.get("startTimeUnixNano") or 0)
                end = int(span.get("endTimeUnixNano") or 0)
                spans.append(
                    {
                        "span_id": _hex_id(span.get("spanId"), 16),
                        "name": str(span.get("name", "")),
                        "kind": str(span.get("kind", "")),
                        "service": str(resource.get("service.name", "?")),
                        "attributes": _attributes_of(span.get("attributes")),
                        "start": start / 1e9,
                        "end": end / 1e9,
                        "seconds": (end - start) / 1e9,
                    }
                )
    return spans


def server_span(trace: Any, span_id: str) -> dict[str, Any]:
    """The request's span: the one the traceresponse header named, else the server span."""
    spans = spans_of(trace)
    for span in spans:
        if span["span_id"] == span_id:
            return span
    for span in spans:
        if span["kind"] in ("SPAN_KIND_SERVER", "2"):
            return span
    raise Failed(f"no span {span_id} and no server span among {len(spans)} span(s)")


# ---------------------------------------------------- trace-to-logs link


def tempo_link_settings(datasources_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Tempo's tracesToLogsV2 settings, the Loki data source it points to), from provisioning."""
    sources = provisioned_datasources(datasources_dir)
    tempo = [s for s in sources if s.get("type") == "tempo"]
    if not tempo:
        raise Failed(f"no Tempo data source provisioned in {datasources_dir}")
    link = (tempo[0].get("jsonData") or {}).get("tracesToLogsV2")
    if not isinstance(link, dict):
        raise Failed("the Tempo data source has no jsonData.tracesToLogsV2")
    target = [s for s in sources if s.get("uid") == link.get("datasourceUid")]
    if not target or target[0].get("type") != "loki":
        raise Failed(
            f"tracesToLogsV2 points at {link.get('datasourceUid')!r}, not a Loki data source"
        )
    return link, target[0]


def link_query(link: dict[str, Any], trace_id: str, span_id: str) -> str:
    """The LogQL Grafana runs for "Logs for this span", with this span's ids in it.

    Provisioning files escape `$` as `$$` (Grafana expands environment variables in
    them); the link's own variables are then filled in as Grafana does.
    """
    if not link.get("customQuery") or not link.get("query"):
        raise Failed("tracesToLogsV2 has no custom query (customQuery: true, query: ...)")
    query = str(link["query"]).replace("$$", "$")
    for name, value in (("__trace.traceId", trace_id), ("__span.spanId", span_id)):
        query = query.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.search(r"\$\{?[\w.]+", query)
    if leftover:
        raise Failed(f"the link's query uses {leftover.group(0)}, which these checks cannot fill")
    return query


def _shift(text: Any) -> float:
    """Seconds in a Grafana time shift such as `-1m`, `30s`, `1h`."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text or "0"))
    if match is None:
        raise Failed(f"cannot read the time shift {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def _link(ctx: Context) -> tuple[str, float, float]:
    """The link's query for the fresh request's span, and its time range."""
    fresh, trace = _found_trace(ctx)
    link, _ = tempo_link_settings(ctx.settings.datasources_dir)
    span = server_span(trace, fresh.span_id)
    query = link_query(link, fresh.trace_id, span["span_id"])
    start = span["start"] + _shift(link.get("spanStartTimeShift"))
    end = span["end"] + _shift(link.get("spanEndTimeShift"))
    return query, start, end


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
    loki_streams(ctx, query, start, end, 100)  # a parse error would be a 400 here
    return query


def _linked_logs(ctx: Context) -> str:
    fresh = _need_fresh(ctx)
    query, start, end = _link(ctx)

    def attempt() -> list[str] | None:
        return lines_of(loki_streams(ctx, query, start, end, 100)) or None

    try:
        lines = poll(ctx, attempt) or []
    except ApiError as error:
        raise Failed(str(error)) from None
    if not lines:
        raise Failed(f"Loki found no lines for the link's query: {query}")
    others = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = {}
        if not isinstance(record, dict) or record.get("trace_id") != fresh.trace_id:
            others.append(line)
    if others:
        raise Failed(
            f"{len(others)} of {len(lines)} lines are not of this trace: {others[0][:120]}"
        )
    return f"{len(lines)} line(s) with trace_id {fresh.trace_id}"
