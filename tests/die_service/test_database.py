"""Stage 5's die-service as users run it, its dice in a real PostgreSQL: every shipped
die answered from the table, the table made once and left as someone changed it, one
`SELECT` span per lookup under its server span, the pool's and the queries' metrics,
and a database that is down, slow, or not up yet answered with a 503 that says why,
until the service recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from die_service.catalogue import InMemoryCatalogue
from die_service.database import SCHEMA_LOCK
from die_service.dice import SHIPPED_DICE

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.metrics import Metrics, scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, only, otlp_receiver, spans_of
from tests.support.postgres import RunningPostgres, running_postgres
from tests.support.processes import eventually
from tests.support.service import trace_of

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR_STATUS = 2  # opentelemetry.proto.trace.v1.Status.StatusCode
POOL_SIZE = 3
"""Not the default (5): the gauge of the limit must come from the setting."""
TIMEOUT = "1"
"""DIE_SERVICE_DATABASE_TIMEOUT_SECONDS: how long a slow database is waited for."""
ERRORS = "die_service_db_errors_total"
ONE_DIE_SQL = "FROM dice WHERE name = $1"


def database_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "DIE_SERVICE_DATABASE_URL": url,
        "DIE_SERVICE_DATABASE_TIMEOUT_SECONDS": TIMEOUT,
        "DIE_SERVICE_DATABASE_POOL_SIZE": str(POOL_SIZE),
        **extra,
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def database() -> Iterator[RunningPostgres]:
    with running_postgres() as database:
        yield database


@pytest.fixture(scope="module")
def service(database: RunningPostgres, receiver: OtlpReceiver) -> Iterator[RunningDieService]:
    env = receiver.service_env(OTEL_BSP_SCHEDULE_DELAY="200")  # spans leave within 0.2 s
    with running_die_service(database_env(database.url, **env)) as service:
        yield service


@pytest.fixture
def database_up(database: RunningPostgres) -> Iterator[RunningPostgres]:
    """The module's database, started again at the end if the test stopped it."""
    try:
        yield database
    finally:
        if not database.running:
            database.start()


def get(service: RunningDieService, path: str) -> httpx.Response:
    return httpx.get(service.url + path, timeout=10)


