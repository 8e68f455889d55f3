"""Probes of an outage as its caller sees it: a service is stopped, the service that
calls it keeps serving, and every signal of the failure comes from that caller.

Two such pairs (`Hop`): the frontend in front of the dice-roller (`FRONTEND_HOP`,
upstream-down, stage 2), and the dice-roller in front of the die-service
(`DIE_SERVICE_HOP`, die-service-down, stage 3); database_probes.py adds a third, the
die-service in front of PostgreSQL (database-down, stage 5), read with the same
machinery. For each of the first two:

- the caller's own answer: a roll answers 503 at once, naming the stopped service
  unreachable, with the trace id of the failed roll;
- Prometheus: the caller's count of calls that found it unreachable grows, and the
  stopped service's own scrape fails (`up` is 0);
- Loki: the caller's lines of those rolls, `reason` unreachable;
- Tempo: the trace of such a roll holds no span of the stopped service: the caller's
  server span failed (`upstream.failure`), its client span failed with the connection
  error as an exception event, and nothing is under them;
- the service graph: Alloy pairs each client span with the server span it caused; a
  call nobody answered is counted towards a virtual node instead.

Then the service is started again, and its return is seen the same ways round:
it answers, and the caller's rolls succeed.

The Tempo probe fetches traces by id (the ids of the drill's own rolls and of the
lines found in Loki): TraceQL search leaves out the newest 30 s, and the native
stack's stand-in for Tempo serves one TraceQL shape only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from stackclient import Component
from verify.context import CONTAINER, JOB, SERVICE_NAME
from verify.otlp_json import ERROR_STATUSES, SERVER_KINDS, spans_of
from verify.service import parse_traceresponse
from verify.stage2 import FRONTEND_CONTAINER, FRONTEND_JOB, FRONTEND_SERVICE
from verify.stage3 import DIE_SERVICE
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
    "DIE_SERVICE_HOP",
    "DIE_UNAVAILABLE_LINES",
    "FAILED_LINES",
    "FRONTEND_HOP",
    "FRONTEND_LOGS",
    "MIN_CALLS",
    "REASON",
    "UPSTREAM",
    "Hop",
    "answers_503",
    "callee_answers",
    "caller_fails",
    "callers_graph",
    "dice_roller_answers",
    "ends_at_caller",
    "ends_at_frontend",
    "failed_lines",
    "frontend_answers_503",
    "has_server_span",
    "lowest_since_start",
    "rolls_succeed_again",
    "scrape_fails",
    "trace_ends_at_caller",
    "trace_ends_at_frontend",
    "trace_of_failed_roll",
    "upstream_errors",
]

UPSTREAM = "dice-roller"
"""The frontend's `upstream` label for the dice-roller (frontend/src/frontend/metrics.py)."""
REASON = "unreachable"
"""The `reason` (sandbox_telemetry.upstream) when no connection could be made."""
FRONTEND_LOGS = f'{{container_name="{FRONTEND_CONTAINER}"}}'
FAILED_LINES = f'{FRONTEND_LOGS} | json | message="Roll failed upstream" | reason="{REASON}"'
"""LogQL: the frontend's lines of rolls that found no dice-roller."""
DIE_UNAVAILABLE_LINES = (
    f'{{container_name="{CONTAINER}"}} | json | message="Die unavailable" '
    f'| upstream="{DIE_SERVICE}" | reason="{REASON}"'
)
"""LogQL: the dice-roller's lines of rolls that found no die-service."""
MIN_CALLS = 10
"""Failed calls (during the outage), then successful ones (after), that make the point."""
CLIENT_KINDS = ("SPAN_KIND_CLIENT", "3")


@dataclass(frozen=True)
class Hop:
    """A caller and the service behind it that a drill stops: where each probe reads
    the caller's side of the outage, and the stopped service's own scrape."""

    key: str
    """Where the probes leave trace ids for one another in `ctx.found`."""
    caller: str
    """The caller's `service.name`."""
    callee: str
    """The stopped service's `service.name` (its compose service too); for one that
    sends no spans (the database), what the probes call it."""
    caller_component: Callable[[DrillContext], Component]
    """Where the drill's own rolls go: the caller, or the service in front of it."""
    roll_path: str
    """The caller's roll endpoint, asked with `?die=fair`."""
    errors: str
    """PromQL: the caller's counter of calls to the callee that failed, by `reason`."""
    answers: str
    """PromQL: the caller's answers to rolls, by `status` (2xx, 5xx...)."""
    successes: str
    """PromQL: the caller's counter whose `outcome_label` is `success_value` for a roll
    that the callee served."""
    outcome_label: str
    success_value: str
    successes_are: str
    """What `successes` counts, in words."""
    scrape_job: str
    """The callee's `job` in Prometheus."""
    scraper: str
    """Who scrapes it: Prometheus itself, or Alloy (by its container's label)."""
    failed_lines: str
    """LogQL: the caller's lines of rolls that found the callee unreachable (or what
    `reason` says)."""
    reason: str = REASON
    """The `reason` of the failed calls the drill waits for: `unreachable` for a stopped
    service; `timeout` for one made slow by a flag (drills/slow_probes.py)."""

    @property
    def unanswered(self) -> str:
        """PromQL: the caller's calls that no server span answered (the service graph)."""
        return (
            f'traces_service_graph_request_failed_total{{client="{self.caller}", '
            'connection_type="virtual_node"}'
        )


