"""Probes of an outage as its caller sees it: the dice-roller is stopped, the frontend
in front of it keeps serving, and every signal of the failure comes from the frontend.

- the frontend's own answer: `GET /api/roll` answers 503 at once, `"reason":
  "unreachable"`, with the trace id of the failed roll;
- Prometheus: `frontend_upstream_errors_total{reason="unreachable"}` (scraped by
  Alloy) grows, and the dice-roller's own scrape fails (`up` is 0);
- Loki: the frontend's `"Roll failed upstream"` lines, `reason` unreachable;
- Tempo: the trace of such a roll holds the frontend's spans alone: its server span
  failed (`upstream.failure`), its client span failed with the connection error as an
  exception event, and no dice-roller span is under them;
- the service graph: Alloy pairs each client span with the server span it caused; a
  call nobody answered is counted towards a virtual node instead.

Then the dice-roller is started again, and its return is seen the same ways round:
it answers, and the frontend's calls to it succeed.

The Tempo probe fetches traces by id (the ids of the drill's own rolls and of the
lines found in Loki): TraceQL search leaves out the newest 30 s, and the native
stack's stand-in for Tempo serves one TraceQL shape only.
"""

from __future__ import annotations

import math
import time
from typing import Any

from verify.context import JOB, SERVICE_NAME
from verify.otlp_json import ERROR_STATUSES, SERVER_KINDS, spans_of
from verify.stage2 import FRONTEND_CONTAINER, FRONTEND_JOB, FRONTEND_SERVICE
from verify.tempo import tempo_trace

from .context import DrillContext, Reading, not_yet, seen
from .probes import (
    TRACES_PER_ROUND,
    Span,
    flagged_lines,
    prometheus_vector,
    sample_value,
    since,
    since_start,
)

__all__ = [
    "FAILED_LINES",
    "FRONTEND_LOGS",
    "MIN_CALLS",
    "REASON",
    "UPSTREAM",
    "callers_graph",
    "dice_roller_answers",
    "ends_at_frontend",
    "failed_lines",
    "frontend_answers_503",
    "rolls_succeed_again",
    "scrape_fails",
    "trace_ends_at_frontend",
    "upstream_errors",
]

UPSTREAM = "dice-roller"
"""The frontend's `upstream` label for the dice-roller (frontend/src/frontend/metrics.py)."""
REASON = "unreachable"
"""The frontend's `reason` when no connection to the dice-roller could be made."""
FRONTEND_LOGS = f'{{container_name="{FRONTEND_CONTAINER}"}}'
FAILED_LINES = f'{FRONTEND_LOGS} | json | message="Roll failed upstream" | reason="{REASON}"'
"""LogQL: the frontend's lines of rolls that found no dice-roller."""
MIN_CALLS = 10
"""Failed calls (during the outage), then successful ones (after), that make the point."""
KEY = "upstream-down"
"""Where the probes leave trace ids for one another in `ctx.found`."""
CLIENT_KINDS = ("SPAN_KIND_CLIENT", "3")

_ERRORS = f'frontend_upstream_errors_total{{job="{FRONTEND_JOB}", upstream="{UPSTREAM}"}}'
_ANSWERS = f'http_requests_total{{job="{FRONTEND_JOB}", handler="/api/roll"}}'
_CALLS = (
    f'frontend_upstream_request_duration_seconds_count{{job="{FRONTEND_JOB}", '
    f'upstream="{UPSTREAM}"}}'
)
_UNANSWERED = (
    f'traces_service_graph_request_failed_total{{client="{FRONTEND_SERVICE}", '
    'connection_type="virtual_node"}'
)


def _by(ctx: DrillContext, expr: str, label: str) -> dict[str, float]:
    return {
        str(row.get("metric", {}).get(label)): sample_value(row)
        for row in prometheus_vector(ctx, expr)
        if isinstance(row, dict)
    }


def _keep_trace(ctx: DrillContext, trace_id: object) -> None:
    rolled: list[str] = ctx.found.setdefault(f"{KEY}:rolled", [])
    if isinstance(trace_id, str) and trace_id and trace_id not in rolled:
        rolled.append(trace_id)


def frontend_answers_503(ctx: DrillContext) -> Reading:
    """A roll of the drill's own through the frontend: a quick 503 naming the dice-roller
    unreachable (its trace id is kept for `trace_ends_at_frontend`)."""
    began = time.monotonic()
    response = ctx.api.request(
        ctx.verify.frontend, "GET", "/api/roll", params={"die": "fair"}, ok=tuple(range(200, 600))
    )
    milliseconds = (time.monotonic() - began) * 1000
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    answer = body if isinstance(body, dict) else {}
    reason = answer.get("reason")
    if response.status_code == 503 and reason == REASON:
        _keep_trace(ctx, answer.get("trace_id"))
        detail = str(answer.get("detail", ""))[:120]
        return seen(f"HTTP 503 in {milliseconds:.0f} ms: {detail}")
    said = f", reason {reason}" if reason else ""
    return not_yet(
        f"a roll answered HTTP {response.status_code}{said}: is the dice-roller stopped?"
    )


def upstream_errors(ctx: DrillContext) -> Reading:
    """The frontend's calls to the dice-roller that found it unreachable since the drill
    stopped it (the "Upstream Errors by Reason" panel), and its 5xx answers ("Frontend
    Error Ratio")."""
    errors = _by(ctx, since_start(ctx, _ERRORS, "reason"), "reason")
    answers = _by(ctx, since_start(ctx, _ANSWERS, "status"), "status")
    unreachable = errors.get(REASON, 0.0)
    total, failed = sum(answers.values()), answers.get("5xx", 0.0)
    share = f" ({failed / total:.0%})" if total else ""
    detail = (
        f"{unreachable:.0f} calls to the dice-roller {REASON}; {failed:.0f} of {total:.0f} "
        f"/api/roll answers 5xx{share}"
    )
    if unreachable < MIN_CALLS:
        return not_yet(f"{detail} (waiting for {MIN_CALLS})")
    return seen(detail)


