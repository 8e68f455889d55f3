"""What each die is: its faces, how often it fails, how long it takes. Data, no rules.

The dice-roller of stage 1 knew its two dice by heart. From stage 3 on it asks this
service what a die is before every roll, so a die can be added or changed in one
place, and a roll's trace shows the question as a hop of its own. The table:

| die   | faces | failure rate | delay          |
|-------|-------|--------------|----------------|
| fair  | 1-6   | 0            | up to 1 s      |
| risky | 2-7   | 0.1          | up to 1 s      |
| d4    | 1-4   | 0            | up to 0.2 s    |
| d6    | 1-6   | 0.005        | up to 0.5 s    |
| d8    | 1-8   | 0.01         | up to 0.6 s    |
| d10   | 1-10  | 0.02         | up to 0.8 s    |
| d12   | 1-12  | 0.03         | up to 1 s      |
| d20   | 1-20  | 0.05         | up to 1.4 s    |

fair and risky are stage 1's, exactly (dice-roller/src/dice_roller/dice.py and its
settings' defaults), so their dashboards and alerts mean what they meant. The
polyhedral dice grow slower and less reliable with their size, so that a latency
panel split by die, or an error ratio, has something to tell apart: the d20 is the
slow, fragile one. Every delay stays under the stage 1 latency objective (1.5 s at
p99), so no die breaks it on its own.

A delay is drawn uniformly between 0 and `max_delay_seconds` (the latency profile),
a failure with probability `failure_rate`: the roller does both, this only says how.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_DELAY_SECONDS", "MAX_FACES", "NAME_PATTERN", "SHIPPED_DICE", "DieSpec"]

NAME_PATTERN = r"^[a-z0-9-]{1,32}$"
"""What a die's name may be: short, lower case, safe in a URL, a log line and a label."""
MAX_FACES = 100
"""A d100 at most: a spec is small, whoever writes it (a row in PostgreSQL from stage 5)."""
MAX_DELAY_SECONDS = 5.0
"""The top of the latency buckets (sandbox_telemetry.LATENCY_BUCKETS): a slower die
would fall off every latency histogram."""


class DieSpec(BaseModel):
    """One die, as the API answers it; frozen, so a spec handed out cannot change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="The die's name, e.g. `d20`.")
    faces: tuple[int, ...] = Field(
        min_length=1,
        max_length=MAX_FACES,
        description="The values the die can show, in order.",
    )
    failure_rate: float = Field(
        ge=0.0, le=1.0, allow_inf_nan=False, description="Share of rolls that fail."
    )
    max_delay_seconds: float = Field(
        ge=0.0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description="A roll waits uniformly between 0 and this many seconds.",
    )

    def to_json(self) -> dict[str, object]:
        """The spec as the API writes it (faces as a JSON list)."""
        return self.model_dump(mode="json")


def _die(name: str, faces: range, failure_rate: float, max_delay_seconds: float) -> DieSpec:
    return DieSpec(
        name=name,
        faces=tuple(faces),
        failure_rate=failure_rate,
        max_delay_seconds=max_delay_seconds,
    )


SHIPPED_DICE: tuple[DieSpec, ...] = (
    _die("fair", range(1, 7), 0.0, 1.0),
    _die("risky", range(2, 8), 0.1, 1.0),
    _die("d4", range(1, 5), 0.0, 0.2),
    _die("d6", range(1, 7), 0.005, 0.5),
    _die("d8", range(1, 9), 0.01, 0.6),
    _die("d10", range(1, 11), 0.02, 0.8),
    _die("d12", range(1, 13), 0.03, 1.0),
    _die("d20", range(1, 21), 0.05, 1.4),
)
"""The dice this service ships with, in the order it lists them (the table above)."""
