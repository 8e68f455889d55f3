"""The web layer: HTTP routes that turn dice rolls into answers, metrics, logs and spans.

`create_app` wires the three signals around the routes:

- traces: FastAPI's built-in OpenTelemetry support opens a server span per request
  but scrapes; the roll route adds the `die.*` attributes;
- metrics: `DiceMetrics` counts rolls, and `/metrics` serves them (OpenMetrics with
  exemplars on request);
- logs: every request writes one JSON line; a roll names its outcome in it ("Roll
  completed", or "Roll failed" at ERROR when the die fails).

`RequestTelemetryMiddleware` does the per-request part of all three at once: the
`traceresponse` header that leads a `curl` straight to the trace, the HTTP metrics,
and the request's log line.

What breaks a roll on purpose (failure rates, extra latency, a loaded die) is decided
by `dice_roller.faults`, from the flag file when there is one; the route applies it.

The benchmark builds this same app with some signals left out (`signals`), to measure
what each one costs on the very route the service serves (bench/apps.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, Field

from . import SERVICE_NAME, __version__
from .dice import DieFailure, DieType, draw_delay, roll
from .faults import fault_source
from .metrics import DiceMetrics, route_templates
from .middleware import RequestTelemetryMiddleware
from .request_log import describe_request
from .settings import Settings
from .tracing import create_tracer_provider, fastapi_telemetry

__all__ = ["SIGNALS", "Signal", "create_app"]

ALLOWED_DICE = [die.value for die in DieType]

Signal = Literal["metrics", "logs", "traces"]
SIGNALS: frozenset[Signal] = frozenset({"metrics", "logs", "traces"})


class RollResult(BaseModel):
    roll: int = Field(description="The value rolled: 1-6 for fair, 2-7 for risky.")


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, in words.")


class InvalidDieBody(ErrorBody):
    allowed: list[str] = Field(description="The accepted values of `die`.")


class ServiceInfo(BaseModel):
    service: str
    version: str
    endpoints: dict[str, str]


@dataclass(frozen=True)
class RollTelemetry:
    """What one roll leaves in each signal that is on: counts, span attributes, and the
    outcome named in the request's log line.

    A signal that is off costs nothing here, not even a no-op call, so the benchmark's
    builds without it measure the route alone.
    """

    metrics: DiceMetrics | None
    traced: bool
    logged: bool

    def rolled(
        self, die: DieType, value: int, seconds: float, log_fields: Mapping[str, Any]
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe_roll(die, value, seconds)
        if self.traced:
            trace.get_current_span().set_attributes(
                {"die.type": die.value, "die.result": "success", "die.value": value}
            )
        if self.logged:
            describe_request("Roll completed", die_type=die.value, roll_value=value, **log_fields)

    def failed(
        self, die: DieType, failure: DieFailure, seconds: float, log_fields: Mapping[str, Any]
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe_roll(die, None, seconds)
        if self.traced:
            span = trace.get_current_span()
            span.set_attributes(
                {"die.type": die.value, "die.result": "error", "die.error": str(failure)}
            )
            span.set_status(Status(StatusCode.ERROR, str(failure)))
        if self.logged:
            describe_request(
                "Roll failed", logging.ERROR, die_type=die.value, error=str(failure), **log_fields
            )


def create_app(
    settings: Settings,
    tracer_provider: TracerProvider | None = None,
    signals: Collection[Signal] = SIGNALS,
    request_telemetry: bool = True,
) -> FastAPI:
    """Build the service. `tracer_provider` defaults to one configured from `OTEL_*`.

    `signals` and `request_telemetry` are for the benchmark alone: the service always
    runs with all three signals, and with `RequestTelemetryMiddleware` making each
    request's span ids, HTTP metrics and log line. Without the middleware the route's
    roll line is written on a line of its own, which is what the benchmark's recipe
    build, instrumented by upstream libraries instead, wants.
    """
    unknown = set(signals) - SIGNALS
    if unknown:
        raise ValueError(f"unknown signals {sorted(unknown)}; expected some of {sorted(SIGNALS)}")
    provider = (tracer_provider or create_tracer_provider()) if "traces" in signals else None
    metrics = DiceMetrics.create() if "metrics" in signals else None
    telemetry = RollTelemetry(metrics, traced=provider is not None, logged="logs" in signals)
    rng = random.Random(settings.seed)
    faults = fault_source(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        faults.close()
        # Uvicorn has let the requests in flight finish: send their spans before exiting.
        if provider is not None:
            provider.shutdown()

    app = FastAPI(
        title="dice-roller",
        version=__version__,
        description="Rolls dice slowly, and sometimes fails, so there is something to observe.",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(provider),
    )

    @app.get("/", summary="Describe the service")
    async def index() -> ServiceInfo:
        return ServiceInfo(
            service=SERVICE_NAME,
            version=__version__,
            endpoints={
                "/roll?die=fair": "roll a fair die (1-6)",
                "/roll?die=risky": "roll a risky die (2-7, fails one time in ten)",
                "/metrics": "Prometheus metrics (OpenMetrics with exemplars on request)",
                "/docs": "interactive API documentation",
            },
        )

    @app.get(
        "/roll",
        summary="Roll a die",
        response_model=RollResult,
        responses={
            422: {"model": InvalidDieBody, "description": "`die` is missing or not allowed."},
            500: {"model": ErrorBody, "description": "The die failed, on purpose."},
        },
    )
    async def roll_die(
        die: Annotated[DieType, Query(description="Which die to roll.")],
    ) -> RollResult | JSONResponse:
        started = time.perf_counter()
        applied = faults.for_roll(die)  # the flags module decides, the route applies
        await asyncio.sleep(draw_delay(rng, settings.max_delay_seconds, applied.faults))
        try:
            value = roll(die, rng, applied.faults)
        except DieFailure as failure:
            telemetry.failed(die, failure, time.perf_counter() - started, applied.log_fields)
            return JSONResponse({"detail": f"The {die.value} die failed: {failure}"}, 500)
        telemetry.rolled(die, value, time.perf_counter() - started, applied.log_fields)
        return RollResult(roll=value)

    @app.exception_handler(RequestValidationError)
    async def invalid_die(request: Request, error: RequestValidationError) -> JSONResponse:
        # The offending value is not echoed back: it may be huge or hostile.
        return JSONResponse(
            {
                "detail": "Query parameter 'die' is required and must be one of: "
                + ", ".join(ALLOWED_DICE),
                "allowed": ALLOWED_DICE,
            },
            status_code=422,
        )

    if metrics is not None:
        app.router.routes.append(metrics.route())
    if request_telemetry and (metrics is not None or telemetry.traced or telemetry.logged):
        app.add_middleware(
            RequestTelemetryMiddleware,
            metrics=metrics,
            traced=telemetry.traced,
            logged=telemetry.logged,
            route_templates=route_templates(app),
        )
    return app
