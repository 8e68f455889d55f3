"""What every probe can see: the settings, verify's HTTP helpers, the clock, the traffic.

Probes read the stack through the clients `verify` uses (`stackclient`'s, and
verify's readers of their answers), so a component that is down reads the same way
in both: one `ApiError` naming it and its URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from stackclient import Alertmanager, Api
from verify.context import Context as VerifyContext

from .settings import DrillSettings
from .traffic import Traffic

__all__ = ["DrillContext", "Reading", "not_yet", "seen"]


@dataclass(frozen=True)
class Reading:
    """What a probe saw: whether its signal responded, and the numbers that say so."""

    responded: bool
    detail: str


def seen(detail: str) -> Reading:
    return Reading(True, detail)


def not_yet(detail: str) -> Reading:
    return Reading(False, detail)


@dataclass
class DrillContext:
    settings: DrillSettings
    api: Api
    started: float = field(default_factory=time.time)
    """Unix seconds when the drill switched its flags (or stopped its service): the probes
    look at what came after."""
    resumed: float | None = None
    """Unix seconds when the drill started its stopped service again, if it did: the
    probes of its return look at what came after that."""
    traffic: Traffic | None = None
    found: dict[str, Any] = field(default_factory=dict)
    """Facts one probe leaves for another (trace ids of flagged log lines, alerts seen)."""
    verify: VerifyContext = field(init=False)

    def __post_init__(self) -> None:
        self.verify = VerifyContext(self.settings, self.api)

    @property
    def alertmanager(self) -> Alertmanager:
        return Alertmanager(self.api, self.settings.alertmanager_url)

    def elapsed(self) -> float:
        return time.time() - self.started