def scrape_fails(ctx: DrillContext) -> Reading:
    """Prometheus's own scrape of the dice-roller fails: `up` was 0 at a scrape made
    since the drill stopped it."""
    selector = f'up{{job="{JOB}"}}'
    window = math.floor(ctx.elapsed())
    if window < 1:
        return not_yet("no scrape since the drill began yet")
    rows = prometheus_vector(ctx, f"min_over_time({selector}[{window}s])")
    if rows and sample_value(rows[0]) == 0:
        return seen(f"{selector} fell to 0: Prometheus's scrapes of it fail")
    if not rows:
        return not_yet(f"no {selector} sample since the drill began")
    return not_yet(f"{selector} is still 1 (Prometheus scrapes it every 5 s)")


def failed_lines(ctx: DrillContext) -> Reading:
    """The frontend's "Roll failed upstream" lines with reason unreachable, since the
    drill began (their trace ids are kept for `trace_ends_at_frontend`)."""
    return flagged_lines(ctx, KEY, {f"reason={REASON}": FAILED_LINES})


def ends_at_frontend(spans: list[Span]) -> str | None:
    """What shows that the trace of `spans` ended at the frontend: its server span failed
    with `upstream.failure` unreachable, its client span failed with the connection
    error recorded, and no dice-roller span is there. None when the trace is not that."""
    server = next(
        (
            span
            for span in spans
            if span["service"] == FRONTEND_SERVICE
            and span["kind"] in SERVER_KINDS
            and span["attributes"].get("upstream.failure") == REASON
            and span["status"] in ERROR_STATUSES
        ),
        None,
    )
    if server is None or any(span["service"] == SERVICE_NAME for span in spans):
        return None
    for client in spans:
        if (
            client["service"] == FRONTEND_SERVICE
            and client["kind"] in CLIENT_KINDS
            and client["parent_id"] == server["span_id"]
            and client["status"] in ERROR_STATUSES
        ):
            error = next(
                (event["attributes"] for event in client["events"] if event["name"] == "exception"),
                None,
            )
            if error is None:
                return None
            return (
                f"{server['name']!r} ERROR, upstream.failure={REASON}; its {client['name']!r} "
                f"call ERROR, {error.get('exception.type')}: {error.get('exception.message')}; "
                f"no {SERVICE_NAME} span"
            )
    return None


def trace_ends_at_frontend(ctx: DrillContext) -> Reading:
    """A trace of a failed roll (the drill's own, or a logged one) in Tempo, by id, that
    ends at the frontend (`ends_at_frontend`)."""
    if f"{KEY}:matched" in ctx.found:
        return seen(ctx.found[f"{KEY}:matched"])
    checked: set[str] = ctx.found.setdefault(f"{KEY}:checked", set())
    logged = [i for ids in ctx.found.get(KEY, {}).values() for i in ids]
    candidates = [*ctx.found.get(f"{KEY}:rolled", []), *logged]
    pending = [i for i in dict.fromkeys(candidates) if i not in checked][:TRACES_PER_ROUND]
    for trace_id in pending:
        trace = tempo_trace(ctx.verify, trace_id)
        if trace is None:
            continue  # not in Tempo yet: ask again next round
        spans = spans_of(trace)
        if not any(span["kind"] in SERVER_KINDS for span in spans):
            continue  # the server span ends last, and may come in a later batch
        checked.add(trace_id)
        found = ends_at_frontend(spans)
        if found is not None:
            ctx.found[f"{KEY}:matched"] = f"trace {trace_id}: {found}"
            return seen(ctx.found[f"{KEY}:matched"])
    if not candidates:
        return not_yet("no failed roll's trace id yet (from the frontend's 503s or Loki)")
    return not_yet(
        f"no trace that ends at the frontend yet ({len(checked)} of {len(candidates)} read)"
    )


def callers_graph(ctx: DrillContext) -> Reading:
    """The service graph: the frontend's calls that no server span answered, which Alloy
    counts towards a virtual node (its `connection_type="virtual_node"` edges)."""
    edges = _by(ctx, since_start(ctx, _UNANSWERED, "server"), "server")
    calls = sum(edges.values())
    if calls < 1:
        return not_yet("no failed frontend call to a virtual node counted yet")
    nodes = ", ".join(f"{server!r} {count:.0f}" for server, count in sorted(edges.items()))
    return seen(f"failed calls from the frontend to a virtual node: {nodes}")


def dice_roller_answers(ctx: DrillContext) -> Reading:
    """The dice-roller answers `GET /` again (unreachable reads as "not yet")."""
    response = ctx.api.request(ctx.verify.service, "GET", "/")
    return seen(f"GET / answered HTTP {response.status_code}")


def rolls_succeed_again(ctx: DrillContext) -> Reading:
    """The frontend's calls to the dice-roller succeed again, since it was started."""
    if ctx.resumed is None:
        return not_yet("the dice-roller has not been started again")
    outcomes = _by(ctx, since(ctx.resumed, _CALLS, "outcome"), "outcome")
    succeeded = outcomes.get("success", 0.0)
    detail = f"{succeeded:.0f} calls to the dice-roller succeeded since it started"
    if succeeded < MIN_CALLS:
        return not_yet(f"{detail} (waiting for {MIN_CALLS})")
    return seen(detail)
