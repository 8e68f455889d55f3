"""The HTTP routes: the catalogue of dice, one die at a time or all at once.

Follow one roll of stage 3: the dice-roller asks `GET /dice/d20` before it rolls,
through a traced HTTP client, so the `traceparent` header it sends makes this
service's server span a child of the roller's call. `get_die` then records the
lookup in all three signals, side by side: span attributes (`die.name`,
`die.faces`, `die.lookup`), the lookup counter with the trace id as exemplar, and
the request's one log line.

From stage 5 the catalogue is a PostgreSQL table (database.py): each lookup adds a
`SELECT` span under this service's, made by asyncpg's instrumentation. When the
database cannot answer, `database_unavailable` turns that into a 503 that says why,
marked on the span (`database.failure`) and in one ERROR line.

The fault flags (flags.py) slow a lookup on purpose: `die-service-latency-seconds`
here, before the lookup; `database-latency-seconds` in the database's query. Each
evaluation that changes the lookup is an event on the server span, and the lookup's
log line names the flags away from their default, as the dice-roller's rolls do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from sandbox_telemetry import (
    create_tracer_provider,
    current_exemplar,
    instrument,
    new_registry,
    request_fields,
    server_spans,
)
from sandbox_telemetry.web import web_defaults

from . import SERVICE_NAME, __version__
from .catalogue import Catalogue, CatalogueUnavailable, InMemoryCatalogue
from .dice import NAME_PATTERN, DieSpec
from .flags import DIE_SERVICE_LATENCY_SECONDS, FaultFlags
from .metrics import DieServiceMetrics, Outcome
from .settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("die_service")
NAME_RULE = "1 to 32 characters, each a lower-case letter, a digit or '-'"
"""NAME_PATTERN in words, for the 422 answer."""


class DiceList(BaseModel):
    dice: list[DieSpec] = Field(description="Every die the catalogue has, in its order.")


class UnknownDieBody(BaseModel):
    detail: str = Field(description="What went wrong, in words.")
    allowed: list[str] = Field(description="The names of the dice there are.")


class InvalidNameBody(UnknownDieBody):
    pattern: str = Field(description="What a die's name must match.")


class UnavailableBody(BaseModel):
    detail: str = Field(description="Why the catalogue cannot answer, in words.")
    reason: str = Field(description="unreachable, timeout or error.")


class ServiceInfo(BaseModel):
    service: str
    version: str
    endpoints: dict[str, str]


def create_app(
    catalogue: Catalogue | None = None,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
    flags: FaultFlags | None = None,
) -> FastAPI:
    """The service over `catalogue` (the shipped dice, in memory, by default);
    `tracer_provider` defaults to one configured from `OTEL_*`, `registry` (where the
    catalogue's own metrics may be already) to a new one, `flags` to none (no faults)."""
    dice: Catalogue = catalogue or InMemoryCatalogue()
    faults = flags or FaultFlags(Settings())
    provider = tracer_provider or create_tracer_provider(SERVICE_NAME, __version__)
    registry = registry or new_registry()
    metrics = DieServiceMetrics(registry)
    # Every query a CLIENT span with its statement (asyncpg is patched once per process).
    AsyncPGInstrumentor().instrument(tracer_provider=provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dice.open()
        with suppress(CatalogueUnavailable):  # if so, each series starts at its first lookup
            metrics.start_at_zero(die.name for die in await dice.all())
        yield
        await dice.close()
        faults.close()
        provider.shutdown()  # uvicorn has let the requests finish: send their spans

    app = FastAPI(
        title="die-service",
        version=__version__,
        description="What each die is: its faces, its failure rate, its latency.",
        lifespan=lifespan,
        telemetry=server_spans(provider),
        **web_defaults(),  # /docs offline, no /redoc, redirects on the service
    )
    instrument(app, registry, log)

    @app.get("/", summary="Describe the service")
    async def index() -> ServiceInfo:
        return ServiceInfo(
            service=SERVICE_NAME,
            version=__version__,
            endpoints={
                "/dice": "every die's specification",
                "/dice/{name}": "one die's specification: faces, failure rate, latency",
                "/metrics": "Prometheus metrics (OpenMetrics with exemplars on request)",
                "/docs": "interactive API documentation",
            },
        )

    @app.get("/dice", summary="Every die")
    async def list_dice() -> DiceList:
        return DiceList(dice=await dice.all())

    @app.get(
        "/dice/{name}",
        summary="One die",
        response_model=DieSpec,
        responses={
            404: {"model": UnknownDieBody, "description": "No die has this name."},
            422: {"model": InvalidNameBody, "description": "This cannot be a die's name."},
            503: {"model": UnavailableBody, "description": "The database cannot answer."},
        },
    )
    async def get_die(
        request: Request,
        name: Annotated[str, Path(pattern=NAME_PATTERN, description="The die's name.")],
    ) -> DieSpec | JSONResponse:
        lookup_flags = faults.for_lookup(name)  # the fault flags: how to slow this lookup
        request.state.flags = lookup_flags  # for the 503's line, if the database fails
        delay = lookup_flags.number(DIE_SERVICE_LATENCY_SECONDS)
        if delay:
            await asyncio.sleep(delay)
        spec = await dice.get(name, lookup_flags)
        outcome: Outcome = "unknown" if spec is None else "found"

        span = trace.get_current_span()  # the request's server span, FastAPI's
        span.set_attributes({"die.name": name, "die.lookup": outcome})
        metrics.count(name, outcome, current_exemplar())
        if spec is None:
            log.info(  # the request's one line; the trace and span ids are added to it
                "Die unknown",
                extra={
                    "die_name": name,
                    "outcome": outcome,
                    **lookup_flags.log_fields(),
                    **request_fields(request, status=404),
                },
            )
            # `name` matched NAME_PATTERN: it is short and harmless to say back.
            body = UnknownDieBody(detail=f"There is no die {name!r}.", allowed=await _names(dice))
            return JSONResponse(body.model_dump(), status_code=404)

        span.set_attribute("die.faces", len(spec.faces))
        log.info(
            "Die found",
            extra={
                "die_name": name,
                "outcome": outcome,
                "die_faces": len(spec.faces),
                **lookup_flags.log_fields(),
                **request_fields(request, status=200),
            },
        )
        return spec

    @app.exception_handler(RequestValidationError)
    async def invalid_name(request: Request, error: RequestValidationError) -> JSONResponse:
        try:
            allowed = await _names(dice)
        except CatalogueUnavailable:
            allowed = []  # the name is wrong whatever the database says
        # The offending value is not echoed back: it may be huge or hostile.
        body = InvalidNameBody(
            detail=f"Path parameter 'name' must be {NAME_RULE}.",
            pattern=NAME_PATTERN,
            allowed=allowed,
        )
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(CatalogueUnavailable)
    async def database_unavailable(request: Request, error: CatalogueUnavailable) -> JSONResponse:
        # The server span is ERROR already (a 5xx: its `error.type` is "503"); this says
        # why, as the dice-roller's `upstream.failure` does for its upstream.
        trace.get_current_span().set_attribute("database.failure", error.reason)
        lookup_flags = getattr(request.state, "flags", None)  # GET /dice/{name}'s
        log.error(
            "Database unavailable",
            extra={
                "reason": error.reason,
                "detail": error.detail,
                **(lookup_flags.log_fields() if lookup_flags else {}),
                **request_fields(request, 503),
            },
        )
        body = UnavailableBody(detail=error.detail, reason=error.reason)
        return JSONResponse(body.model_dump(), status_code=503)

    return app


async def _names(dice: Catalogue) -> list[str]:
    return [die.name for die in await dice.all()]