FRONTEND_HOP = Hop(
    key="upstream-down",
    caller=FRONTEND_SERVICE,
    callee=SERVICE_NAME,
    caller_component=lambda ctx: ctx.verify.frontend,
    roll_path="/api/roll",
    errors=f'frontend_upstream_errors_total{{job="{FRONTEND_JOB}", upstream="{UPSTREAM}"}}',
    answers=f'http_requests_total{{job="{FRONTEND_JOB}", handler="/api/roll"}}',
    successes=(
        f'frontend_upstream_request_duration_seconds_count{{job="{FRONTEND_JOB}", '
        f'upstream="{UPSTREAM}"}}'
    ),
    outcome_label="outcome",
    success_value="success",
    successes_are="calls to the dice-roller",
    scrape_job=JOB,
    scraper="Prometheus",
    failed_lines=FAILED_LINES,
)
"""Stage 2: the frontend in front of the dice-roller (upstream-down)."""

DIE_SERVICE_HOP = Hop(
    key="die-service-down",
    caller=SERVICE_NAME,
    callee=DIE_SERVICE,
    caller_component=lambda ctx: ctx.verify.service,
    roll_path="/roll",
    errors=f'dice_die_service_errors_total{{job="{JOB}"}}',
    answers=f'http_requests_total{{job="{JOB}", handler="/roll"}}',
    successes=f'dice_rolls_total{{job="{JOB}"}}',
    outcome_label="result",
    success_value="success",
    successes_are="rolls of the dice-roller",
    scrape_job=DIE_SERVICE,
    scraper="Alloy",
    failed_lines=DIE_UNAVAILABLE_LINES,
)
"""Stage 3: the dice-roller in front of the die-service (die-service-down)."""


def _by(ctx: DrillContext, expr: str, label: str) -> dict[str, float]:
    return {
        str(row.get("metric", {}).get(label)): sample_value(row)
        for row in prometheus_vector(ctx, expr)
        if isinstance(row, dict)
    }


def _keep_trace(ctx: DrillContext, hop: Hop, trace_id: object) -> None:
    rolled: list[str] = ctx.found.setdefault(f"{hop.key}:rolled", [])
    if isinstance(trace_id, str) and trace_id and trace_id not in rolled:
        rolled.append(trace_id)


def _roll_at_caller(ctx: DrillContext, hop: Hop) -> tuple[httpx.Response, float]:
    """A fair roll of the drill's own, asked of the caller, whatever it answers, and how
    many milliseconds the answer took."""
    began = time.monotonic()
    response = ctx.api.request(
        hop.caller_component(ctx),
        "GET",
        hop.roll_path,
        params={"die": "fair"},
        ok=tuple(range(200, 600)),
    )
    return response, (time.monotonic() - began) * 1000


def caller_fails(
    ctx: DrillContext,
    hop: Hop,
    status: int,
    says: Callable[[dict[str, Any]], bool],
    question: str | None = None,
) -> Reading:
    """A roll of the drill's own, asked of the caller: a `status` whose JSON body
    `says` what the outage is (its trace id is kept for the Tempo probe). `question`:
    what to ask while it answers otherwise (by default, whether the callee is stopped)."""
    response, milliseconds = _roll_at_caller(ctx, hop)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    answer = body if isinstance(body, dict) else {}
    reason = answer.get("reason")
    detail = str(answer.get("detail", ""))
    if response.status_code == status and says(answer):
        ids = parse_traceresponse(response.headers.get("traceresponse"))
        _keep_trace(ctx, hop, answer.get("trace_id") or (ids[0] if ids else None))
        return seen(f"HTTP {status} in {milliseconds:.0f} ms: {detail[:120]}")
    said = f", reason {reason}" if reason else ""
    question = question or f"is the {hop.callee} stopped?"
    return not_yet(f"a roll answered HTTP {response.status_code}{said}: {question}")


