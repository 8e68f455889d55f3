"""The builds the overhead bench compares, all serving the same `/roll` route.

- `bare`: FastAPI calling `dice.roll`, with no telemetry at all (no access log either);
- `metrics`, `logs`, `traces`: the bare route plus one signal, wired with the service's
  own modules (`metrics.py`, `logs.py`, `tracing.py`) exactly as `app.py` wires it;
- `traces-unexported`: the same spans as `traces`, made and ended but sent nowhere,
  which splits what a span costs to make from what it costs to export;
- `full` is not built here: it is the real service, started as `python -m dice_roller`.

Each signal alone shows which one the full build's cost comes from.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from dice_roller.dice import DieType, draw_delay, roll
from dice_roller.logs import LOGGER_NAME
from dice_roller.metrics import DiceMetrics
from dice_roller.settings import Settings
from dice_roller.tracing import TraceResponseMiddleware, create_tracer_provider, fastapi_telemetry
from fastapi import FastAPI, Query
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from pydantic import BaseModel

__all__ = ["SIGNALS", "UNEXPORTED_TRACES", "VARIANTS", "build_app"]

SIGNALS = ("metrics", "logs", "traces")
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
UNEXPORTED_TRACES = "traces-unexported"
VARIANTS = ("bare", *SIGNALS, UNEXPORTED_TRACES)


class RollResult(BaseModel):
    roll: int


def build_app(variant: str, settings: Settings) -> FastAPI:
    """The `/roll` route with the telemetry of `variant` (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    rng = random.Random(settings.seed)
    metrics = DiceMetrics.create() if variant == "metrics" else None
    log = logging.getLogger(LOGGER_NAME) if variant == "logs" else None
    provider = None
    if variant == "traces":
        provider = create_tracer_provider()
    elif variant == UNEXPORTED_TRACES:
        provider = create_tracer_provider({"OTEL_TRACES_EXPORTER": "none"})  # no processor
    traced = provider is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if provider is not None:
            provider.shutdown()  # send the last spans, as the service does

    # FastAPI's own OpenTelemetry support makes the spans of the traced build, as in the
    # service; elsewhere it is off, since even finding it unconfigured costs per request.
    telemetry = fastapi_telemetry(provider) if provider is not None else NO_NATIVE_TELEMETRY
    app = FastAPI(lifespan=lifespan, telemetry=telemetry)

    @app.get("/roll")
    async def roll_die(die: Annotated[DieType, Query()]) -> RollResult:
        started = time.perf_counter()
        await asyncio.sleep(draw_delay(rng, settings.max_delay_seconds))
        value = roll(die, rng, 0.0)  # the bench rolls the fair die: no failures
        if metrics is not None:
            metrics.observe_roll(die, value, time.perf_counter() - started)
        if traced:
            span = trace.get_current_span()
            span.set_attribute("die.type", die.value)
            span.set_attributes({"die.result": "success", "die.value": value})
        if log is not None:
            log.info("Roll completed", extra={"die_type": die.value, "roll_value": value})
        return RollResult(roll=value)

    if metrics is not None:
        metrics.instrument(app)
    if provider is not None:
        app.add_middleware(TraceResponseMiddleware)
    return app
