"""The die-service's own metric family, chosen once, here.

The HTTP families (`http_requests_total`, `http_request_duration_seconds`: the
service's RED metrics) come with the shared set-up (`sandbox_telemetry.http`); this
one says what was asked of the catalogue:

- `die_service_lookups_total{die, outcome}`: every `GET /dice/{name}`, `outcome`
  being `found` or `unknown`. `die` is the die's name when the catalogue has it, and
  `other` when it has not: the name comes from the client, and a label taking any
  value a client sends would mint one series per request (a scanner trying names
  would fill Prometheus). Known names are as many as the catalogue has dice.

A rise of `outcome="unknown"` is a client asking for a die that does not exist: a
typo in the roller, or a die taken out of the catalogue while still in use.
The lookup handler counts with the trace id as exemplar.

From stage 5 the dice are rows in PostgreSQL, read through a pool of connections
(database.py), and `DatabaseMetrics` says how that goes:

- `die_service_db_connections{state}`: the pool's open connections, `idle` or
  `in_use`, beside `die_service_db_connections_max`, its limit. In use at the limit
  means lookups queue for a connection;
- `die_service_db_pool_wait_seconds`: how long each lookup waited for a connection.
  Near zero while the pool has idle ones; a connection opened on demand shows here too;
- `die_service_db_query_duration_seconds{query}`: each query, `one_die` or
  `all_dice`, with the trace id as exemplar: a slow database shows here first;
- `die_service_db_errors_total{reason}`: lookups the database failed: `unreachable`
  (no connection), `timeout` (no connection or answer in time), `error` (anything
  else, a bad row included). Each is a 503.

The database's own side (connections, transactions, locks) comes from
postgres_exporter's `pg_*` families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sandbox_telemetry import LATENCY_BUCKETS

__all__ = [
    "OTHER_DIE",
    "DatabaseFailure",
    "DatabaseMetrics",
    "DieServiceMetrics",
    "Outcome",
    "Query",
]

Outcome = Literal["found", "unknown"]
"""How a lookup ended: the `outcome` label, and the span's `die.lookup` attribute."""
Query = Literal["one_die", "all_dice"]
"""The two queries the catalogue runs: the `query` label."""
DatabaseFailure = Literal["unreachable", "timeout", "error"]
"""Why a lookup got no answer from the database: the `reason` label."""
OTHER_DIE = "other"
"""The `die` label of every name the catalogue does not have."""


class DieServiceMetrics:
    """The lookup family, registered on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "die_service_lookups",
            "Lookups of one die, by die (`other`: not in the catalogue) and outcome.",
            ("die", "outcome"),
            registry=registry,
        )
        self.lookups.labels(OTHER_DIE, "unknown")

    def start_at_zero(self, names: Iterable[str]) -> None:
        """Make every known die's series exist before its first lookup, so that rate()
        and increase() see the first one."""
        for name in names:
            self.lookups.labels(name, "found")

    def count(self, name: str, outcome: Outcome, exemplar: dict[str, str] | None) -> None:
        """One lookup; `name` is the label only when the die was found."""
        die = name if outcome == "found" else OTHER_DIE
        self.lookups.labels(die, outcome).inc(exemplar=exemplar)


class DatabaseMetrics:
    """The pool's and the queries' families, registered on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "die_service_db_connections",
            "Open connections of the pool, by state: idle or in_use.",
            ("state",),
            registry=registry,
        )
        self.connections_max = Gauge(
            "die_service_db_connections_max",
            "Most connections the pool opens (DIE_SERVICE_DATABASE_POOL_SIZE).",
            registry=registry,
        )
        self.pool_wait = Histogram(
            "die_service_db_pool_wait_seconds",
            "Time a lookup waited for a connection from the pool.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.query_duration = Histogram(
            "die_service_db_query_duration_seconds",
            "Time of each query, by query: one_die or all_dice.",
            ("query",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "die_service_db_errors",
            "Lookups the database failed, by reason: unreachable, timeout or error.",
            ("reason",),
            registry=registry,
        )
        for reason in ("unreachable", "timeout", "error"):
            self.errors.labels(reason)
        for query in ("one_die", "all_dice"):
            self.query_duration.labels(query)

    def watch_pool(self, size: Callable[[], int], idle: Callable[[], int], limit: int) -> None:
        """Read the pool's counts at each scrape, so they are never stale."""
        self.connections.labels("idle").set_function(idle)
        self.connections.labels("in_use").set_function(lambda: size() - idle())
        self.connections_max.set(limit)
