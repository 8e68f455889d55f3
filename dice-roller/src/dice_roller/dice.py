"""The dice themselves: pure rules, with no web framework and no telemetry.

A die is data: the values it shows, how often it fails, how long it takes. Stage 1
knows its two dice by heart (`stage1_dice`); from stage 3 on, the die-service says what
each die is, and the same rules roll it. The faults a sandbox user switches on arrive
here as plain numbers; where they come from (the flag file) is none of the dice's
business. At their defaults a roll draws exactly what it drew before faults existed,
so a seeded run gives the same rolls.
"""

from __future__ import annotations

import enum
import random

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME_PATTERN", "Die", "DieFailure", "DieType", "draw_delay", "roll", "stage1_dice"]

NAME_PATTERN = r"^[a-z0-9-]{1,32}$"
"""What a die's name may be, as the die-service has it: short, lower case, safe in a
URL, a log line and a label."""


class DieType(enum.StrEnum):
    """Stage 1's dice: the only `die` values accepted without a die-service."""

    FAIR = "fair"
    RISKY = "risky"


class Die(BaseModel):
    """One die; bounded, since from stage 3 it is what another service said."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(pattern=NAME_PATTERN)
    faces: tuple[int, ...] = Field(min_length=1, max_length=100)
    failure_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    max_delay_seconds: float = Field(ge=0.0, le=60.0, allow_inf_nan=False)  # DICE_MAX_DELAY's


def stage1_dice(max_delay_seconds: float, risky_failure_rate: float) -> dict[str, Die]:
    """fair shows 1-6, risky 2-7 and fails at `risky_failure_rate` (the spec's 0.1)."""
    return {
        DieType.FAIR: Die(
            name="fair", faces=(1, 2, 3, 4, 5, 6), failure_rate=0.0,
            max_delay_seconds=max_delay_seconds,
        ),
        DieType.RISKY: Die(
            name="risky", faces=(2, 3, 4, 5, 6, 7), failure_rate=risky_failure_rate,
            max_delay_seconds=max_delay_seconds,
        ),
    }  # fmt: skip


class DieFailure(Exception):
    """The die failed instead of rolling; the service answers with HTTP 500."""


def roll(die: Die, rng: random.Random, failure_rate: float, loaded_bias: float = 0.0) -> int:
    """Roll `die` once; raise DieFailure with probability `failure_rate`.

    The failure check comes first, with a draw of its own, so the values of the rolls
    that succeed stay uniform. `loaded_bias` is the share of rolls showing the top face.
    A fault at zero draws nothing.
    """
    if failure_rate > 0.0 and rng.random() < failure_rate:
        raise DieFailure(f"the {die.name} die slipped off the table")
    top = len(die.faces) - 1
    index = top if loaded_bias > 0.0 and rng.random() < loaded_bias else rng.randint(0, top)
    return die.faces[index]


def draw_delay(
    rng: random.Random, max_seconds: float, extra_seconds: float = 0.0, extra_share: float = 1.0
) -> float:
    """How long a roll takes: uniform between 0 and `max_seconds`, plus `extra_seconds`
    for the share `extra_share` of rolls."""
    delay = rng.uniform(0.0, max_seconds)
    if extra_seconds > 0.0 and (extra_share >= 1.0 or rng.random() < extra_share):
        delay += extra_seconds
    return delay
