"""The HTTP routes: the page, its roll API, and the relay of the browser's spans.

Follow one click on Roll. In the browser, the fetch instrumentation (static/tracing.js)
opens a client span and sends its context in a `traceparent` header with
`GET /api/roll?die=fair`. Here, FastAPI continues that trace in the frontend's server
span; `roll_die` calls the dice-roller through a traced httpx client, whose client
span sends the trace on in a `traceparent` header of its own; the dice-roller's server
span is its child. One click, one trace, three services: Tempo shows it as one
waterfall, and its service graph as two edges.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated

import httpx
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, Field
from sandbox_telemetry import (
    create_tracer_provider,
    current_exemplar,
    current_ids,
    instrument,
    new_registry,
    request_fields,
    server_spans,
)
from sandbox_telemetry.upstream import UpstreamFailure
from sandbox_telemetry.web import web_defaults

from . import SERVICE_NAME, __version__
from .browser import EXPORT_PATH, BrowserSpans
from .dice import NAME_PATTERN, Offered, OfferedDice
from .metrics import UPSTREAM, FrontendMetrics
from .settings import Settings, browser_traces_url
from .upstream import DiceRoller

__all__ = ["create_app"]

log = logging.getLogger("frontend")
MAX_BATCH = 20
"""The dice-roller's own limit on dice rolled at once (its MAX_BATCH)."""
BATCH_FORM = (
    f'<label>or <input id="times" type="number" min="1" max="{MAX_BATCH}" value="5"> at once '
    '<button id="roll-batch" type="button">Roll them all</button></label>'
)
"""Stage 4: the page's batch control, beside Roll."""
STATIC = files("frontend") / "static"


class RollAnswer(BaseModel):
    die: str
    roll: int = Field(description="The value the dice-roller rolled.")
    trace_id: str = Field(description="The roll's trace, to open in Grafana.")


class BatchAnswer(BaseModel):
    die: str
    rolls: list[int] = Field(description="The values of the rolls that succeeded.")
    failed: int = Field(description="How many rolls failed.")
    trace_id: str = Field(description="The batch's trace, to open in Grafana.")


class FailureAnswer(BaseModel):
    detail: str = Field(description="What went wrong, in words for the page.")
    reason: str = Field(description="timeout, unreachable, error_status or bad_answer.")
    trace_id: str | None = Field(description="The failed roll's trace.")


