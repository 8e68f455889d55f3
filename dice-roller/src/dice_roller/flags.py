"""The dice-roller's fault flags: what breaks a roll on purpose, read live from the flag file.

Each flag is defined once here, the way a metric is: its key in the file, what it
does, the numbers it accepts and its shipped default (the spec's behaviour). The file
(stack/flags/flags.json, `DICE_FLAGS_FILE`) holds the variants a user or a drill picks
from. How the file is watched and each flag evaluated, and recorded on the roll's span,
is shared with the die-service: `sandbox_telemetry.flags`.
Without a flag file every flag keeps its default: the spec, as the settings say.
"""

from __future__ import annotations

import logging

from sandbox_telemetry.flags import FaultFlag, RequestFlags, ServiceFlags

from . import SERVICE_NAME
from .dice import DieType
from .settings import Settings

__all__ = [
    "EXTRA_LATENCY_SECONDS",
    "EXTRA_LATENCY_SHARE",
    "FAILURE_RATE",
    "FLAGS",
    "LOADED_DIE_BIAS",
    "FaultFlag",
    "FaultFlags",
]

log = logging.getLogger("dice_roller.flags")

RISKY_FAILURE_RATE = FaultFlag(
    "risky-failure-rate", "Probability that a risky roll fails with HTTP 500.", 0.1, "spec"
)
FAIR_FAILURE_RATE = FaultFlag(
    "fair-failure-rate", "Probability that a fair roll fails with HTTP 500.", 0.0, "spec"
)
EXTRA_LATENCY_SECONDS = FaultFlag(
    "extra-latency-seconds", "Seconds added to a roll's random delay.", 0.0, "off", maximum=30.0
)
EXTRA_LATENCY_SHARE = FaultFlag(
    "extra-latency-share", "Share of rolls that get the extra latency, while it is on.", 1.0, "all"
)
LOADED_DIE_BIAS = FaultFlag(
    "loaded-die-bias",
    "Share of rolls that show the die's top face (6 fair, 7 risky, 20 d20).",
    0.0,
    "off",
)
FLAGS = (
    RISKY_FAILURE_RATE,
    FAIR_FAILURE_RATE,
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    LOADED_DIE_BIAS,
)
FAILURE_RATE: dict[str, FaultFlag] = {
    DieType.FAIR: FAIR_FAILURE_RATE,
    DieType.RISKY: RISKY_FAILURE_RATE,
}
"""The failure-rate flag of stage 1's dice; the die-service's other dice fail at the
rate it gives them."""


class FaultFlags(ServiceFlags):
    """The dice-roller's flags in `DICE_FLAGS_FILE`, watched; `for_roll` gives one
    roll's evaluations."""

    def __init__(self, settings: Settings) -> None:
        path, defaults = settings.flags_file, {}
        if path is None:  # no file: DICE_RISKY_FAILURE_RATE sets the risky rate
            defaults[RISKY_FAILURE_RATE.key] = settings.risky_failure_rate
        elif "risky_failure_rate" in settings.model_fields_set:
            log.warning(
                "DICE_RISKY_FAILURE_RATE is not used while DICE_FLAGS_FILE is set: the flag "
                "risky-failure-rate decides",
                extra={"flags_file": str(path)},
            )
        super().__init__(SERVICE_NAME, FLAGS, path, log, defaults)

    def for_roll(self, die: str) -> RequestFlags:
        """One roll's flags: targeting rules see the die, and `fractional` splits by trace."""
        return self.for_request(die=str(die))  # plain text for flagd
