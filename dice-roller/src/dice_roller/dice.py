"""The dice themselves: pure domain logic, with no web framework and no telemetry.

Keeping the rules here means they can be tested exhaustively and fast, and that the
web layer only translates them into HTTP, metrics, logs and spans.
"""

from __future__ import annotations

import enum
import random

__all__ = ["FACES", "DieType", "RiskyDieFailure", "draw_delay", "roll"]

FACES = 6
"""Every die is a six-sided die; the risky one adds one to whatever it shows."""


class DieType(enum.StrEnum):
    """The dice a client can ask for. Their values are the only accepted `die` parameters."""

    FAIR = "fair"
    RISKY = "risky"

    @property
    def possible_values(self) -> range:
        """The values this die can produce: 1-6 for fair, 2-7 for risky."""
        offset = 1 if self is DieType.RISKY else 0
        return range(1 + offset, FACES + 1 + offset)


class RiskyDieFailure(Exception):
    """The risky die failed instead of rolling; the service answers with HTTP 500."""


def roll(die: DieType, rng: random.Random, risky_failure_rate: float) -> int:
    """Roll `die` once.

    The failure check comes first and uses its own draw, so the values of the risky
    rolls that succeed stay uniform over 2-7.

    Raises:
        RiskyDieFailure: with probability `risky_failure_rate`, for the risky die only.
    """
    if die is DieType.RISKY and rng.random() < risky_failure_rate:
        raise RiskyDieFailure("the risky die slipped off the table")
    face = rng.randint(1, FACES)
    return face + 1 if die is DieType.RISKY else face


def draw_delay(rng: random.Random, max_delay_seconds: float) -> float:
    """How long a roll takes: uniform between 0 and `max_delay_seconds`."""
    return rng.uniform(0.0, max_delay_seconds)
