"""Stage 2, Across Services: one roll through the frontend is one trace over both
services, and every signal shows the hop.

The roll made here is the checks' own: `GET /api/roll?die=fair` on the frontend, whose
`traceresponse` header names the trace. The boxes then follow it: in Tempo, the
frontend's server span, its client span, and the dice-roller's server span under it,
parent by parent; in Prometheus, the service-graph edge Alloy counted from that pair
of spans, and the frontend's own metrics, scraped by Alloy; in Loki, the lines of both
services carrying the trace id. A browser adds a span above the frontend's (the
page's fetch): the browser test (tests/nativestack/live) follows that one from a real click.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from stackclient import decode_json

from .context import CONTAINER, SERVICE_NAME, Context, FreshRequest, poll
from .logs import lines_of
from .model import Failed, Run
from .otlp_json import spans_of
from .service import parse_traceresponse
from .tempo import tempo_trace

__all__ = [
    "FRONTEND_CONTAINER",
    "FRONTEND_JOB",
    "FRONTEND_SERVICE",
    "chain_of",
    "complete_chain",
    "edge",
    "lines_of_every",
    "run_stage2_checks",
    "scraped",
]

GROUP = "Stage 2: Across Services"
FRONTEND_SERVICE = "frontend"
"""OpenTelemetry `service.name` of the frontend's spans (docker-compose.yml)."""
FRONTEND_JOB = "frontend"
"""The `job` Alloy gives the frontend's metrics: its compose service."""
FRONTEND_CONTAINER = "frontend"
"""Docker container name of the frontend (docker-compose.yml)."""
EDGE = f'traces_service_graph_request_total{{client="{FRONTEND_SERVICE}", server="{SERVICE_NAME}"}}'

HINT_FRONTEND = (
    "Is stage 2 running? With Docker: `docker compose --profile stage2 up -d --build`, and "
    "`docker compose logs frontend` says why not. Without Docker: "
    "`sudo python3 tasks.py nativestack --stage 2`. See docs/stages.md."
)
HINT_TRACE = (
    "The frontend's call must carry the trace on: its httpx client is instrumented "
    "(frontend/src/frontend/upstream.py) and both services export to Alloy "
    "(OTEL_EXPORTER_OTLP_ENDPOINT in docker-compose.yml)."
)
HINT_GRAPH = (
    "Alloy's otelcol.connector.servicegraph (stack/alloy/config.alloy) pairs the client and "
    "server spans and remote-writes the edge to Prometheus, which needs "
    "--web.enable-remote-write-receiver (stack/compose.yml). Alloy's UI shows the pipeline."
)
HINT_SCRAPE = (
    "Alloy scrapes containers labelled sandbox.metrics.port (stack/alloy/config.alloy) and "
    "remote-writes to Prometheus: is the frontend's label there (docker-compose.yml)?"
)
HINT_LOGS = (
    "Both services' stdout reaches Loki through Alloy's docker discovery; the frontend's "
    f'stream is {{container_name="{FRONTEND_CONTAINER}"}}.'
)


def run_stage2_checks(ctx: Context, run: Run) -> None:
    run.check(
        GROUP,
        "The frontend answers a roll: GET /api/roll?die=fair",
        HINT_FRONTEND,
        lambda: _roll(ctx),
    )
    with run.relying_on(ctx.frontend, ctx.tempo.component):
        run.check(
            GROUP,
            "One trace crosses both services: frontend server → client → dice-roller server",
            HINT_TRACE,
            lambda: _one_trace(ctx),
        )
    run.check(GROUP, f"The service graph has the edge: {EDGE}", HINT_GRAPH, lambda: _edge(ctx))
    run.check(
        GROUP,
        f'Prometheus has the frontend\'s metrics: up{{job="{FRONTEND_JOB}"}} == 1',
        HINT_SCRAPE,
        lambda: _scraped(ctx),
    )
    run.check(
        GROUP,
        "Both services' log lines carry the roll's trace id",
        HINT_LOGS,
        lambda: _both_logs(ctx),
    )


def _stage2_roll(ctx: Context) -> FreshRequest:
    roll = ctx.facts.get("stage2_roll")
    if not isinstance(roll, FreshRequest):
        raise Failed("no roll to follow: the frontend's roll above failed")
    return roll


def _roll(ctx: Context) -> str:
    started, clock = time.time(), time.perf_counter()
    response = ctx.api.request(ctx.frontend, "GET", "/api/roll", params={"die": "fair"})
    seconds = time.perf_counter() - clock
    body = decode_json(ctx.frontend, "/api/roll?die=fair", response)
    roll = body.get("roll") if isinstance(body, dict) else None
    if not isinstance(roll, int) or not 1 <= roll <= 6:
        raise Failed(f"expected {{'roll': 1..6, ...}}, got {body!r:.120}")
    ids = parse_traceresponse(response.headers.get("traceresponse"))
    if ids is None:
        raise Failed(f"rolled {roll}, but the answer names no trace (traceresponse header)")
    ctx.facts["stage2_roll"] = FreshRequest("/api/roll?die=fair", 200, *ids, started, seconds)
    return f"rolled {roll} in {seconds:.2f} s, trace {ids[0]}"