def run_sql(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """`sql`'s rows, on a connection of its own to the database at `url`."""

    async def query() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(query())


def table(url: str) -> list[dict[str, Any]]:
    """The dice table's rows, in the catalogue's order, as the API writes a die."""
    rows = run_sql(
        url, "SELECT name, faces, failure_rate, max_delay_seconds FROM dice ORDER BY position"
    )
    return [{**dict(row), "faces": list(row["faces"])} for row in rows]


def in_memory() -> list[dict[str, object]]:
    """What stage 3's die-service, the shipped dice in memory, answers for `/dice`."""
    return [die.to_json() for die in asyncio.run(InMemoryCatalogue().all())]


def shipped(name: str) -> dict[str, object]:
    [die] = [die for die in SHIPPED_DICE if die.name == name]
    return die.to_json()


def spans_after(receiver: OtlpReceiver, service: RunningDieService) -> list[ReceivedSpan]:
    """Every span received once those of the requests made so far have all arrived: a
    later lookup's server span arrives after them, as spans leave in the order they end."""
    marker = get(service, "/")
    trace_id, _ = trace_of(marker.headers)
    spans_of(receiver, trace_id, 1)
    return list(receiver.spans)


def log_lines_of(service: RunningDieService, trace_id: str) -> list[dict[str, Any]]:
    scrape(service.url)  # a later request: the lookup's request is over by its end
    return [r for r in service.log_records() if r.get("trace_id") == trace_id]


def errors(metrics: Metrics, reason: str) -> float:
    return metrics.count(ERRORS, reason=reason)


def test_every_shipped_die_is_answered_from_the_table_as_in_memory(
    service: RunningDieService, database: RunningPostgres
) -> None:
    expected = in_memory()
    assert table(database.url) == expected, "the table holds the shipped dice, in order"
    assert get(service, "/dice").json() == {"dice": expected}
    for die in expected:
        response = get(service, f"/dice/{die['name']}")
        assert response.status_code == 200, response.text
        assert response.json() == die
    unknown = get(service, "/dice/d7")
    assert unknown.status_code == 404
    assert unknown.json()["allowed"] == [die["name"] for die in expected]


def test_the_start_makes_the_table_under_one_span(
    service: RunningDieService, receiver: OtlpReceiver
) -> None:
    spans = spans_after(receiver, service)
    [start] = [s for s in spans if s.name == "make dice table"]
    assert start.parent_span_id == "", "a trace of its own"
    queries = [s for s in spans if s.trace_id == start.trace_id and s is not start]
    assert queries, "the start's queries are in its trace"
    assert all(s.parent_span_id == start.span_id and s.kind == CLIENT_KIND for s in queries)
    statements = " ".join(str(s.attributes.get("db.statement")) for s in queries)
    assert "CREATE TABLE IF NOT EXISTS dice" in statements
    assert "ON CONFLICT (name) DO NOTHING" in statements
    ready = [r for r in service.log_records() if r["message"] == "Dice table ready"]
    assert len(ready) == 1, ready


def test_a_lookup_is_one_select_span_under_its_server_span(
    service: RunningDieService, receiver: OtlpReceiver, database: RunningPostgres
) -> None:
    traces = []
    for name in ("d4", "d12", "fair"):
        response = get(service, f"/dice/{name}")
        assert response.status_code == 200
        traces.append(trace_of(response.headers)[0])
    received = spans_after(receiver, service)

    for trace_id in traces:
        spans = [s for s in received if s.trace_id == trace_id]
        server = only(spans, "die-service", SERVER_KIND)
        assert server.name == "GET /dice/{name}"
        # One query, and nothing else: the pool's reset would be a second span.
        [select] = [s for s in spans if s is not server]
        assert select.kind == CLIENT_KIND
        assert select.name == "SELECT"
        assert select.parent_span_id == server.span_id
        assert select.start_ns >= server.start_ns and select.end_ns <= server.end_ns
        assert select.status_code != ERROR_STATUS
        attributes = select.attributes
        assert attributes["db.system"] == "postgresql"
        assert attributes["db.name"] == database.database
        assert attributes["db.user"] == database.user
        assert ONE_DIE_SQL in attributes["db.statement"]
        assert attributes["net.peer.name"] == database.host
        assert attributes["net.peer.port"] == database.port


def test_the_pool_and_each_query_are_measured_with_the_trace_as_exemplar(
    service: RunningDieService,
) -> None:
    before = scrape(service.url)
    lookups = [get(service, f"/dice/{name}") for name in ("d6", "d8", "d10", "d20")]
    assert [r.status_code for r in lookups] == [200] * 4
    assert get(service, "/dice").status_code == 200
    after = scrape(service.url)

    assert after.value("die_service_db_connections_max") == POOL_SIZE
    idle = after.value("die_service_db_connections", state="idle")
    in_use = after.value("die_service_db_connections", state="in_use")
    assert in_use == 0, "every connection went back to the pool"
    assert 1 <= idle <= POOL_SIZE

    def more(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert more("die_service_db_pool_wait_seconds_count") == 5
    assert more("die_service_db_query_duration_seconds_count", query="one_die") == 4
    assert more("die_service_db_query_duration_seconds_count", query="all_dice") == 1
    last_trace, _ = trace_of(lookups[-1].headers)
    assert last_trace in after.exemplar_trace_ids(
        "die_service_db_query_duration_seconds_bucket", query="one_die"
    )
    for reason in ("unreachable", "timeout", "error"):
        assert errors(after, reason) == errors(before, reason)


def test_a_die_changed_in_the_table_is_answered_and_kept_by_every_later_start(
    database: RunningPostgres,
) -> None:
    url = database.create_database("changed")
    with running_die_service(database_env(url)) as first:
        assert get(first, "/dice/d6").json() == shipped("d6")
        run_sql(url, "UPDATE dice SET failure_rate = 0.5 WHERE name = 'd6'")
        assert get(first, "/dice/d6").json() == {**shipped("d6"), "failure_rate": 0.5}

        # A second die-service on the same table: it makes the table again, idempotently.
        with running_die_service(database_env(url)) as second:
            assert get(second, "/dice/d6").json() == {**shipped("d6"), "failure_rate": 0.5}
            assert get(second, "/dice/d4").json() == shipped("d4")
            messages = [r["message"] for r in second.log_records()]
            assert "Dice table ready" in messages
            assert not [r for r in second.log_records() if r["level"] in ("WARNING", "ERROR")]
    rows = table(url)
    assert [row["name"] for row in rows] == [die.name for die in SHIPPED_DICE], "no duplicate"


def lookup_while_locked(service: RunningDieService, database: RunningPostgres) -> httpx.Response:
    """`GET /dice/d4` while a transaction of the test's holds the dice table locked: the
    die-service's SELECT waits for the lock, longer than its timeout."""
    with asyncio.Runner() as runner:
        holder = runner.run(asyncpg.connect(database.url))
        transaction = holder.transaction()
        runner.run(transaction.start())
        runner.run(holder.execute("LOCK TABLE dice IN ACCESS EXCLUSIVE MODE"))
        try:
            return get(service, "/dice/d4")
        finally:
            runner.run(transaction.rollback())
            runner.run(holder.close())


def test_the_table_is_made_by_one_service_at_a_time(database: RunningPostgres) -> None:
    """Two die-services starting at once on an empty database would both create the
    table; the schema's advisory lock makes the second wait. The test holds that lock,
    as the first service would: the service starting meanwhile makes nothing, and
    makes the table once the lock is let go."""
    url = database.create_database("contended")
    with asyncio.Runner() as runner:
        other = runner.run(asyncpg.connect(url))
        try:
            runner.run(other.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK))
            quick = database_env(url, DIE_SERVICE_DATABASE_TIMEOUT_SECONDS="0.3")
            with running_die_service(quick) as waiting:
                response = get(waiting, "/dice/d4")
                assert response.status_code == 503
                assert response.json()["reason"] == "timeout"
                assert not run_sql(url, "SELECT 1 FROM pg_tables WHERE tablename = 'dice'")

                runner.run(other.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK))
                eventually(
                    lambda: get(waiting, "/dice/d4").status_code == 200,
                    "the die-service made the table once the lock was free",
                    timeout=15,
                )
        finally:
            runner.run(other.close())
    assert table(url) == in_memory()


