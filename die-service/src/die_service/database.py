"""The dice in PostgreSQL (stage 5): the catalogue as a table, read through a pool.

Follow one lookup, `get("d20")`:

1. a connection is borrowed from the pool; the wait is
   `die_service_db_pool_wait_seconds`, and a connection is opened if none is idle;
2. one SELECT runs on it. asyncpg's OpenTelemetry instrumentation (set up in app.py)
   makes it a CLIENT span named `SELECT`, child of the request's span, with
   `db.system`, `db.name`, `db.statement` and the server's address. Alloy's service
   graph draws the database as a node of its own from `db.name`. The query's time is
   also `die_service_db_query_duration_seconds`, with the trace id as exemplar;
3. the connection goes back to the pool.

The fault flag `database-latency-seconds` (flags.py), while on, makes the lookup's
query wait in PostgreSQL itself: the SELECT is `ONE_DIE_AFTER_SLEEP`, whose
`pg_sleep($2)` the span's `db.statement` shows, and the span lasts as long. Past
`timeout` the lookup fails as a slow database's would.

Each wait is bounded: `timeout` for a connection, `timeout` again for the query. A
database that is down or slow makes the lookup raise `CatalogueUnavailable` in
time; the app answers 503 and `die_service_db_errors_total` counts why. Nothing is
kept from a failed lookup: the next one asks the pool again, the pool opens new
connections as it needs them, and so the service recovers by itself once the
database is back.

The table and its rows are made at start, idempotently (`CREATE TABLE IF NOT
EXISTS`, then `INSERT ... ON CONFLICT DO NOTHING`), so a die someone changed in the
table stays changed across restarts. A database that is not there yet at start does
not stop the service: the first lookup that reaches it makes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry.trace import Tracer
from pydantic import ValidationError
from sandbox_telemetry import current_exemplar
from sandbox_telemetry.flags import RequestFlags

from .catalogue import CatalogueUnavailable
from .dice import SHIPPED_DICE, DieSpec
from .flags import DATABASE_LATENCY_SECONDS
from .metrics import DatabaseFailure, DatabaseMetrics, Query

__all__ = ["SCHEMA", "PostgresCatalogue"]

log = logging.getLogger("die_service")

SCHEMA = """
CREATE TABLE IF NOT EXISTS dice (
    name              text PRIMARY KEY CHECK (name ~ '^[a-z0-9-]{1,32}$'),
    position          integer NOT NULL,
    faces             integer[] NOT NULL CHECK (cardinality(faces) BETWEEN 1 AND 100),
    failure_rate      double precision NOT NULL CHECK (failure_rate BETWEEN 0 AND 1),
    max_delay_seconds double precision NOT NULL CHECK (max_delay_seconds BETWEEN 0 AND 5)
)"""
"""The table, with the bounds of dice.py's `DieSpec` as checks: a row typed by hand
cannot make a die the API would refuse to answer."""
SEED = """
INSERT INTO dice (name, position, faces, failure_rate, max_delay_seconds)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING"""
ONE_DIE = "SELECT name, faces, failure_rate, max_delay_seconds FROM dice WHERE name = $1"
ONE_DIE_AFTER_SLEEP = (
    "SELECT name, faces, failure_rate, max_delay_seconds FROM pg_sleep($2), dice WHERE name = $1"
)
"""ONE_DIE, after `$2` seconds' sleep in the database: the flag database-latency-seconds."""
ALL_DICE = "SELECT name, faces, failure_rate, max_delay_seconds FROM dice ORDER BY position, name"
SCHEMA_LOCK = 5_2023_11
"""An advisory lock's key: two die-services starting at once make the table one by one."""

UNREACHABLE = (
    OSError,  # refused, no route, no such host
    asyncpg.PostgresConnectionError,  # the connection broke
    asyncpg.CannotConnectNowError,  # the server is starting or stopping
    asyncpg.AdminShutdownError,  # the server was stopped under the query
    asyncpg.ConnectionDoesNotExistError,  # a pooled connection the server has closed
)
"""What asyncpg raises when there is no database to talk to."""