def answers_503(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """A roll of the drill's own, asked of the caller: a quick 503 naming the callee
    unreachable (its trace id is kept for `trace_ends_at_caller`)."""

    def unreachable(answer: dict[str, Any]) -> bool:
        detail = str(answer.get("detail", ""))
        return answer.get("reason") == REASON or detail.startswith(f"The {hop.callee} is {REASON}")

    return caller_fails(ctx, hop, 503, unreachable)


def frontend_answers_503(ctx: DrillContext) -> Reading:
    """upstream-down: the frontend's roll answers 503, the dice-roller unreachable."""
    return answers_503(ctx, FRONTEND_HOP)


def upstream_errors(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """The caller's calls to the callee that found it unreachable (`hop.reason`) since
    the drill stopped it (upstream-down: the "Upstream Errors by Reason" panel;
    die-service-down: "Die-Service Failures by Reason"), and its 5xx answers to rolls."""
    errors = _by(ctx, since_start(ctx, hop.errors, "reason"), "reason")
    answers = _by(ctx, since_start(ctx, hop.answers, "status"), "status")
    counted = errors.get(hop.reason, 0.0)
    total, failed = sum(answers.values()), answers.get("5xx", 0.0)
    share = f" ({failed / total:.0%})" if total else ""
    detail = (
        f"{counted:.0f} calls to the {hop.callee} {hop.reason}; {failed:.0f} of {total:.0f} "
        f"{hop.roll_path} answers 5xx{share}"
    )
    if counted < MIN_CALLS:
        return not_yet(f"{detail} (waiting for {MIN_CALLS})")
    return seen(detail)


def lowest_since_start(ctx: DrillContext, selector: str) -> list[dict[str, Any]] | None:
    """The lowest value of each series of `selector` since the drill began (None in its
    first second, which holds no sample yet)."""
    window = math.floor(ctx.elapsed())
    if window < 1:
        return None
    return prometheus_vector(ctx, f"min_over_time({selector}[{window}s])")


def scrape_fails(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """The stopped service's own scrape fails: `up` was 0 at a scrape made since the
    drill stopped it.

    Prometheus scrapes the dice-roller itself; Alloy scrapes the services of later
    stages, found by their container's label, and writes `up` to Prometheus as it
    writes their metrics. Docker's discovery lists running containers only, so under
    compose a stopped one's target goes away within Alloy's refresh (5 s): its series
    then ends (a stale marker) instead of falling to 0, which says the same."""
    selector = f'up{{job="{hop.scrape_job}"}}'
    rows = lowest_since_start(ctx, selector)
    if rows is None:
        return not_yet("no scrape since the drill began yet")
    if rows and sample_value(rows[0]) == 0:
        return seen(f"{selector} fell to 0: {hop.scraper}'s scrapes of it fail")
    if not rows:
        return not_yet(f"no {selector} sample since the drill began")
    if hop.scraper != "Prometheus" and not prometheus_vector(ctx, selector):
        return seen(f"{selector} ended: {hop.scraper} no longer finds a target to scrape")
    return not_yet(f"{selector} is still 1 ({hop.scraper} scrapes it every 5 s)")


def failed_lines(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """The caller's lines of failed rolls with reason unreachable (`hop.reason`), since
    the drill began (their trace ids are kept for `trace_ends_at_caller`)."""
    return flagged_lines(ctx, hop.key, {f"reason={hop.reason}": hop.failed_lines})


def ends_at_caller(spans: list[Span], hop: Hop = FRONTEND_HOP) -> str | None:
    """What shows that the trace of `spans` ended at the caller: its server span failed
    with `upstream.failure` unreachable, its client span under it failed with the
    connection error recorded, and no span of the callee is there. None when the trace
    is not that."""
    server = next(
        (
            span
            for span in spans
            if span["service"] == hop.caller
            and span["kind"] in SERVER_KINDS
            and span["attributes"].get("upstream.failure") == REASON
            and span["status"] in ERROR_STATUSES
        ),
        None,
    )
    if server is None or any(span["service"] == hop.callee for span in spans):
        return None
    for client in spans:
        if (
            client["service"] == hop.caller
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
                f"no {hop.callee} span"
            )
    return None


def ends_at_frontend(spans: list[Span]) -> str | None:
    """upstream-down: the trace ended at the frontend (`ends_at_caller`)."""
    return ends_at_caller(spans, FRONTEND_HOP)


def has_server_span(spans: list[Span]) -> bool:
    """Whether a trace holds a server span: the caller's ends last, and may come in a
    later batch than its client span."""
    return any(span["kind"] in SERVER_KINDS for span in spans)


def trace_of_failed_roll(
    ctx: DrillContext,
    hop: Hop,
    match: Callable[[list[Span]], str | None],
    what: str,
    complete: Callable[[list[Span]], bool] = has_server_span,
) -> Reading:
    """A trace of a failed roll (the drill's own, or a logged one) in Tempo, by id, that
    `match` describes (None for a trace that is not the one wanted); `what` it is, in
    words, for the reading while none is found. A trace is judged once `complete` says
    the span that ends last is in; until then it is asked for again."""
    key = hop.key
    if f"{key}:matched" in ctx.found:
        return seen(ctx.found[f"{key}:matched"])
    checked: set[str] = ctx.found.setdefault(f"{key}:checked", set())
    logged = [i for ids in ctx.found.get(key, {}).values() for i in ids]
    candidates = [*ctx.found.get(f"{key}:rolled", []), *logged]
    pending = [i for i in dict.fromkeys(candidates) if i not in checked][:TRACES_PER_ROUND]
    for trace_id in pending:
        trace = tempo_trace(ctx.verify, trace_id)
        if trace is None:
            continue  # not in Tempo yet: ask again next round
        spans = spans_of(trace)
        if not complete(spans):
            continue  # the span that ends last may come in a later batch
        checked.add(trace_id)
        found = match(spans)
        if found is not None:
            ctx.found[f"{key}:matched"] = f"trace {trace_id}: {found}"
            return seen(ctx.found[f"{key}:matched"])
    if not candidates:
        return not_yet("no failed roll's trace id yet (from the drill's own rolls or Loki)")
    return not_yet(f"no trace {what} yet ({len(checked)} of {len(candidates)} read)")


def trace_ends_at_caller(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """A trace of a failed roll in Tempo that ends at the caller (`ends_at_caller`)."""
    return trace_of_failed_roll(
        ctx, hop, lambda spans: ends_at_caller(spans, hop), f"that ends at the {hop.caller}"
    )


def trace_ends_at_frontend(ctx: DrillContext) -> Reading:
    """upstream-down: a trace that ends at the frontend (`trace_ends_at_caller`)."""
    return trace_ends_at_caller(ctx, FRONTEND_HOP)


def callers_graph(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """The service graph: the caller's calls that no server span answered, which Alloy
    counts towards a virtual node (its `connection_type="virtual_node"` edges)."""
    edges = _by(ctx, since_start(ctx, hop.unanswered, "server"), "server")
    calls = sum(edges.values())
    if calls < 1:
        return not_yet(f"no failed {hop.caller} call to a virtual node counted yet")
    nodes = ", ".join(f"{server!r} {count:.0f}" for server, count in sorted(edges.items()))
    return seen(f"failed calls from the {hop.caller} to a virtual node: {nodes}")


def dice_roller_answers(ctx: DrillContext) -> Reading:
    """The dice-roller answers `GET /` again (unreachable reads as "not yet")."""
    response = ctx.api.request(ctx.verify.service, "GET", "/")
    return seen(f"GET / answered HTTP {response.status_code}")


def callee_answers(ctx: DrillContext, hop: Hop) -> Reading:
    """The callee answers again, as its caller finds it: a roll of the drill's own,
    asked of the caller, answers 200 (the caller got what it asked the callee)."""
    response, milliseconds = _roll_at_caller(ctx, hop)
    if response.status_code == 200:
        return seen(
            f"GET {hop.roll_path}?die=fair answered HTTP 200 in {milliseconds:.0f} ms: "
            f"the {hop.caller} got its answer from the {hop.callee}"
        )
    return not_yet(f"GET {hop.roll_path}?die=fair still answers HTTP {response.status_code}")


def rolls_succeed_again(ctx: DrillContext, hop: Hop = FRONTEND_HOP) -> Reading:
    """The caller's rolls through the callee succeed again, since it was back: started
    again, or (a flag drill) its flags put back (`ctx.resumed`)."""
    if ctx.resumed is None:
        return not_yet(f"the {hop.callee} is not back yet (started again, or its flags put back)")
    label = hop.outcome_label
    outcomes = _by(ctx, since(ctx.resumed, hop.successes, label), label)
    succeeded = outcomes.get(hop.success_value, 0.0)
    detail = f"{succeeded:.0f} {hop.successes_are} succeeded since the {hop.callee} was back"
    if succeeded < MIN_CALLS:
        return not_yet(f"{detail} (waiting for {MIN_CALLS})")
    return seen(detail)
