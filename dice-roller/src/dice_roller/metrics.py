"""The dice's own metric families: names, labels and buckets, chosen once, here.

The HTTP families (`http_requests_total`, `http_request_duration_seconds`) come with
the shared set-up (`sandbox_telemetry.http`); these say what the dice did:

- `dice_rolls_total{die_type, result}`: every roll, `result` being success or error;
- `dice_roll_value{die_type}`: the values rolled, one bucket per face;
- `dice_roll_duration_seconds{die_type}`: how long a roll took, its delay included
  (the HTTP histogram cannot tell the dice apart), from when its die is known;
- stage 3 only, `dice_die_service_errors_total{reason}`: rolls that got no die from
  the die-service: `timeout`, `unreachable`, `error_status` or `bad_answer`. (The
  service graph cannot count them: a call that never reached the die-service has no
  server span to pair with.)

- stage 4, `dice_batch_size`: how many dice each `/roll-async` rolled at once, and
  `dice_rolls_in_flight`: the rolls of batches under way right now.

A stage 3 die is any the die-service has: `die_type` stays bounded, since only a die it
knows is ever rolled. Its series start at its first roll.

The roll handler observes them with the trace id as exemplar.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sandbox_telemetry import LATENCY_BUCKETS
from sandbox_telemetry.upstream import FAILURE_REASONS

from .dice import DieType

__all__ = ["ROLL_VALUE_BUCKETS", "STAGE3_ROLL_VALUE_BUCKETS", "DiceMetrics"]

ROLL_VALUE_BUCKETS = tuple(float(value) for value in range(1, 9))
"""One bucket per possible value, 1 to 8: fair rolls fill 1-6, risky rolls 2-7."""
STAGE3_ROLL_VALUE_BUCKETS = tuple(float(value) for value in range(1, 21))
"""From stage 3, one per face up to the d20's."""


class DiceMetrics:
    """The dice families, registered on the service's registry."""

    def __init__(self, registry: CollectorRegistry, stage3: bool = False) -> None:
        self.rolls = Counter(
            "dice_rolls",
            "Dice rolled, by die type and result (success or error).",
            ("die_type", "result"),
            registry=registry,
        )
        self.roll_value = Histogram(
            "dice_roll_value",
            "Values rolled, by die type.",
            ("die_type",),
            buckets=STAGE3_ROLL_VALUE_BUCKETS if stage3 else ROLL_VALUE_BUCKETS,
            registry=registry,
        )
        self.roll_duration = Histogram(
            "dice_roll_duration_seconds",
            "Time a roll took, its delay included, by die type, whatever its result.",
            ("die_type",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Every series exists at zero from the start: rate() and increase() need a
        # series before its first increment, or the first risky failure is invisible.
        for die in DieType:
            for result in ("success", "error"):
                self.rolls.labels(die, result)
            self.roll_value.labels(die)
            self.roll_duration.labels(die)
        self.die_service_errors = Counter(
            "dice_die_service_errors",
            "Rolls that got no die from the die-service, by reason.",
            ("reason",),
            registry=registry if stage3 else None,  # not exported at stage 1
        )
        for reason in FAILURE_REASONS:
            self.die_service_errors.labels(reason)
        self.batch_size = Histogram(
            "dice_batch_size",
            "Dice rolled at once by one /roll-async request.",
            buckets=(1, 2, 5, 10, 20),
            registry=registry if stage3 else None,
        )
        self.rolls_in_flight = Gauge(
            "dice_rolls_in_flight",
            "Rolls of /roll-async under way now.",
            registry=registry if stage3 else None,
        )
