"""Stage 5, PostgreSQL: the die-service keeps the dice in a database, and every signal
shows the database as a hop of its own.

No roll of its own: these boxes follow stage 3's, the frontend's roll of a d4, whose
lookup at the die-service is now a query. In Tempo, a sixth span under the chain of
five: the die-service's CLIENT span `SELECT`, made by asyncpg's instrumentation, with
the statement it ran. In Prometheus, postgres_exporter's metrics, scraped by Alloy
through its container's label; the service graph's edge from the die-service to the
database, a node named by the spans' `db.name`; and the die-service's pool and query
metrics.
"""

from __future__ import annotations

from typing import Any

from .context import Context, FreshRequest, poll
from .model import Failed, Run
from .otlp_json import spans_of
from .stage2 import chain_of, scraped
from .stage3 import DIE, DIE_SERVICE, SERVICES
from .tempo import tempo_trace

__all__ = ["DATABASE", "EXPORTER", "POOL_METRICS", "query_span", "run_stage5_checks"]

GROUP = "Stage 5: PostgreSQL"
DATABASE = "dice"
"""The database's name (`POSTGRES_DB`, stages/stage5.yml): the spans' `db.name`, the
service graph's node, postgres_exporter's `datname`."""
EXPORTER = "postgres-exporter"
"""postgres_exporter's compose service: the `job` Alloy gives its metrics."""
DB_SYSTEM = "postgresql"
EDGE = f'traces_service_graph_request_total{{client="{DIE_SERVICE}", server="{DATABASE}"}}'
POOL_METRICS = (
    "die_service_db_connections",
    "die_service_db_connections_max",
    "die_service_db_pool_wait_seconds_count",
    "die_service_db_query_duration_seconds_count",
    "die_service_db_errors_total",
)
"""The die-service's database families (die-service/src/die_service/metrics.py), one
series name of each."""

HINT_STAGE5 = (
    "Is stage 5 running? With Docker: `docker compose -f docker-compose.yml -f "
    "stages/stage3.yml -f stages/stage5.yml up -d --build`, and `docker compose logs "
    "postgres postgres-exporter die-service` says why not. Without Docker: "
    "`sudo python3 tasks.py nativestack --stage 5`."
)
HINT_QUERY = (
    "The die-service reads the dice from PostgreSQL only with DIE_SERVICE_DATABASE_URL "
    "(stages/stage5.yml); without it they are in memory and no query runs. Each query's "
    "span comes from asyncpg's OpenTelemetry instrumentation (AsyncPGInstrumentor in "
    "die-service/src/die_service/app.py). " + HINT_STAGE5
)
HINT_EXPORTER = (
    "Alloy scrapes containers labelled sandbox.metrics.port (stack/alloy/config.alloy): is "
    f"the {EXPORTER} container running, with its label (stages/stage5.yml)? " + HINT_STAGE5
)
HINT_PG_UP = (
    "pg_up 0 is postgres_exporter failing to log in to PostgreSQL: its DATA_SOURCE_NAME "
    f"(stages/stage5.yml) names the database {DATABASE!r}, user and password; "
    f"`docker compose logs {EXPORTER} postgres` says why."
)
HINT_GRAPH = (
    "Alloy's otelcol.connector.servicegraph (stack/alloy/config.alloy) draws a CLIENT span "
    "with db.system as a call to a database, the node named by its db.name, "
    'connection_type="database". No edge: no query spans (the box above).'
)
HINT_POOL = (
    f'Alloy scrapes the die-service (job="{DIE_SERVICE}"); its database families exist only '
    "when it runs on PostgreSQL (DatabaseMetrics, die-service/src/die_service/metrics.py). "
    + HINT_STAGE5
)


