"""The dice themselves: pure rules, with no web framework and no telemetry.

The faults a sandbox user switches on arrive here as plain numbers; where they come
from (the flag file) is none of the dice's business. At their defaults a roll draws
exactly what it drew before faults existed, so a seeded run gives the same rolls.
"""

from __future__ import annotations

import enum
import random

__all__ = ["FACES", "DieFailure", "DieType", "draw_delay", "roll"]

FACES = 6
"""Every die is a six-sided die; the risky one adds one to whatever it shows."""


class DieType(enum.StrEnum):
    """The dice a client can ask for; their values are the only accepted `die` parameters."""

    FAIR = "fair"
    RISKY = "risky"

    @property
    def possible_values(self) -> range:
        """1-6 for fair, 2-7 for risky."""
        offset = 1 if self is DieType.RISKY else 0
        return range(1 + offset, FACES + 1 + offset)


class DieFailure(Exception):
    """The die failed instead of rolling; the service answers with HTTP 500."""


def roll(
    die: DieType, rng: random.Random, failure_rate: float = 0.0, loaded_bias: float = 0.0
) -> int:
    """Roll `die` once; raise DieFailure with probability `failure_rate`.

    The failure check comes first, with a draw of its own, so the values of the rolls
    that succeed stay uniform. `loaded_bias` is the share of rolls showing the top face.
    A fault at zero draws nothing.
    """
    if failure_rate > 0.0 and rng.random() < failure_rate:
        raise DieFailure(f"the {die.value} die slipped off the table")
    face = FACES if loaded_bias > 0.0 and rng.random() < loaded_bias else rng.randint(1, FACES)
    return face + 1 if die is DieType.RISKY else face


def draw_delay(
    rng: random.Random, max_seconds: float, extra_seconds: float = 0.0, extra_share: float = 1.0
) -> float:
    """How long a roll takes: uniform between 0 and `max_seconds`, plus `extra_seconds`
    for the share `extra_share` of rolls."""
    delay = rng.uniform(0.0, max_seconds)
    if extra_seconds > 0.0 and (extra_share >= 1.0 or rng.random() < extra_share):
        delay += extra_seconds
    return delay
