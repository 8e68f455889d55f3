"""The web layer: HTTP routes that turn dice rolls into answers, metrics, logs and spans.

`create_app` wires the three signals around the routes:

- traces: FastAPI's built-in OpenTelemetry support opens a server span per request;
  the roll route adds the `die.*` attributes, and every response names its trace in
  a W3C `traceresponse` header, so a `curl` leads straight to the trace;
- metrics: prometheus-fastapi-instrumentator measures each request, `DiceMetrics`
  counts rolls, and `/metrics` serves them (OpenMetrics with exemplars on request);
- logs: each roll writes one JSON line, at ERROR when the risky die fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, Field

from . import SERVICE_NAME, __version__
from .dice import DieType, RiskyDieFailure, draw_delay, roll
from .logs import LOGGER_NAME
from .metrics import DiceMetrics
from .settings import Settings
from .tracing import TraceResponseMiddleware, create_tracer_provider, fastapi_telemetry

__all__ = ["create_app"]

log = logging.getLogger(LOGGER_NAME)
ALLOWED_DICE = [die.value for die in DieType]


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


def create_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """Build the service. `tracer_provider` defaults to one configured from `OTEL_*`."""
    provider = tracer_provider or create_tracer_provider()
    metrics = DiceMetrics.create()
    rng = random.Random(settings.seed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Uvicorn has let the requests in flight finish: send their spans before exiting.
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
            500: {"model": ErrorBody, "description": "The risky die failed, on purpose."},
        },
    )
    async def roll_die(
        die: Annotated[DieType, Query(description="Which die to roll.")],
    ) -> RollResult | JSONResponse:
        started = time.perf_counter()
        await asyncio.sleep(draw_delay(rng, settings.max_delay_seconds))
        span = trace.get_current_span()
        span.set_attribute("die.type", die.value)
        try:
            value = roll(die, rng, settings.risky_failure_rate)
        except RiskyDieFailure as failure:
            metrics.observe_roll(die, None, time.perf_counter() - started)
            span.set_attributes({"die.result": "error", "die.error": str(failure)})
            span.set_status(Status(StatusCode.ERROR, str(failure)))
            log.error("Roll failed", extra={"die_type": die.value, "error": str(failure)})
            return JSONResponse({"detail": f"The {die.value} die failed: {failure}"}, 500)
        metrics.observe_roll(die, value, time.perf_counter() - started)
        span.set_attributes({"die.result": "success", "die.value": value})
        log.info("Roll completed", extra={"die_type": die.value, "roll_value": value})
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

    app.router.routes.append(metrics.route("/metrics"))
    metrics.instrument(app)
    app.add_middleware(TraceResponseMiddleware)
    return app
