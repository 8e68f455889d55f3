"""The dice themselves: pure domain logic, with no web framework and no telemetry.

Keeping the rules here means they can be tested exhaustively and fast, and that the
web layer only translates them into HTTP, metrics, logs and spans.

The faults a sandbox user switches on (`Faults`) are plain numbers here too: where
they come from (settings, feature flags) is none of the dice's business. At their
defaults, a roll draws exactly what it drew before faults existed, so a seeded run
gives the same rolls.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = ["FACES", "SPEC", "DieFailure", "DieType", "Faults", "draw_delay", "roll"]

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


class DieFailure(Exception):
    """The die failed instead of rolling; the service answers with HTTP 500."""


@dataclass(frozen=True, slots=True)
class Faults:
    """How much to break a roll. The defaults are the spec's behaviour.

    Ranges are not checked here: whoever builds a `Faults` validates its source
    (settings, the flag file) and says what was wrong there.
    """

    risky_failure_rate: float = 0.1
    """Probability that a risky roll fails."""
    fair_failure_rate: float = 0.0
    """Probability that a fair roll fails."""
    loaded_die_bias: float = 0.0
    """Share of rolls that show the die's top face instead of a uniform draw."""
    extra_latency_seconds: float = 0.0
    """Added to the delay of the rolls it hits (see `extra_latency_share`)."""
    extra_latency_share: float = 1.0
    """Share of rolls that get `extra_latency_seconds`."""

    def failure_rate(self, die: DieType) -> float:
        return self.risky_failure_rate if die is DieType.RISKY else self.fair_failure_rate


SPEC = Faults()


def roll(die: DieType, rng: random.Random, faults: Faults = SPEC) -> int:
    """Roll `die` once.

    The failure check comes first and uses its own draw, so the values of the rolls
    that succeed stay uniform over the die's faces (unless the die is loaded). A
    fault at zero draws nothing: the fair die at the spec's rate 0 draws one number
    per roll, as it always did.

    Raises:
        DieFailure: with probability `faults.failure_rate(die)`.
    """
    failure_rate = faults.failure_rate(die)
    if failure_rate > 0.0 and rng.random() < failure_rate:
        raise DieFailure(f"the {die.value} die slipped off the table")
    if faults.loaded_die_bias > 0.0 and rng.random() < faults.loaded_die_bias:
        face = FACES
    else:
        face = rng.randint(1, FACES)
    return face + 1 if die is DieType.RISKY else face


def draw_delay(rng: random.Random, max_delay_seconds: float, faults: Faults = SPEC) -> float:
    """How long a roll takes: uniform between 0 and `max_delay_seconds`, plus the extra
    latency for the share of rolls it hits."""
    delay = rng.uniform(0.0, max_delay_seconds)
    extra, share = faults.extra_latency_seconds, faults.extra_latency_share
    if extra > 0.0 and (share >= 1.0 or rng.random() < share):
        delay += extra
    return delay
