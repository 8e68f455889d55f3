"""The die-service's own metric family, chosen once, here.

The HTTP families (`http_requests_total`, `http_request_duration_seconds`: the
service's RED metrics) come with the shared set-up (`sandbox_telemetry.http`); this
one says what was asked of the catalogue:

- `die_service_lookups_total{die, outcome}`: every `GET /dice/{name}`, `outcome`
  being `found` or `unknown`. `die` is the die's name when the catalogue has it, and
  `other` when it has not: the name comes from the client, and a label taking any
  value a client sends would mint one series per request (a scanner trying names
  would fill Prometheus). Known names are as many as the catalogue has dice.

A rise of `outcome="unknown"` is a client asking for a die that does not exist: a
typo in the roller, or a die taken out of the catalogue while still in use.
The lookup handler counts with the trace id as exemplar.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

__all__ = ["OTHER_DIE", "DieServiceMetrics", "Outcome"]

Outcome = Literal["found", "unknown"]
"""How a lookup ended: the `outcome` label, and the span's `die.lookup` attribute."""
OTHER_DIE = "other"
"""The `die` label of every name the catalogue does not have."""


class DieServiceMetrics:
    """The lookup family, registered on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "die_service_lookups",
            "Lookups of one die, by die (`other`: not in the catalogue) and outcome.",
            ("die", "outcome"),
            registry=registry,
        )
        self.lookups.labels(OTHER_DIE, "unknown")

    def start_at_zero(self, names: Iterable[str]) -> None:
        """Make every known die's series exist before its first lookup, so that rate()
        and increase() see the first one."""
        for name in names:
            self.lookups.labels(name, "found")

    def count(self, name: str, outcome: Outcome, exemplar: dict[str, str] | None) -> None:
        """One lookup; `name` is the label only when the die was found."""
        die = name if outcome == "found" else OTHER_DIE
        self.lookups.labels(die, outcome).inc(exemplar=exemplar)