def chain_of(
    trace: Any, services: tuple[str, ...] = (FRONTEND_SERVICE, SERVICE_NAME)
) -> list[dict[str, Any]]:
    """The first service's SERVER span → its CLIENT span → the next service's SERVER span,
    and so on down `services`, each the next one's parent; raises `Failed` saying which
    link is missing."""
    spans = spans_of(trace)
    seen = ", ".join(f"{s['service']}:{s['name']}" for s in spans)

    def under(parent: str, service: str, kind: str) -> list[dict[str, Any]]:
        return [
            span
            for span in spans
            if span["service"] == service and kind in span["kind"] and span["parent_id"] == parent
        ]

    tops = [s for s in spans if s["service"] == services[0] and "SERVER" in s["kind"]]
    if not tops:
        raise Failed(f"no SERVER span of {services[0]} in the trace (spans: {seen})")
    chain = [tops[0]]
    for caller, called in itertools.pairwise(services):
        # A caller may make other calls beside this one: the link is the call `called` served.
        pairs = [
            (call, served)
            for call in under(chain[-1]["span_id"], caller, "CLIENT")
            for served in under(call["span_id"], called, "SERVER")
        ]
        if not pairs:
            raise Failed(
                f"no CLIENT span of {caller} under span {chain[-1]['span_id']} with a SERVER "
                f"span of {called} under it (spans: {seen})"
            )
        chain.extend(pairs[0])
    return chain


def _one_trace(ctx: Context) -> str:
    roll = _stage2_roll(ctx)
    trace = poll(ctx, lambda: complete_chain(ctx, roll.trace_id))
    if trace is None:
        found = tempo_trace(ctx, roll.trace_id)
        seen = sorted({s["service"] for s in spans_of(found)}) if found else []
        raise Failed(
            f"trace {roll.trace_id} did not reach Tempo from both services within the wait "
            f"(services seen: {', '.join(seen) or 'none'})"
        )
    roll.trace = trace
    top, call, served = chain_of(trace)
    return (
        f"{top['name']} → {call['name']} → {served['name']} "
        f"({SERVICE_NAME} {served['seconds']:.2f} s of {top['seconds']:.2f} s)"
    )


def complete_chain(
    ctx: Context, trace_id: str, services: tuple[str, ...] = (FRONTEND_SERVICE, SERVICE_NAME)
) -> Any:
    """The trace once its whole chain down `services` is in Tempo, else None: every span
    of it, not one per service, as a service's spans leave in batches of their own."""
    trace = tempo_trace(ctx, trace_id)
    if not trace:
        return None
    try:
        chain_of(trace, services)
    except Failed:
        return None
    return trace


def _edge(ctx: Context) -> str:
    return edge(ctx, FRONTEND_SERVICE, SERVICE_NAME)


def edge(ctx: Context, client: str, server: str) -> str:
    """The service graph's count of calls from `client` to `server`, once it has one."""
    series = f'traces_service_graph_request_total{{client="{client}", server="{server}"}}'

    def attempt() -> float | None:
        result = ctx.prometheus.query(f"sum({series})")
        return float(result[0]["value"][1]) if result else None

    value = poll(ctx, attempt)
    if value is None:
        raise Failed(f"no {series} series in Prometheus within the wait")
    return f"{value:g} request(s) counted from {client} to {server}"


def _scraped(ctx: Context) -> str:
    return scraped(ctx, FRONTEND_JOB)


def scraped(ctx: Context, job: str) -> str:
    """Where Alloy scraped `job`, once Prometheus has `up{job} == 1`."""

    def attempt() -> list[Any] | None:
        return ctx.prometheus.query(f'up{{job="{job}"}} == 1') or None

    found = poll(ctx, attempt)
    if not found:
        raise Failed(f'no up{{job="{job}"}} == 1 in Prometheus within the wait')
    return f"scraped by Alloy at {found[0]['metric'].get('instance', '?')}"


def _both_logs(ctx: Context) -> str:
    return lines_of_every(ctx, _stage2_roll(ctx), (FRONTEND_CONTAINER, CONTAINER))


def lines_of_every(ctx: Context, roll: FreshRequest, containers: tuple[str, ...]) -> str:
    """How many lines each container wrote with the roll's trace id, once all have one."""
    query = (
        f'{{container_name=~"{"|".join(containers)}"}} |= "{roll.trace_id}" '
        f'| json | trace_id="{roll.trace_id}"'
    )

    def attempt() -> dict[str, int] | None:
        streams = ctx.loki.streams(query, roll.started - 60, time.time() + 5, 100)
        counts: dict[str, int] = {}
        for stream in streams:
            name = str(stream.get("stream", {}).get("container_name", "?"))
            counts[name] = counts.get(name, 0) + len(lines_of([stream]))
        return counts if set(containers) <= set(counts) else None

    counts = poll(ctx, attempt)
    if counts is None:
        raise Failed(f"Loki did not find lines of every service for the trace: {query}")
    lines = ", ".join(f"{count} from {name}" for name, count in sorted(counts.items()))
    return f"{lines}: {query}"
