"""Probes of a dependency made slow by a flag: the die-service (die-service-slow, stage
3) or its database (database-slow, stage 5) answers, but late.

Nothing is stopped: the flag file (stack/flags/flags.json, which the die-service reads
too) slows each lookup of a die. The hops are upstream_probes' and database_probes',
whose probes read them, with `timeout` as the reason of the failed calls:

- die-service-slow (`die-service-latency-seconds: slow`, 1.5 s before each lookup):
  the dice-roller stops waiting after its 1 s and answers 504
  (`die_service_times_out`), counts `dice_die_service_errors_total{reason="timeout"}`
  and logs "Die unavailable" with reason timeout; the die-service's own lookups take
  1.5 s (`lookups_slower_than_the_wait`, its `http_request_duration_seconds`), each
  logged with the flag (`slow_lookups_logged`), and a trace shows the die-service's
  span outlasting the dice-roller's wait, carrying the flag's evaluation
  (`trace_of_slow_lookup`).
- database-slow, in two steps. `database-latency-seconds: slow` (0.3 s, under the
  die-service's 0.4 s bound): every lookup succeeds, late; the query's p99 rises
  (`query_p99_rises`), the lookups are logged with the flag (`slow_queries_logged`),
  and a trace shows the SELECT waiting in `pg_sleep` (`trace_of_slow_query`). Then
  `stuck` (2 s, past the bound): the query is cut at 0.4 s, the die-service answers
  503 reason timeout, which the dice-roller turns into a 502
  (`database_times_out`); `die_service_db_errors_total{reason="timeout"}` and the
  "Database unavailable" lines say so, and the trace's SELECT span is an ERROR cut at
  the bound (`trace_of_cut_query`).

Then the flags go back, and the return is seen as an outage's: a roll answers 200, and
the rolls succeed (upstream_probes' `callee_answers`, `rolls_succeed_again`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from verify.context import CONTAINER, SERVICE_NAME
from verify.otlp_json import ERROR_STATUSES, SERVER_KINDS
from verify.stage3 import DIE_SERVICE

from .context import DrillContext, Reading, not_yet
from .database_probes import DATABASE_HOP, DIE_SERVICE_SAYS, database_failed
from .probes import (
    Span,
    flag_event,
    flag_variant,
    flagged_lines,
    p99_since_start,
    prometheus_vector,
    sample_value,
    since_start,
)
from .upstream_probes import (
    CLIENT_KINDS,
    DIE_SERVICE_HOP,
    caller_fails,
    trace_of_failed_roll,
)

__all__ = [
    "DATABASE_FLAG",
    "DATABASE_SLOW_HOP",
    "DATABASE_TIMEOUT",
    "DATABASE_TIMEOUT_LINES",
    "DIE_SERVICE_FLAG",
    "DIE_SERVICE_SLOW_HOP",
    "DIE_SERVICE_TIMEOUT",
    "DIE_TIMEOUT_LINES",
    "LOOKUP_BUCKETS",
    "QUERY_BUCKETS",
    "SLOW_LOOKUP_LINES",
    "SLOW_LOOKUP_SECONDS",
    "SLOW_QUERY_HOP",
    "SLOW_QUERY_LINES",
    "SLOW_QUERY_SECONDS",
    "STUCK_QUERY_SECONDS",
    "TIMEOUT",
    "database_times_out",
    "die_service_times_out",
    "gave_up_on_a_slow_lookup",
    "lookups_slower_than_the_wait",
    "query_cut_at_the_bound",
    "query_p99_rises",
    "served_by",
    "slept_in_the_query",
    "slow_lookups_logged",
    "slow_queries_logged",
    "trace_of_cut_query",
    "trace_of_slow_lookup",
    "trace_of_slow_query",
]

TIMEOUT = "timeout"
"""The `reason` of a call that waited past its bound (sandbox_telemetry.upstream, and
the die-service's database.py)."""
DIE_SERVICE_FLAG = "die-service-latency-seconds"
DATABASE_FLAG = "database-latency-seconds"
SLOW_LOOKUP_SECONDS = 1.5
"""`die-service-latency-seconds: slow` in stack/flags/flags.json."""
DIE_SERVICE_TIMEOUT = 1.0
"""How long the dice-roller waits for the die-service (DICE_DIE_SERVICE_TIMEOUT_SECONDS)."""
SLOW_QUERY_SECONDS = 0.3
"""`database-latency-seconds: slow`: under the die-service's bound."""
STUCK_QUERY_SECONDS = 2.0
"""`database-latency-seconds: stuck`: past it."""
DATABASE_TIMEOUT = 0.4
"""How long the die-service waits for the database (DIE_SERVICE_DATABASE_TIMEOUT_SECONDS)."""

DIE_SERVICE_LOGS = f'{{container_name="{DIE_SERVICE}"}}'
DIE_TIMEOUT_LINES = (
    f'{{container_name="{CONTAINER}"}} | json | message="Die unavailable" '
    f'| upstream="{DIE_SERVICE}" | reason="{TIMEOUT}"'
)
"""LogQL: the dice-roller's lines of rolls whose die-service did not answer in time."""
SLOW_LOOKUP_LINES = f'{DIE_SERVICE_LOGS} | json | feature_flags_die_service_latency_seconds="slow"'
"""LogQL: the die-service's lookups the flag slowed (logged once each ends, 1.5 s on)."""
SLOW_QUERY_LINES = (
    f'{DIE_SERVICE_LOGS} | json | message="Die found" '
    '| feature_flags_database_latency_seconds="slow"'
)
"""LogQL: the die-service's lookups whose query the flag slowed, and that succeeded."""
DATABASE_TIMEOUT_LINES = (
    f'{DIE_SERVICE_LOGS} | json | message="Database unavailable" | reason="{TIMEOUT}" '
    '| feature_flags_database_latency_seconds="stuck"'
)
"""LogQL: the die-service's lookups whose query it cut at its bound."""
LOOKUP_BUCKETS = (
    f'http_request_duration_seconds_bucket{{job="{DIE_SERVICE}", handler="/dice/{{name}}"}}'
)
"""The die-service's lookups (the "Die-Service Lookup Duration" panel of stage 3)."""
QUERY_BUCKETS = (
    f'die_service_db_query_duration_seconds_bucket{{job="{DIE_SERVICE}", query="one_die"}}'
)
"""The lookup's query (the "Query Duration by Query" panel of stage 5): only the
queries that ended are measured; one cut at the bound is an error instead."""

DIE_SERVICE_SLOW_HOP = replace(
    DIE_SERVICE_HOP, key="die-service-slow", reason=TIMEOUT, failed_lines=DIE_TIMEOUT_LINES
)
"""Stage 3: the dice-roller in front of a slow die-service (die-service-slow)."""
DATABASE_SLOW_HOP = replace(
    DATABASE_HOP, key="database-slow", reason=TIMEOUT, failed_lines=DATABASE_TIMEOUT_LINES
)
"""Stage 5: the die-service in front of a stuck database (database-slow's second step)."""
SLOW_QUERY_HOP = replace(DATABASE_SLOW_HOP, key="database-slow-query")
"""Its first step: where the probes of the slow, successful queries keep trace ids."""


def served_by(*services: str) -> Callable[[list[Span]], bool]:
    """A trace's completeness test: each of `services` has its server span in it (each
    service sends its spans in batches of its own, so one may come later)."""

    def complete(spans: list[Span]) -> bool:
        found = {span["service"] for span in spans if span["kind"] in SERVER_KINDS}
        return found.issuperset(services)

    return complete


def _server(spans: list[Span], service: str) -> Span | None:
    return next((s for s in spans if s["service"] == service and s["kind"] in SERVER_KINDS), None)


def _child(spans: list[Span], parent: Span) -> Span | None:
    return next(
        (
            s
            for s in spans
            if s["kind"] in CLIENT_KINDS
            and s["service"] == parent["service"]
            and s["parent_id"] == parent["span_id"]
        ),
        None,
    )


# ---------------------------------------------------------------- die-service-slow


def die_service_times_out(ctx: DrillContext) -> Reading:
    """A roll of the drill's own, asked of the dice-roller: a 504 after its wait, saying
    the die-service did not answer within it (its trace id is kept for Tempo)."""

    def late(answer: dict[str, Any]) -> bool:
        return str(answer.get("detail", "")).startswith(f"The {DIE_SERVICE} did not answer within")

    question = f"is {DIE_SERVICE_FLAG} slow in the flag file the {DIE_SERVICE} reads?"
    return caller_fails(ctx, DIE_SERVICE_SLOW_HOP, 504, late, question)


def lookups_slower_than_the_wait(ctx: DrillContext) -> Reading:
    """The p99 of the die-service's lookups since the drill began, against how long the
    dice-roller waits for one: the die-service measures the whole 1.5 s of each."""
    p99 = p99_since_start(ctx, LOOKUP_BUCKETS)
    if math.isnan(p99):
        return not_yet(f"no {DIE_SERVICE} lookup measured since the drill began")
    detail = (
        f"p99 of the {DIE_SERVICE}'s lookups {p99:.2f} s; the {SERVICE_NAME} waits "
        f"{DIE_SERVICE_TIMEOUT:g} s"
    )
    return Reading(p99 > DIE_SERVICE_TIMEOUT, detail)


def slow_lookups_logged(ctx: DrillContext) -> Reading:
    """The die-service's lines of lookups that carry the flag, since the drill began."""
    key = f"{DIE_SERVICE_SLOW_HOP.key}:lookups"
    return flagged_lines(ctx, key, {f"{DIE_SERVICE_FLAG}=slow": SLOW_LOOKUP_LINES})


def gave_up_on_a_slow_lookup(spans: list[Span]) -> str | None:
    """What shows that the trace of `spans` is a roll whose die-service was too slow:
    the dice-roller's server span failed with `upstream.failure` timeout, its call
    under it failed, and the die-service's server span, carrying the flag's
    evaluation, lasted longer than the dice-roller waited. None when it is not that."""
    roll = _server(spans, SERVICE_NAME)
    lookup = _server(spans, DIE_SERVICE)
    if roll is None or lookup is None:
        return None
    call = _child(spans, roll)
    event = flag_event(lookup, DIE_SERVICE_FLAG)
    if (
        roll["attributes"].get("upstream.failure") != TIMEOUT
        or roll["status"] not in ERROR_STATUSES
        or call is None
        or call["status"] not in ERROR_STATUSES
        or event is None
        or lookup["seconds"] <= call["seconds"]
    ):
        return None
    return (
        f"the {SERVICE_NAME}'s {roll['name']!r} ERROR, upstream.failure={TIMEOUT}, its "
        f"call cut after {call['seconds']:.2f} s; the {DIE_SERVICE}'s {lookup['name']!r} "
        f"{lookup['seconds']:.2f} s, {DIE_SERVICE_FLAG}={flag_variant(event)}"
    )


def trace_of_slow_lookup(ctx: DrillContext) -> Reading:
    """A trace of a roll that timed out (the drill's own 504, or a logged one) whose
    die-service span outlasted the dice-roller's wait (`gave_up_on_a_slow_lookup`)."""
    return trace_of_failed_roll(
        ctx,
        DIE_SERVICE_SLOW_HOP,
        gave_up_on_a_slow_lookup,
        f"whose {DIE_SERVICE} span outlasted the wait",
        served_by(SERVICE_NAME, DIE_SERVICE),
    )


# ---------------------------------------------------------------- database-slow: slow


def query_p99_rises(ctx: DrillContext) -> Reading:
    """The p99 of the lookup's query since the drill began reached the flag's wait, and
    how many lookups the database failed meanwhile (none: the wait is under the bound)."""
    p99 = p99_since_start(ctx, QUERY_BUCKETS)
    if math.isnan(p99):
        return not_yet("no query measured since the drill began")
    errors = prometheus_vector(ctx, since_start(ctx, DATABASE_HOP.errors, "job"))
    failed = sum(sample_value(row) for row in errors)
    detail = (
        f"p99 of the one_die query {p99:.2f} s (the flag's wait {SLOW_QUERY_SECONDS:g} s); "
        f"{failed:.0f} lookups failed"
    )
    return Reading(p99 >= SLOW_QUERY_SECONDS, detail)


def slow_queries_logged(ctx: DrillContext) -> Reading:
    """The die-service's lines of lookups that found their die after the slowed query
    (their trace ids are kept for `trace_of_slow_query`)."""
    return flagged_lines(ctx, SLOW_QUERY_HOP.key, {f"{DATABASE_FLAG}=slow": SLOW_QUERY_LINES})


def _query(spans: list[Span]) -> tuple[Span, Span, dict[str, Any]] | None:
    """The die-service's server span that carries the database flag, its SELECT, and the
    flag's evaluation event."""
    lookup = _server(spans, DIE_SERVICE)
    if lookup is None:
        return None
    event = flag_event(lookup, DATABASE_FLAG)
    query = _child(spans, lookup)
    if event is None or query is None:
        return None
    if "pg_sleep" not in str(query["attributes"].get("db.statement", "")):
        return None
    return lookup, query, event


def slept_in_the_query(spans: list[Span]) -> str | None:
    """What shows that the trace of `spans` is a lookup slowed in the database: the
    die-service's span carries the flag, and its SELECT, whose statement sleeps in
    `pg_sleep`, lasted the flag's wait and succeeded. None when it is not that."""
    found = _query(spans)
    if found is None:
        return None
    lookup, query, event = found
    if query["status"] in ERROR_STATUSES or query["seconds"] < SLOW_QUERY_SECONDS:
        return None
    return (
        f"the {DIE_SERVICE}'s {lookup['name']!r} {lookup['seconds']:.2f} s, "
        f"{DATABASE_FLAG}={flag_variant(event)}; its {query['name']!r} "
        f"{query['seconds']:.2f} s: {query['attributes'].get('db.statement')}"
    )


def trace_of_slow_query(ctx: DrillContext) -> Reading:
    """A trace of a slowed lookup found in Loki whose SELECT waited (`slept_in_the_query`)."""
    return trace_of_failed_roll(
        ctx,
        SLOW_QUERY_HOP,
        slept_in_the_query,
        "whose SELECT waited in pg_sleep",
        served_by(DIE_SERVICE),
    )


# ---------------------------------------------------------------- database-slow: stuck


def database_times_out(ctx: DrillContext) -> Reading:
    """A roll of the drill's own, asked of the dice-roller: a 502 quoting the
    die-service's 503, the database not answering within its bound (trace id kept)."""

    def late(answer: dict[str, Any]) -> bool:
        said = f"{DIE_SERVICE_SAYS}did not answer within"
        return str(answer.get("detail", "")).startswith(said)

    question = f"is {DATABASE_FLAG} stuck in the flag file the {DIE_SERVICE} reads?"
    return caller_fails(ctx, DATABASE_SLOW_HOP, 502, late, question)


def query_cut_at_the_bound(spans: list[Span]) -> str | None:
    """What shows that the trace of `spans` met the database stuck: the die-service's
    span failed with `database.failure` timeout (`database_failed`), carrying the flag,
    and its SELECT is an ERROR cut at the bound, well before the flag's wait. None
    when it is not that."""
    failed = database_failed(spans, TIMEOUT)
    found = _query(spans)
    if failed is None or found is None:
        return None
    _, query, event = found
    if query["status"] not in ERROR_STATUSES or query["seconds"] >= STUCK_QUERY_SECONDS:
        return None
    return (
        f"{failed}; its {query['name']!r} ERROR after {query['seconds']:.2f} s "
        f"({DATABASE_FLAG}={flag_variant(event)}: it was to wait {STUCK_QUERY_SECONDS:g} s)"
    )


def trace_of_cut_query(ctx: DrillContext) -> Reading:
    """A trace of a failed roll (the drill's own, or a logged one) whose query the
    die-service cut at its bound (`query_cut_at_the_bound`)."""
    return trace_of_failed_roll(
        ctx,
        DATABASE_SLOW_HOP,
        query_cut_at_the_bound,
        "whose SELECT was cut at the bound",
        served_by(DIE_SERVICE),
    )
