"""Stage 4: several dice at once, each roll a child span of its own.

`GET /roll-async?die=d20&times=5` finds the die once, then rolls it five times
concurrently with `asyncio.gather`. Each roll opens a span inside the request's server
span and waits its own delay, so in Tempo's waterfall the five spans overlap and the
request lasts as long as its slowest roll, not the sum. `times` is bounded: a batch
holds its rolls in memory and a span each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer
from pydantic import BaseModel, Field
from sandbox_telemetry import current_exemplar, request_fields
from sandbox_telemetry.flags import RequestFlags

from .dice import NAME_PATTERN, Die, DieFailure
from .flags import FaultFlags
from .metrics import DiceMetrics

__all__ = ["MAX_BATCH", "TIMES_RULE", "BatchResult", "batch_router"]

log = logging.getLogger("dice_roller")
MAX_BATCH = 20
"""The most dice one request rolls at once: enough for a waterfall, bounded for memory."""
TIMES_RULE = f"a whole number from 1 to {MAX_BATCH}"


class BatchResult(BaseModel):
    rolls: list[int] = Field(description="The values of the rolls that succeeded.")
    failed: int = Field(description="How many of the rolls failed.")


def batch_router(
    find_die: Callable[[Request, str], Awaitable[Die | JSONResponse]],
    wait_and_roll: Callable[[Die, RequestFlags], Awaitable[int]],
    flags: FaultFlags,
    metrics: DiceMetrics,
    tracer: Tracer,
) -> APIRouter:
    """`/roll-async`, over the app's own way to find a die and to roll it once."""
    router = APIRouter()

    @router.get(
        "/roll-async",
        summary=f"Roll a die several times at once (stage 4; at most {MAX_BATCH})",
        response_model=BatchResult,
        responses={
            422: {"description": f"`die` not allowed, or `times` not {TIMES_RULE}."},
            500: {"description": "Every roll failed."},
            502: {"description": "The die-service failed."},
            503: {"description": "The die-service is down."},
            504: {"description": "The die-service was too slow."},
        },
    )
    async def roll_batch(
        request: Request,
        die: Annotated[str, Query(pattern=NAME_PATTERN, description="Which die to roll.")],
        times: Annotated[int, Query(ge=1, le=MAX_BATCH, description=f"How many: {TIMES_RULE}.")],
    ) -> BatchResult | JSONResponse:
        span = trace.get_current_span()  # the request's server span
        span.set_attributes({"die.type": die, "batch.size": times})
        spec = await find_die(request, die)  # asked once for the whole batch
        if isinstance(spec, JSONResponse):
            return spec
        metrics.batch_size.observe(times, exemplar=current_exemplar())
        roll_flags = flags.for_roll(die)  # one trace: every roll of it sees the same flags

        outcomes = await asyncio.gather(*(roll_one(spec, roll_flags) for _ in range(times)))

        values = [value for value in outcomes if value is not None]
        failed = times - len(values)
        span.set_attribute("batch.failed", failed)
        if not values:
            span.set_status(Status(StatusCode.ERROR, "every roll failed"))
        log.log(
            logging.INFO if values else logging.ERROR,
            "Batch rolled",
            extra={
                "die_type": die,
                "times": times,
                "failed": failed,
                "roll_values": values,
                **roll_flags.log_fields(),
                **request_fields(request, status=200 if values else 500),
            },
        )
        if not values:
            return JSONResponse({"detail": f"Every roll of the {die} die failed."}, 500)
        return BatchResult(rolls=values, failed=failed)

    async def roll_one(spec: Die, roll_flags: RequestFlags) -> int | None:
        """One roll of a batch, in a span of its own: its value, or None if it failed."""
        with tracer.start_as_current_span(f"roll {spec.name}") as span:
            metrics.rolls_in_flight.inc()
            started = time.perf_counter()
            try:
                value = await wait_and_roll(spec, roll_flags)
            except DieFailure as failure:
                span.set_attributes({"die.result": "error", "die.error": str(failure)})
                span.set_status(Status(StatusCode.ERROR, str(failure)))
                metrics.rolls.labels(spec.name, "error").inc(exemplar=current_exemplar())
                return None
            finally:
                metrics.rolls_in_flight.dec()
                seconds = time.perf_counter() - started
                metrics.roll_duration.labels(spec.name).observe(
                    seconds, exemplar=current_exemplar()
                )
            span.set_attributes({"die.result": "success", "die.value": value})
            metrics.rolls.labels(spec.name, "success").inc(exemplar=current_exemplar())
            metrics.roll_value.labels(spec.name).observe(value, exemplar=current_exemplar())
            return value

    return router
