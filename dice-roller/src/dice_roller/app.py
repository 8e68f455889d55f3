"""The HTTP routes, where a roll meets its metrics, its log line and its span.

Follow one `GET /roll?die=risky` from top to bottom of `roll_die`: `find_die` says what
the die is (from stage 3, by asking the die-service: a hop of the trace), the feature
flags decide how to break the roll, the dice roll, and then the three signals record
it, side by side. Stage 4's `/roll-async` (batch.py) rolls many at once the same way.
What every request gets alike (the server span, the HTTP metrics, the `traceresponse`
header, a log line for requests that log nothing themselves) comes from the shared
set-up, `sandbox_telemetry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, Field
from sandbox_telemetry import (
    create_tracer_provider,
    current_exemplar,
    instrument,
    new_registry,
    request_fields,
    server_spans,
)
from sandbox_telemetry.flags import RequestFlags
from sandbox_telemetry.upstream import UpstreamFailure
from sandbox_telemetry.web import web_defaults

from . import SERVICE_NAME, __version__
from .batch import TIMES_RULE, batch_router
from .catalogue import DIE_SERVICE, catalogue_for
from .dice import NAME_PATTERN, Die, DieFailure, DieType, draw_delay, roll
from .flags import (
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    FAILURE_RATE,
    LOADED_DIE_BIAS,
    FaultFlags,
)
from .metrics import DiceMetrics
from .settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("dice_roller")
DIE_DESCRIPTION = "Which die to roll: fair or risky; from stage 3, any die the die-service has."


class RollResult(BaseModel):
    roll: int = Field(description="The face rolled: 1-6 for fair, 2-7 for risky, 1-20 a d20.")


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, in words.")


class InvalidDieBody(ErrorBody):
    allowed: list[str] = Field(description="The accepted values of `die`.")


class ServiceInfo(BaseModel):
    service: str
    version: str
    endpoints: dict[str, str]


def create_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """The service; `tracer_provider` defaults to one configured from `OTEL_*`."""
    provider = tracer_provider or create_tracer_provider(SERVICE_NAME, __version__)
    registry = new_registry()
    dice = catalogue_for(settings, provider)
    metrics = DiceMetrics(registry, stage3=settings.die_service_url is not None)
    flags = FaultFlags(settings)
    rng = random.Random(settings.seed)
    tracer = provider.get_tracer("dice_roller")
    # The API document lists stage 1's two dice; from stage 3 on, the die-service decides.
    # The API document lists stage 1's two dice; from stage 3 on, the die-service decides.
    known: dict[str, Any] = {"enum": [*map(str, DieType)]} if not settings.die_service_url else {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await dice.close()
        flags.close()
        provider.shutdown()  # uvicorn has let the requests finish: send their spans

    app = FastAPI(
        title="dice-roller",
        version=__version__,
        description="Rolls dice slowly, and sometimes fails, so there is something to observe.",
        lifespan=lifespan,
        telemetry=server_spans(provider),
        **web_defaults(),  # /docs and /redoc offline, redirects on the service
    )
    instrument(app, registry, log)

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
            502: {"model": ErrorBody, "description": "Stage 3: the die-service failed."},
            503: {"model": ErrorBody, "description": "Stage 3: the die-service is down."},
            504: {"model": ErrorBody, "description": "Stage 3: the die-service was too slow."},
        },
    )
    async def roll_die(
        request: Request,
        die: str = Query(
            pattern=NAME_PATTERN, description=DIE_DESCRIPTION, json_schema_extra=known
        ),
    ) -> RollResult | JSONResponse:
        span = trace.get_current_span()  # the request's server span, FastAPI's
        span.set_attribute("die.type", die)

        spec = await find_die(request, die)  # stage 3: a call to the die-service
        if isinstance(spec, JSONResponse):
            return spec  # no such die, or no die-service to ask

        started = time.perf_counter()
        roll_flags = flags.for_roll(die)  # the feature flags: how to break this roll
        try:
            value = await wait_and_roll(spec, roll_flags)
        except DieFailure as failure:
            seconds = time.perf_counter() - started
            exemplar = current_exemplar()  # this trace's id, kept beside the samples
            span.set_attributes({"die.result": "error", "die.error": str(failure)})
            span.set_status(Status(StatusCode.ERROR, str(failure)))
            metrics.rolls.labels(die, "error").inc(exemplar=exemplar)
            metrics.roll_duration.labels(die).observe(seconds, exemplar=exemplar)
            log.error(  # the request's one line; the trace and span ids are added to it
                "Roll failed",
                extra={
                    "die_type": die,
                    "error": str(failure),
                    **roll_flags.log_fields(),
                    **request_fields(request, status=500),
                },
            )
            return JSONResponse({"detail": f"The {die} die failed: {failure}"}, 500)

        seconds = time.perf_counter() - started
        exemplar = current_exemplar()
        span.set_attributes({"die.result": "success", "die.value": value})
        metrics.rolls.labels(die, "success").inc(exemplar=exemplar)
        metrics.roll_duration.labels(die).observe(seconds, exemplar=exemplar)
        metrics.roll_value.labels(die).observe(value, exemplar=exemplar)
        log.info(
            "Roll completed",
            extra={
                "die_type": die,
                "roll_value": value,
                **roll_flags.log_fields(),
                **request_fields(request, status=200),
            },
        )
        return RollResult(roll=value)

    async def find_die(request: Request, die: str) -> Die | JSONResponse:
        """What the die is: stage 1 knows; stage 3 asks the die-service (a child span).
        The answer instead, when there is no such die or no die-service to ask."""
        try:
            spec = await dice.get(die)
        except UpstreamFailure as failure:
            return die_service_failed(request, die, failure)
        return spec if spec is not None else await unknown_die(request, die)

    async def wait_and_roll(spec: Die, roll_flags: RequestFlags) -> int:
        """A roll's own work, as the flags break it: wait, then roll (or raise DieFailure)."""
        failure_flag = FAILURE_RATE.get(spec.name)  # fair and risky; the others as specified
        failure_rate = roll_flags.number(failure_flag) if failure_flag else spec.failure_rate
        extra_seconds = roll_flags.number(EXTRA_LATENCY_SECONDS)
        extra_share = roll_flags.number(EXTRA_LATENCY_SHARE) if extra_seconds else 1.0
        loaded_bias = roll_flags.number(LOADED_DIE_BIAS)
        await asyncio.sleep(draw_delay(rng, spec.max_delay_seconds, extra_seconds, extra_share))
        return roll(spec, rng, failure_rate, loaded_bias)

    def die_service_failed(request: Request, die: str, failure: UpstreamFailure) -> JSONResponse:
        """Stage 3, no die to roll: the die-service is down (503), slow (504) or broken (502)."""
        span = trace.get_current_span()
        span.set_attributes({"upstream.name": DIE_SERVICE, "upstream.failure": failure.reason})
        span.set_status(Status(StatusCode.ERROR, failure.detail))
        metrics.die_service_errors.labels(failure.reason).inc(exemplar=current_exemplar())
        log.error(
            "Die unavailable",
            extra={
                "die_type": die,
                "upstream": DIE_SERVICE,
                "reason": failure.reason,
                "error": failure.detail,
                **request_fields(request, status=failure.status),
            },
        )
        return JSONResponse({"detail": failure.detail}, failure.status)

    async def unknown_die(request: Request, die: str) -> JSONResponse:
        # The offending value is not echoed back: it may be huge or hostile.
        try:
            allowed = await dice.names()
        except UpstreamFailure as failure:
            return die_service_failed(request, die, failure)
        return JSONResponse(
            {
                "detail": f"Query parameter 'die' is required and must be one of: "
                f"{', '.join(allowed)}",
                "allowed": allowed,
            },
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_die(request: Request, error: RequestValidationError) -> JSONResponse:
        if any("times" in problem["loc"] for problem in error.errors()):
            detail = f"Query parameter 'times' is required and must be {TIMES_RULE}"
            return JSONResponse({"detail": detail}, status_code=422)
        return await unknown_die(request, "")  # no name to log: it may be huge or hostile

    if settings.die_service_url is not None:  # stage 4 builds on stage 3's dice
        app.include_router(batch_router(find_die, wait_and_roll, flags, metrics, tracer))
    return app