def run_stage5_checks(ctx: Context, run: Run) -> None:
    with run.relying_on(ctx.frontend, ctx.tempo.component):
        run.check(
            GROUP,
            "The die-service's lookup is a query: a SELECT span with its db.statement, "
            "under GET /dice/{name}",
            HINT_QUERY,
            lambda: _query_span(ctx),
        )
    run.check(
        GROUP,
        f'Prometheus has postgres_exporter\'s metrics: up{{job="{EXPORTER}"}} == 1',
        HINT_EXPORTER,
        lambda: scraped(ctx, EXPORTER),
    )
    run.check(
        GROUP,
        f'postgres_exporter reaches the database: pg_up == 1, with datname="{DATABASE}"',
        HINT_PG_UP,
        lambda: _pg_up(ctx),
    )
    run.check(
        GROUP,
        f"The service graph has the edge {DIE_SERVICE} → {DATABASE}, the database",
        HINT_GRAPH,
        lambda: _edge(ctx),
    )
    run.check(
        GROUP,
        "Prometheus has the die-service's pool and query metrics: "
        f'die_service_db_*{{job="{DIE_SERVICE}"}}',
        HINT_POOL,
        lambda: _pool(ctx),
    )


def query_span(trace: Any) -> dict[str, Any]:
    """The query span of the trace's lookup: a CLIENT span `SELECT` of the die-service,
    child of its server span at the end of the chain frontend → dice-roller →
    die-service, with db.system, db.name and db.statement; raises `Failed` saying which
    of these is missing."""
    served = chain_of(trace, SERVICES)[-1]
    under = [span for span in spans_of(trace) if span["parent_id"] == served["span_id"]]
    calls = [s for s in under if s["service"] == DIE_SERVICE and "CLIENT" in s["kind"]]
    if not calls:
        seen = ", ".join(f"{s['service']}:{s['name']}" for s in under) or "none"
        raise Failed(
            f"no CLIENT span of {DIE_SERVICE} under its {served['name']} (span "
            f"{served['span_id']}): the lookup ran no traced query (spans under it: {seen})"
        )
    queries = [s for s in calls if s["attributes"].get("db.system") == DB_SYSTEM]
    if not queries:
        seen = ", ".join(
            f"{s['name']} (db.system={s['attributes'].get('db.system')!r})" for s in calls
        )
        raise Failed(f"no span with db.system={DB_SYSTEM!r} under {served['name']}: {seen}")
    span = queries[0]
    attributes = span["attributes"]
    statement = str(attributes.get("db.statement") or "")
    if span["name"] != "SELECT" or not statement.upper().startswith("SELECT"):
        raise Failed(
            f"the query span is {span['name']!r} with db.statement {statement!r:.120}: "
            "expected a SELECT and its statement"
        )
    if attributes.get("db.name") != DATABASE:
        raise Failed(
            f"the SELECT span's db.name is {attributes.get('db.name')!r}, not {DATABASE!r}: "
            "the service graph names the database's node by it"
        )
    return span


def _query_span(ctx: Context) -> str:
    roll = ctx.facts.get("stage3_roll")
    if not isinstance(roll, FreshRequest):
        raise Failed(f"no roll to follow: the frontend's roll of a {DIE} (Stage 3) failed")

    def attempt() -> dict[str, Any] | None:
        trace = tempo_trace(ctx, roll.trace_id)
        if not trace:
            return None
        try:  # the whole chain and the query: the services' batches arrive apart
            return query_span(trace)
        except Failed:
            return None

    span = poll(ctx, attempt)
    if span is None:
        trace = tempo_trace(ctx, roll.trace_id)
        if not trace:
            raise Failed(f"trace {roll.trace_id} did not reach Tempo within the wait")
        try:
            span = query_span(trace)
        except Failed as failure:
            raise Failed(f"trace {roll.trace_id}, after the wait: {failure}") from None
    attributes = span["attributes"]
    return (
        f"{span['name']} on {attributes.get('db.system')}/{attributes.get('db.name')} in "
        f"{span['seconds'] * 1000:.2f} ms: {attributes.get('db.statement')}"
    )