def create_app(
    settings: Settings,
    tracer_provider: TracerProvider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The frontend; `tracer_provider` defaults to one configured from `OTEL_*`, and
    `transport` (tests) replaces the network under both of its HTTP clients."""
    provider = tracer_provider or create_tracer_provider(SERVICE_NAME, __version__)
    registry = new_registry()
    metrics = FrontendMetrics(registry)
    dice_roller = DiceRoller(
        str(settings.dice_roller_url), settings.upstream_timeout_seconds, provider, transport
    )
    die_service_url = str(settings.die_service_url) if settings.die_service_url else None
    dice = OfferedDice(die_service_url, settings.upstream_timeout_seconds, provider, transport)
    browser_spans = BrowserSpans(browser_traces_url(), transport)
    template = _template(str(settings.grafana_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await dice_roller.close()
        await dice.close()
        await browser_spans.close()
        provider.shutdown()  # uvicorn has let the requests finish: send their spans

    app = FastAPI(
        title="frontend",
        version=__version__,
        description="A page to roll dice on; every roll is a call to the dice-roller.",
        lifespan=lifespan,
        telemetry=server_spans(provider, untraced_paths=("/metrics", "/static", EXPORT_PATH)),
        **web_defaults(),  # /docs and /redoc offline, redirects on the service
    )
    instrument(app, registry, log)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", summary="The page", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        try:
            offered = await dice.all()  # stage 3: the die-service's list
        except UpstreamFailure as failure:
            return HTMLResponse(html.escape(failure.detail), status_code=failure.status)
        batch = BATCH_FORM if settings.die_service_url is not None else ""
        page = template.replace("{{DICE}}", _choices(offered)).replace("{{BATCH}}", batch)
        return HTMLResponse(page)

    @app.get(
        "/api/roll",
        summary="Roll a die on the dice-roller",
        response_model=RollAnswer,
        responses={
            422: {"description": "`die` is missing or not on offer."},
            502: {"model": FailureAnswer, "description": "The dice-roller failed."},
            503: {"model": FailureAnswer, "description": "The dice-roller is unreachable."},
            504: {"model": FailureAnswer, "description": "The dice-roller was too slow."},
        },
    )
    async def roll_die(
        request: Request,
        die: Annotated[str, Query(pattern=NAME_PATTERN, description="Which die to roll.")],
    ) -> RollAnswer | JSONResponse:
        span = trace.get_current_span()  # the request's server span, FastAPI's
        span.set_attribute("die.type", die)
        exemplar = current_exemplar()  # this trace's id, kept beside the samples
        ids = current_ids()
        trace_id = ids.trace_id if ids else None
        try:
            if die not in [offered.name for offered in await dice.all()]:
                return await refuse_die()
            rolled = await dice_roller.roll(die)  # a client span, a child of ours
        except UpstreamFailure as failure:
            return failed_upstream(request, die, failure)

        span.set_attribute("die.value", rolled.value)
        metrics.upstream_duration.labels(UPSTREAM, "success").observe(
            rolled.seconds, exemplar=exemplar
        )
        log.info(
            "Roll served",
            extra={
                "die_type": die,
                "roll_value": rolled.value,
                "upstream_seconds": round(rolled.seconds, 6),
                **request_fields(request, status=200),
            },
        )
        return RollAnswer(die=die, roll=rolled.value, trace_id=trace_id or "")

    if settings.die_service_url is not None:  # stage 4: the dice-roller rolls batches

        @app.get(
            "/api/roll-async",
            summary="Roll a die several times at once on the dice-roller",
            response_model=BatchAnswer,
            responses={
                422: {"description": f"`die` not on offer, or `times` not 1 to {MAX_BATCH}."},
                502: {"model": FailureAnswer, "description": "The dice-roller failed."},
                503: {"model": FailureAnswer, "description": "The dice-roller is unreachable."},
                504: {"model": FailureAnswer, "description": "The dice-roller was too slow."},
            },
        )
        async def roll_batch(
            request: Request,
            die: Annotated[str, Query(pattern=NAME_PATTERN, description="Which die to roll.")],
            times: Annotated[int, Query(ge=1, le=MAX_BATCH, description="How many at once.")],
        ) -> BatchAnswer | JSONResponse:
            span = trace.get_current_span()
            span.set_attributes({"die.type": die, "batch.size": times})
            ids = current_ids()
            try:
                if die not in [offered.name for offered in await dice.all()]:
                    return await refuse_die()
                batch = await dice_roller.roll_batch(die, times)  # one call, N child spans
            except UpstreamFailure as failure:
                return failed_upstream(request, die, failure)
            metrics.upstream_duration.labels(UPSTREAM, "success").observe(
                batch.seconds, exemplar=current_exemplar()
            )
            log.info(
                "Batch served",
                extra={
                    "die_type": die,
                    "times": times,
                    "failed": batch.failed,
                    "upstream_seconds": round(batch.seconds, 6),
                    **request_fields(request, status=200),
                },
            )
            trace_id = ids.trace_id if ids else ""
            return BatchAnswer(die=die, rolls=batch.values, failed=batch.failed, trace_id=trace_id)

    def failed_upstream(request: Request, die: str, failure: UpstreamFailure) -> JSONResponse:
        """No roll came back: the span, the metrics, the request's one line, the answer."""
        span = trace.get_current_span()
        span.set_attributes({"upstream.name": failure.upstream, "upstream.failure": failure.reason})
        span.set_status(Status(StatusCode.ERROR, failure.detail))
        exemplar = current_exemplar()
        metrics.upstream_errors.labels(failure.upstream, failure.reason).inc(exemplar=exemplar)
        metrics.upstream_duration.labels(failure.upstream, failure.reason).observe(
            failure.seconds, exemplar=exemplar
        )
        log.error(  # the request's one line; the trace and span ids are added to it
            "Roll failed upstream",
            extra={
                "die_type": die,
                "upstream": failure.upstream,
                "reason": failure.reason,
                "error": failure.detail,
                **request_fields(request, status=failure.status),
            },
        )
        ids = current_ids()
        answer = FailureAnswer(
            detail=failure.detail, reason=failure.reason, trace_id=ids.trace_id if ids else None
        )
        return JSONResponse(answer.model_dump(), status_code=failure.status)

    @app.post(EXPORT_PATH, summary="Relay the browser's spans to the collector")
    async def relay_browser_spans(request: Request) -> Response:
        return await browser_spans.relay(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_die(request: Request, error: RequestValidationError) -> JSONResponse:
        if any("times" in problem["loc"] for problem in error.errors()):
            detail = (
                f"Query parameter 'times' is required and must be a whole number from 1 to "
                f"{MAX_BATCH}"
            )
            return JSONResponse({"detail": detail}, status_code=422)
        return await refuse_die()

    async def refuse_die() -> JSONResponse:
        # The offending value is not echoed back: it may be huge or hostile.
        try:
            allowed = [offered.name for offered in await dice.all()]
        except UpstreamFailure as failure:
            return JSONResponse({"detail": failure.detail}, status_code=failure.status)
        return JSONResponse(
            {
                "detail": f"Query parameter 'die' is required and must be one of: "
                f"{', '.join(allowed)}",
                "allowed": allowed,
            },
            status_code=422,
        )

    return app


def _template(grafana_url: str) -> str:
    """The page, with the Grafana address its trace links open; the dice go in {{DICE}}."""
    template = (STATIC / "index.html").read_text(encoding="utf-8")
    return template.replace("{{GRAFANA_URL}}", html.escape(grafana_url.rstrip("/"), quote=True))


def _choices(offered: list[Offered]) -> str:
    """One radio button per die, the first one chosen."""
    return "\n      ".join(
        f'<label><input type="radio" name="die" value="{html.escape(die.name, quote=True)}"'
        f"{' checked' if number == 0 else ''}> {html.escape(die.label)}</label>"
        for number, die in enumerate(offered)
    )
