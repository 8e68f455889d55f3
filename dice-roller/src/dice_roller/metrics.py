"""The service's Prometheus metrics: names, units, labels and buckets, chosen once, here.

Five families tell the story of the service:

- `http_requests_total{handler, method, status}` and
  `http_request_duration_seconds{handler, method}`: every HTTP request but scrapes,
  measured by `dice_roller.middleware`. `handler` is the route template (`/roll`),
  never the raw path: unknown and redirected paths share `handler="none"`, and
  unusual methods share `method="_OTHER"`, so no request can invent a new series.
- `dice_rolls_total{die_type, result}`: every roll, `result` being `success` or `error`.
- `dice_roll_value{die_type}`: the values rolled, one bucket per face.
- `dice_roll_duration_seconds{die_type}`: how long a roll took, delay included; the
  HTTP histogram cannot tell the dice apart.

Observations made while a span is active carry its trace id as an exemplar, so a
point on a latency graph leads to the trace of a request that produced it.
Exemplars only travel in the OpenMetrics format, which prometheus_client's own ASGI app
(`DiceMetrics.route`) serves when the scraper asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    make_asgi_app,
)
from prometheus_client.metrics import MetricWrapperBase
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .dice import DieType
from .ids import current_ids

__all__ = [
    "LATENCY_BUCKETS",
    "ROLL_VALUE_BUCKETS",
    "DiceMetrics",
    "current_exemplar",
    "route_templates",
]

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    *(round(0.05 * step, 2) for step in range(1, 21)),  # every 50 ms up to the 1 s maximum delay
    1.5,
    2.5,
    5.0,
)
"""Seconds. A 0-1 s uniform delay needs fine buckets inside that second for p50, p95 and
p99 to mean something; the instrumentator's default (0.1, 0.5, 1) cannot resolve them."""

ROLL_VALUE_BUCKETS = tuple(float(value) for value in range(1, 9))
"""One bucket per possible value, 1 to 8: fair rolls fill 1-6, risky rolls 2-7."""

ROLL_RESULTS = ("success", "error")

SCRAPE_PATH = "/metrics"
"""The scrape endpoint's route: Prometheus's own requests are not the service's traffic."""

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"
"""The `method` label of any other token: uvicorn's parser lets through dozens more
(PROPFIND, PURGE, QUERY, ...), and each would otherwise mint series of its own.
`_OTHER` is OpenTelemetry's name for them in `http.request.method`."""


@dataclass(frozen=True)
class DiceMetrics:
    """The metric families of one service instance, registered on their own registry.

    A registry per app keeps tests independent and lets `/metrics` serve exactly these.
    """

    registry: CollectorRegistry
    http_requests: Counter
    http_request_duration: Histogram
    rolls: Counter
    roll_value: Histogram
    roll_duration: Histogram
    _children: dict[tuple[object, ...], Any] = field(default_factory=dict, init=False, repr=False)
    """Each labelled child found once, then reused: `labels()` checks and locks on
    every call, and the label sets are few and fixed (see `HTTP_METHODS`)."""

    @classmethod
    def create(cls) -> DiceMetrics:
        registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            # Memory, CPU, file descriptors and GC of the process, for the soak graphs.
            registry.register(collector)
        metrics = cls(
            registry=registry,
            http_requests=Counter(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status class.",
                ("handler", "method", "status"),
                registry=registry,
            ),
            http_request_duration=Histogram(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and method.",
                ("handler", "method"),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rolls=Counter(
                "dice_rolls",
                "Dice rolled, by die type and result (success or error).",
                ("die_type", "result"),
                registry=registry,
            ),
            roll_value=Histogram(
                "dice_roll_value",
                "Values rolled, by die type.",
                ("die_type",),
                buckets=ROLL_VALUE_BUCKETS,
                registry=registry,
            ),
            roll_duration=Histogram(
                "dice_roll_duration_seconds",
                "Time a roll took, its delay included, by die type, whatever its result.",
                ("die_type",),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
        metrics._create_known_series()
        return metrics

    def _create_known_series(self) -> None:
        """Export every legitimate series at zero from the start.

        `rate()` and `increase()` need a series to exist before its first increment,
        otherwise the first error of the risky die is invisible to them.
        """
        for die in DieType:
            for result in ROLL_RESULTS:
                self.rolls.labels(die.value, result)
            self.roll_value.labels(die.value)
            self.roll_duration.labels(die.value)

    def child(self, family: MetricWrapperBase, *labels: str) -> Any:
        """`family.labels(*labels)`, looked up once per label set."""
        key = (family, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = family.labels(*labels)
        return found

    def observe_roll(self, die: DieType, value: int | None, duration_seconds: float) -> None:
        """Record one roll; `value` is None when the roll failed."""
        exemplar = current_exemplar()
        result = "error" if value is None else "success"
        self.child(self.rolls, die.value, result).inc(exemplar=exemplar)
        self.child(self.roll_duration, die.value).observe(duration_seconds, exemplar=exemplar)
        if value is not None:
            self.child(self.roll_value, die.value).observe(value, exemplar=exemplar)

    def observe_request(self, handler: str, method: str, status: str, seconds: float) -> None:
        """Record one HTTP request; the labels are already the bounded ones."""
        exemplar = current_exemplar()
        self.child(self.http_requests, handler, method, status).inc(exemplar=exemplar)
        self.child(self.http_request_duration, handler, method).observe(seconds, exemplar=exemplar)

    def route(self, path: str = SCRAPE_PATH) -> Route:
        """The scrape endpoint, served by prometheus_client's own ASGI app.

        The library reads the Accept header and answers Prometheus in OpenMetrics,
        exemplars included, and a browser or `curl` in the classic text format, which
        has no place for exemplars; it also compresses when asked and honours `name[]`
        filters. Nothing here repeats that negotiation.
        """
        return Route(
            path,
            _AsgiEndpoint(make_asgi_app(self.registry)),
            methods=["GET"],
            include_in_schema=False,
        )


def route_templates(app: Starlette) -> frozenset[str]:
    """The path templates of the app's routes (plus "none"): the only `handler` values."""
    return frozenset({"none", *(getattr(route, "path", "") for route in app.routes)})


def current_exemplar() -> dict[str, str] | None:
    """The exemplar labels for the active span, or None when there is none.

    The same dict for every observation of a request (`dice_roller.ids`): the roll's
    and the HTTP request's share one formatted trace id.
    """
    ids = current_ids()
    return None if ids is None else ids.exemplar


@dataclass(frozen=True)
class _AsgiEndpoint:
    """An ASGI app as the endpoint of a `Route`.

    Starlette calls a plain function endpoint with a `Request` and expects a response
    back; any other callable gets the raw ASGI call, which is what
    `make_asgi_app`'s function needs.
    """

    app: Callable[..., Any]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