def _pg_up(ctx: Context) -> str:
    up = f'pg_up{{job="{EXPORTER}"}}'
    backends = f'pg_stat_database_numbackends{{job="{EXPORTER}", datname="{DATABASE}"}}'
    seen: dict[str, list[Any]] = {}

    def attempt() -> bool | None:
        seen["up"] = ctx.prometheus.query(up)
        if not any(float(r["value"][1]) == 1 for r in seen["up"]):
            return None
        seen["backends"] = ctx.prometheus.query(backends)
        return True if seen["backends"] else None

    if poll(ctx, attempt) is None:
        if not seen.get("up"):
            raise Failed(f"no {up} in Prometheus within the wait")
        values = sorted({r["value"][1] for r in seen["up"]})
        if "1" not in values:
            raise Failed(f"{up} is {', '.join(values)}: postgres_exporter cannot reach PostgreSQL")
        raise Failed(f"pg_up is 1, but no {backends}: the exporter does not see the database")
    count = sum(float(r["value"][1]) for r in seen["backends"])
    return f"pg_up 1; {count:g} backend(s) connected to {DATABASE}"


def _edge(ctx: Context) -> str:
    seen: list[Any] = []

    def attempt() -> list[Any] | None:
        seen[:] = ctx.prometheus.query(EDGE)
        database = [r for r in seen if r["metric"].get("connection_type") == "database"]
        return database or None

    found = poll(ctx, attempt)
    if found is None:
        if not seen:
            raise Failed(f"no {EDGE} series in Prometheus within the wait")
        kinds = sorted({str(r["metric"].get("connection_type", "")) for r in seen})
        raise Failed(
            f"the edge is there, but its connection_type is {', '.join(map(repr, kinds))}, "
            'not "database": Alloy did not take the query spans for calls to a database'
        )
    count = sum(float(r["value"][1]) for r in found)
    return f'{count:g} call(s) from {DIE_SERVICE} to {DATABASE}, connection_type="database"'


def _pool(ctx: Context) -> str:
    names = "|".join(POOL_METRICS)
    query = f'{{__name__=~"{names}", job="{DIE_SERVICE}"}}'
    seen: list[Any] = []

    def attempt() -> str | None:
        seen[:] = ctx.prometheus.query(query)
        return _pool_summary(seen) if not _pool_missing(seen) else None

    summary = poll(ctx, attempt)
    if summary is None:
        raise Failed(f"within the wait, {query} had no {', '.join(_pool_missing(seen))}")
    return summary


def _series(result: list[Any], name: str, **labels: str) -> list[float]:
    return [
        float(r["value"][1])
        for r in result
        if r["metric"].get("__name__") == name
        and all(r["metric"].get(key) == value for key, value in labels.items())
    ]


def _pool_missing(result: list[Any]) -> list[str]:
    """What the die-service's scrape should have and has not, in words."""
    wanted = {
        'die_service_db_connections{state="idle"}': _series(
            result, "die_service_db_connections", state="idle"
        ),
        'die_service_db_connections{state="in_use"}': _series(
            result, "die_service_db_connections", state="in_use"
        ),
        "die_service_db_connections_max > 0": [
            v for v in _series(result, "die_service_db_connections_max") if v > 0
        ],
        "die_service_db_pool_wait_seconds_count > 0": [
            v for v in _series(result, "die_service_db_pool_wait_seconds_count") if v > 0
        ],
        'die_service_db_query_duration_seconds_count{query="one_die"} > 0': [
            v
            for v in _series(result, "die_service_db_query_duration_seconds_count", query="one_die")
            if v > 0
        ],
        "die_service_db_errors_total": _series(result, "die_service_db_errors_total"),
    }
    return [what for what, values in wanted.items() if not values]


def _pool_summary(result: list[Any]) -> str:
    def total(name: str, **labels: str) -> float:
        return sum(_series(result, name, **labels))

    return (
        f"pool {total('die_service_db_connections', state='in_use'):g} in use, "
        f"{total('die_service_db_connections', state='idle'):g} idle, of "
        f"{total('die_service_db_connections_max'):g}; "
        f"{total('die_service_db_query_duration_seconds_count', query='one_die'):g} "
        f"one_die queries, {total('die_service_db_errors_total'):g} database error(s)"
    )