class PostgresCatalogue:
    """The dice table of the database at `url`, read through a pool of `pool_size`;
    `dice` are the rows it starts with (`SHIPPED_DICE` unless told otherwise)."""

    def __init__(
        self,
        url: str,
        pool_size: int,
        timeout: float,
        metrics: DatabaseMetrics,
        tracer: Tracer,
        dice: Sequence[DieSpec] = SHIPPED_DICE,
    ) -> None:
        self.timeout = timeout
        self.metrics = metrics
        self.tracer = tracer
        self._url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._schema_made = False
        self._schema_lock = asyncio.Lock()
        self._dice = dice

    async def open(self) -> None:
        # min_size=0: no connection is opened here, so a database still starting does
        # not stop the service; connections are opened on demand, each bounded.
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=0,
            max_size=self._pool_size,
            max_inactive_connection_lifetime=60,
            timeout=self.timeout,  # to connect
            # Our queries leave nothing on a connection (no session settings, no
            # LISTEN, locks only inside a transaction), so the pool's default reset,
            # one more query and one more span per lookup, is not needed.
            reset=_nothing_to_reset,
        )
        self.metrics.watch_pool(self._pool.get_size, self._pool.get_idle_size, self._pool_size)
        try:
            # One trace for the start's queries, rather than one each.
            with self.tracer.start_as_current_span("make dice table"):
                await self._make_schema()
        except CatalogueUnavailable as error:
            log.warning(
                "Database not ready at start; the dice table is made at the first lookup",
                extra={"reason": error.reason, "detail": error.detail},
            )

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), timeout=5)

    async def get(self, name: str, flags: RequestFlags | None = None) -> DieSpec | None:
        sleep = flags.number(DATABASE_LATENCY_SECONDS) if flags else 0.0
        if sleep:
            found = await self._query("one_die", ONE_DIE_AFTER_SLEEP, name, sleep)
        else:
            found = await self._query("one_die", ONE_DIE, name)
        return found[0] if found else None

    async def all(self) -> list[DieSpec]:
        return await self._query("all_dice", ALL_DICE)

    async def _query(self, query: Query, sql: str, *args: object) -> list[DieSpec]:
        await self._make_schema()
        assert self._pool is not None, "open() first"
        with self._failures():
            started = time.perf_counter()
            async with self._pool.acquire(timeout=self.timeout) as connection:
                self.metrics.pool_wait.observe(time.perf_counter() - started)
                started = time.perf_counter()
                rows = await connection.fetch(sql, *args, timeout=self.timeout)
                self.metrics.query_duration.labels(query).observe(
                    time.perf_counter() - started, current_exemplar()
                )
            return [_spec(row) for row in rows]

    async def _make_schema(self) -> None:
        """The table and the shipped dice, once per process (and retried until done)."""
        if self._schema_made:
            return
        assert self._pool is not None, "open() first"
        async with self._schema_lock:
            if self._schema_made:
                return
            with self._failures():
                async with self._pool.acquire(timeout=self.timeout) as connection:
                    await self._make_table(connection)
            self._schema_made = True
            log.info("Dice table ready", extra={"dice": len(self._dice)})

    async def _make_table(self, connection: PoolConnectionProxy) -> None:
        async with connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK, timeout=self.timeout
            )
            await connection.execute(SCHEMA, timeout=self.timeout)
            await connection.executemany(SEED, _seed_rows(self._dice), timeout=self.timeout)

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """What asyncpg raises, as `CatalogueUnavailable`, counted by reason."""
        try:
            yield
        except TimeoutError as error:
            raise self._failed("timeout", f"did not answer within {self.timeout:g} s") from error
        except UNREACHABLE as error:
            raise self._failed("unreachable", f"cannot be reached ({_name(error)})") from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise self._failed("error", f"failed the query ({_name(error)})") from error
        except ValidationError as error:  # from _spec
            raise self._failed(
                "error", f"holds a row that is not a die ({_name(error)})"
            ) from error

    def _failed(self, reason: DatabaseFailure, what: str) -> CatalogueUnavailable:
        self.metrics.errors.labels(reason).inc()
        return CatalogueUnavailable(reason, f"The database {what}.")


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    pass


def _name(error: Exception) -> str:
    """The error's class: it says what happened without quoting the server."""
    return type(error).__name__


def _seed_rows(dice: Sequence[DieSpec]) -> list[tuple[object, ...]]:
    return [
        (die.name, position, list(die.faces), die.failure_rate, die.max_delay_seconds)
        for position, die in enumerate(dice)
    ]


def _spec(row: asyncpg.Record) -> DieSpec:
    """A row as the API answers it (ValidationError if the API could not)."""
    return DieSpec(
        name=row["name"],
        faces=tuple(row["faces"]),
        failure_rate=row["failure_rate"],
        max_delay_seconds=row["max_delay_seconds"],
    )
