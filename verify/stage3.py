"""Stage 3, Three Services: one roll through the frontend is one trace over the
frontend, the dice-roller and the die-service, and every signal shows both hops.

The roll made here is the checks' own: `GET /api/roll?die=d4` on the frontend (a die
only the die-service knows, and one that never fails). The boxes follow its trace: in
Tempo, five spans parent by parent, SERVER → CLIENT → SERVER → CLIENT → SERVER; in
Prometheus, the service graph's new edge and the die-service's own metrics, scraped by
Alloy; in Loki, the lines of all three services carrying the trace id.
"""

from __future__ import annotations

import time

from stackclient import decode_json

from .context import CONTAINER, SERVICE_NAME, Context, FreshRequest, poll
from .model import Failed, Run
from .otlp_json import spans_of
from .service import parse_traceresponse
from .stage2 import (
    FRONTEND_CONTAINER,
    FRONTEND_SERVICE,
    chain_of,
    complete_chain,
    edge,
    lines_of_every,
    scraped,
)
from .tempo import tempo_trace

__all__ = ["DIE", "DIE_SERVICE", "run_stage3_checks"]

GROUP = "Stage 3: Three Services"
DIE_SERVICE = "die-service"
"""The die-service's `service.name`, compose service (its metrics' `job`) and container."""
DIE = "d4"
"""The die rolled: the die-service's, 1-4, never failing, a short delay."""
SERVICES = (FRONTEND_SERVICE, SERVICE_NAME, DIE_SERVICE)

HINT_STAGE3 = (
    "Is stage 3 running? With Docker: `docker compose -f docker-compose.yml -f "
    "stages/stage3.yml up -d --build`, and `docker compose logs die-service dice-roller` "
    "says why not. Without Docker: `sudo python3 tasks.py nativestack --stage 3`. "
    "A 422 naming fair and risky only: the dice-roller has no DICE_DIE_SERVICE_URL."
)
HINT_TRACE = (
    "The dice-roller's call to the die-service must carry the trace on: its client is "
    "sandbox_telemetry's traced Upstream (dice-roller/src/dice_roller/catalogue.py), and "
    "the die-service exports to Alloy (OTEL_EXPORTER_OTLP_ENDPOINT in stages/stage3.yml)."
)
HINT_GRAPH = (
    "Alloy's otelcol.connector.servicegraph (stack/alloy/config.alloy) pairs the dice-roller's "
    "client span with the die-service's server span and remote-writes the edge."
)
HINT_SCRAPE = (
    "Alloy scrapes containers labelled sandbox.metrics.port (stack/alloy/config.alloy): is "
    "the die-service's label there (stages/stage3.yml)?"
)
HINT_LOGS = (
    "Every service's stdout reaches Loki through Alloy's docker discovery; the die-service's "
    f'stream is {{container_name="{DIE_SERVICE}"}}.'
)


def run_stage3_checks(ctx: Context, run: Run) -> None:
    run.check(
        GROUP,
        f"The frontend rolls the die-service's {DIE}: GET /api/roll?die={DIE}",
        HINT_STAGE3,
        lambda: _roll(ctx),
    )
    with run.relying_on(ctx.frontend, ctx.tempo.component):
        run.check(
            GROUP,
            "One trace crosses three services: frontend → dice-roller → die-service",
            HINT_TRACE,
            lambda: _one_trace(ctx),
        )
    run.check(
        GROUP,
        f"The service graph has the edge {SERVICE_NAME} → {DIE_SERVICE}",
        HINT_GRAPH,
        lambda: edge(ctx, SERVICE_NAME, DIE_SERVICE),
    )
    run.check(
        GROUP,
        f'Prometheus has the die-service\'s metrics: up{{job="{DIE_SERVICE}"}} == 1',
        HINT_SCRAPE,
        lambda: scraped(ctx, DIE_SERVICE),
    )
    run.check(
        GROUP,
        "All three services' log lines carry the roll's trace id",
        HINT_LOGS,
        lambda: lines_of_every(
            ctx, _stage3_roll(ctx), (FRONTEND_CONTAINER, CONTAINER, DIE_SERVICE)
        ),
    )


def _stage3_roll(ctx: Context) -> FreshRequest:
    roll = ctx.facts.get("stage3_roll")
    if not isinstance(roll, FreshRequest):
        raise Failed(f"no roll to follow: the frontend's roll of a {DIE} above failed")
    return roll


def _roll(ctx: Context) -> str:
    path = f"/api/roll?die={DIE}"
    started, clock = time.time(), time.perf_counter()
    response = ctx.api.request(ctx.frontend, "GET", "/api/roll", params={"die": DIE}, ok=(200, 422))
    seconds = time.perf_counter() - clock
    if response.status_code == 422:
        raise Failed(f"the frontend does not offer a {DIE}: {response.text:.160}")
    body = decode_json(ctx.frontend, path, response)
    roll = body.get("roll") if isinstance(body, dict) else None
    if not isinstance(roll, int) or not 1 <= roll <= 4:
        raise Failed(f"expected {{'roll': 1..4, ...}}, got {body!r:.120}")
    ids = parse_traceresponse(response.headers.get("traceresponse"))
    if ids is None:
        raise Failed(f"rolled {roll}, but the answer names no trace (traceresponse header)")
    ctx.facts["stage3_roll"] = FreshRequest(path, 200, *ids, started, seconds)
    return f"rolled {roll} in {seconds:.2f} s, trace {ids[0]}"


def _one_trace(ctx: Context) -> str:
    roll = _stage3_roll(ctx)
    trace = poll(ctx, lambda: complete_chain(ctx, roll.trace_id, SERVICES))
    if trace is None:
        found = tempo_trace(ctx, roll.trace_id)
        seen = sorted({s["service"] for s in spans_of(found)}) if found else []
        raise Failed(
            f"trace {roll.trace_id} did not reach Tempo from all three services within the "
            f"wait (services seen: {', '.join(seen) or 'none'})"
        )
    chain = chain_of(trace, SERVICES)
    names = " → ".join(f"{span['service']}:{span['name']}" for span in chain[::2])
    return f"{names} ({DIE_SERVICE} {chain[-1]['seconds'] * 1000:.1f} ms)"
