"""Probes of a database outage (database-down, stage 5): PostgreSQL is stopped, the
die-service keeps answering, and the rolls of the dice-roller in front of it fail.

The outage is one hop further from the rolls than die-service-down's: the drill rolls
at the dice-roller, which asks the die-service for each die, which asks PostgreSQL.
`DATABASE_HOP` says so in upstream_probes' terms (the die-service the caller, the
database its callee), so the same probes read it:

- the dice-roller's answer: a roll answers 502 at once, quoting the die-service's 503
  that names the database (`database_fails_the_roll`);
- Prometheus: the die-service counts the lookups the database failed,
  `die_service_db_errors_total{reason="unreachable"}` (`upstream_errors`), and
  postgres_exporter reports `pg_up` 0 while its own scrape still succeeds
  (`exporter_reports_down`);
- Loki: the die-service's "Database unavailable" lines (`failed_lines`);
- Tempo: a trace of such a roll whose die-service span failed, a 503, with the reason
  as its `database.failure` (`trace_of_database_failure`).

Then PostgreSQL is started again; the die-service needs no restart (its pool opens new
connections), and the return is seen as die-service-down's is: a roll answers 200,
and the rolls succeed (`callee_answers`, `rolls_succeed_again`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from verify.context import SERVICE_NAME
from verify.otlp_json import ERROR_STATUSES, SERVER_KINDS
from verify.stage3 import DIE_SERVICE

from .context import DrillContext, Reading, not_yet, seen
from .probes import Span, prometheus_vector, sample_value
from .upstream_probes import (
    DIE_SERVICE_HOP,
    REASON,
    caller_fails,
    lowest_since_start,
    trace_of_failed_roll,
)

__all__ = [
    "DATABASE",
    "DATABASE_DOWN_LINES",
    "DATABASE_HOP",
    "DIE_SERVICE_SAYS",
    "EXPORTER_JOB",
    "POSTGRES",
    "database_failed",
    "database_fails_the_roll",
    "exporter_reports_down",
    "trace_of_database_failure",
]

POSTGRES = "postgres"
"""PostgreSQL's compose service (stages/stage5.yml), which the drill stops."""
DATABASE = "database"
"""What the probes call it: it sends no span and has no `service.name`."""
EXPORTER_JOB = "postgres-exporter"
"""postgres_exporter's `job`: Alloy scrapes its container by its label."""
DIE_SERVICE_SAYS = f"The {DIE_SERVICE} answered 503: The database "
"""How the dice-roller's 502 begins when the die-service's lookup found no database
(sandbox_telemetry's `error_status`, quoting die_service/database.py's detail)."""
DATABASE_DOWN_LINES = (
    f'{{container_name="{DIE_SERVICE}"}} | json | message="Database unavailable" '
    f'| reason="{REASON}"'
)
"""LogQL: the die-service's lines of lookups that found no database."""

DATABASE_HOP = replace(
    DIE_SERVICE_HOP,
    key="database-down",
    caller=DIE_SERVICE,
    callee=DATABASE,
    errors=f'die_service_db_errors_total{{job="{DIE_SERVICE}"}}',
    scrape_job=EXPORTER_JOB,
    failed_lines=DATABASE_DOWN_LINES,
)
"""Stage 5: the die-service in front of PostgreSQL (database-down). The drill's rolls
go to the dice-roller in front of both, as die-service-down's do: `caller_component`,
`roll_path`, `answers` and `successes` are die-service-down's, the dice-roller's."""


def database_fails_the_roll(ctx: DrillContext) -> Reading:
    """A roll of the drill's own, asked of the dice-roller: a quick 502 quoting the
    die-service's 503 that names the database (its trace id is kept for Tempo)."""

    def names_the_database(answer: dict[str, Any]) -> bool:
        return str(answer.get("detail", "")).startswith(DIE_SERVICE_SAYS)

    return caller_fails(ctx, DATABASE_HOP, 502, names_the_database)


def exporter_reports_down(ctx: DrillContext) -> Reading:
    """postgres_exporter's `pg_up` was 0 at a scrape since the drill began, while the
    exporter's own scrape went on (`up` stays 1: it answers, the database does not)."""
    selector = f'pg_up{{job="{EXPORTER_JOB}"}}'
    rows = lowest_since_start(ctx, selector)
    if rows is None:
        return not_yet("no scrape since the drill began yet")
    if not rows:
        return not_yet(f"no {selector} sample since the drill began")
    if sample_value(rows[0]) != 0:
        return not_yet(f"{selector} is still 1 (Alloy scrapes the exporter every 5 s)")
    up = prometheus_vector(ctx, f'up{{job="{EXPORTER_JOB}"}}')
    scrape = f"up is {sample_value(up[0]):g}" if up else "no up sample"
    return seen(f"{selector} fell to 0 ({scrape}: the exporter answers, the database does not)")


def database_failed(spans: list[Span], reason: str = REASON) -> str | None:
    """What shows that the trace of `spans` met the database down (or slow): the
    die-service's server span failed, answering 503, its `database.failure` saying why
    (`reason`: `unreachable`, or `timeout` for database-slow), and
    the dice-roller's, when it is in already, says its upstream answered an error
    status. None when the trace is not that."""
    failed = next(
        (
            span
            for span in spans
            if span["service"] == DIE_SERVICE
            and span["kind"] in SERVER_KINDS
            and span["status"] in ERROR_STATUSES
            and str(span["attributes"].get("http.response.status_code")) == "503"
            and span["attributes"].get("database.failure") == reason
        ),
        None,
    )
    if failed is None:
        return None
    found = f"the {DIE_SERVICE}'s {failed['name']!r} ERROR, HTTP 503, database.failure={reason}"
    for span in spans:
        failure = span["attributes"].get("upstream.failure")
        if span["service"] == SERVICE_NAME and span["kind"] in SERVER_KINDS and failure:
            found += f"; the {SERVICE_NAME}'s {span['name']!r} upstream.failure={failure}"
    return found


def trace_of_database_failure(ctx: DrillContext) -> Reading:
    """A trace of a failed roll in Tempo (the drill's own, or a logged one, by id)
    whose die-service span failed for want of the database (`database_failed`)."""
    return trace_of_failed_roll(
        ctx,
        DATABASE_HOP,
        database_failed,
        f"whose {DIE_SERVICE} span failed",
        complete=both_server_spans,
    )


def both_server_spans(spans: list[Span]) -> bool:
    """Whether the dice-roller's and the die-service's server spans are both in: each
    service sends its own batches, and the trace is judged once, when both are."""
    servers = {span["service"] for span in spans if span["kind"] in SERVER_KINDS}
    return {SERVICE_NAME, DIE_SERVICE} <= servers