def test_a_slow_database_is_a_503_saying_timeout_and_the_next_lookup_succeeds(
    service: RunningDieService, receiver: OtlpReceiver, database: RunningPostgres
) -> None:
    before = scrape(service.url)
    response = lookup_while_locked(service, database)

    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "timeout"
    assert f"within {TIMEOUT} s" in body["detail"]
    assert errors(scrape(service.url), "timeout") == errors(before, "timeout") + 1
    trace_id, _ = trace_of(response.headers)
    spans = spans_of(receiver, trace_id, 2)
    server = only(spans, "die-service", SERVER_KIND)
    select = only(spans, "die-service", CLIENT_KIND)
    assert server.status_code == ERROR_STATUS
    assert server.attributes["http.response.status_code"] == 503
    assert select.name == "SELECT" and select.status_code == ERROR_STATUS
    assert select.parent_span_id == server.span_id

    # The lock is gone: the pool, the timed-out connection included, answers again.
    for _ in range(POOL_SIZE + 1):
        assert get(service, "/dice/d4").json() == shipped("d4")


def test_a_failed_lookups_server_span_names_its_reason(
    service: RunningDieService, receiver: OtlpReceiver, database: RunningPostgres
) -> None:
    """What the database drill's Tempo probe (drills/database_probes.py) and the stage-5
    dashboard's trace link look for: `database.failure` is the 503's reason, beside
    FastAPI's own `error.type`, the status."""
    response = lookup_while_locked(service, database)
    assert response.json()["reason"] == "timeout"
    trace_id, _ = trace_of(response.headers)
    server = only(spans_of(receiver, trace_id, 2), "die-service", SERVER_KIND)
    assert server.attributes.get("database.failure") == "timeout"
    assert server.attributes.get("error.type") == "503"


def test_a_database_down_is_a_503_saying_unreachable_until_it_is_back(
    service: RunningDieService, receiver: OtlpReceiver, database_up: RunningPostgres
) -> None:
    assert get(service, "/dice/d4").status_code == 200  # a connection in the pool
    before = scrape(service.url)
    database_up.stop()

    response = get(service, "/dice/d4")  # answers at all, well within the client's timeout
    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "unreachable"
    assert body["detail"].startswith("The database cannot be reached")
    assert errors(scrape(service.url), "unreachable") == errors(before, "unreachable") + 1

    trace_id, span_id = trace_of(response.headers)
    [line] = log_lines_of(service, trace_id)
    assert (line["level"], line["message"]) == ("ERROR", "Database unavailable")
    assert (line["reason"], line["span_id"], line["status"]) == ("unreachable", span_id, 503)
    server = only(spans_of(receiver, trace_id, 1), "die-service", SERVER_KIND)
    assert server.status_code == ERROR_STATUS
    assert server.attributes["http.response.status_code"] == 503
    assert server.attributes.get("database.failure") == "unreachable"

    database_up.start()
    eventually(
        lambda: get(service, "/dice/d4").status_code == 200,
        "the die-service answered again once the database was back",
        timeout=15,
    )
    assert get(service, "/dice/d4").json() == shipped("d4")
    assert service.process.poll() is None, "the same process, never restarted"


def test_a_service_started_before_its_database_makes_the_table_once_it_is_up(
    database_up: RunningPostgres,
) -> None:
    url = database_up.create_database("late")
    database_up.stop()
    with running_die_service(database_env(url)) as late:
        response = get(late, "/dice/d4")
        assert response.status_code == 503
        assert response.json()["reason"] == "unreachable"
        warnings = [r for r in late.log_records() if r["level"] == "WARNING"]
        assert [w["message"] for w in warnings] == [
            "Database not ready at start; the dice table is made at the first lookup"
        ]

        database_up.start()
        eventually(
            lambda: get(late, "/dice/d4").status_code == 200,
            "the die-service answered once its database was up",
            timeout=15,
        )
        assert get(late, "/dice").json() == {"dice": in_memory()}
    assert table(url) == in_memory()
