"""The die-service's fault flags: a slow service and a slow database, read live from
the flag file.

Each flag is defined once here, with its key in the file, what it does, the numbers it
accepts and its shipped default (off). The file (stack/flags/flags.json,
`DIE_SERVICE_FLAGS_FILE`) holds the variants a user or a drill picks from; it is the
dice-roller's file too, and each service reads only its own flags. How the file is
watched and each flag evaluated, and recorded on the lookup's span, is shared with the
dice-roller: `sandbox_telemetry.flags`. Without a flag file both flags are off.

- `die-service-latency-seconds`: the service waits that long before it looks a die up
  (`GET /dice/{name}`): a longer server span. Past the dice-roller's 1 s timeout its
  rolls get 504s.
- `database-latency-seconds`: the lookup's query waits that long in PostgreSQL itself
  (`pg_sleep`, in the statement the SELECT span shows). Past
  `DIE_SERVICE_DATABASE_TIMEOUT_SECONDS` the lookup is a 503, reason `timeout`. Only
  from stage 5: the dice in memory have no query to slow, and the flag is not read.
"""

from __future__ import annotations

import logging

from sandbox_telemetry.flags import FaultFlag, RequestFlags, ServiceFlags

from . import SERVICE_NAME
from .settings import Settings

__all__ = ["DATABASE_LATENCY_SECONDS", "DIE_SERVICE_LATENCY_SECONDS", "FLAGS", "FaultFlags"]

log = logging.getLogger("die_service.flags")

DIE_SERVICE_LATENCY_SECONDS = FaultFlag(
    "die-service-latency-seconds",
    "Seconds the die-service waits before it looks a die up.",
    0.0,
    "off",
    maximum=10.0,
)
DATABASE_LATENCY_SECONDS = FaultFlag(
    "database-latency-seconds",
    "Seconds a lookup's query waits in PostgreSQL (pg_sleep); stage 5 only.",
    0.0,
    "off",
    maximum=10.0,
)
FLAGS = (DIE_SERVICE_LATENCY_SECONDS, DATABASE_LATENCY_SECONDS)


class FaultFlags(ServiceFlags):
    """The die-service's flags in `DIE_SERVICE_FLAGS_FILE`, watched; `for_lookup` gives
    one lookup's evaluations."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(SERVICE_NAME, FLAGS, settings.flags_file, log)

    def for_lookup(self, name: str) -> RequestFlags:
        """One lookup's flags: targeting rules see the die, and `fractional` splits by
        trace."""
        return self.for_request(die=name)
