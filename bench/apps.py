"""The bare build: FastAPI serving the service's `/roll`, made of the dice alone.

The service has no switch that turns all its telemetry off, and must not grow one for
the benchmark; so the bench assembles this baseline itself, from the service's public
dice (`dice_roller.dice`). With the same settings it answers exactly as the service
does without a flag file: the same delay, the same rolls from the same seed, the same
500 when the risky die fails. The common recipe (`bench.recipe`) is this app with the
tutorials' instrumentation, and the roll line passed in as `log`.
"""

from __future__ import annotations

import asyncio
import logging
import random

from dice_roller.dice import DieFailure, DieType, draw_delay, roll, stage1_dice
from dice_roller.settings import Settings
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["BARE", "build_bare_app"]

BARE = "bare"
"""The build's name in the benchmark."""


class RollResult(BaseModel):
    """The service's answer to a roll, validated and serialised the way it does."""

    roll: int


def build_bare_app(settings: Settings, log: logging.Logger | None = None) -> FastAPI:
    """`/roll` with no telemetry; with `log`, each roll writes its line there."""
    rng = random.Random(settings.seed)
    dice = stage1_dice(settings.max_delay_seconds, settings.risky_failure_rate)
    app = FastAPI()

    @app.get("/roll", response_model=RollResult)
    async def roll_die(die: DieType) -> RollResult | JSONResponse:
        await asyncio.sleep(draw_delay(rng, settings.max_delay_seconds))
        spec = dice[die]
        try:
            value = roll(spec, rng, spec.failure_rate)
        except DieFailure as failure:
            if log is not None:
                log.error("Roll failed", extra={"die_type": die.value, "error": str(failure)})
            return JSONResponse({"detail": f"The {die.value} die failed: {failure}"}, 500)
        if log is not None:
            log.info("Roll completed", extra={"die_type": die.value, "roll_value": value})
        return RollResult(roll=value)

    return app
