"""The dice the page offers: stage 2's two, or from stage 3 the die-service's.

At stage 3 the list is the die-service's `GET /dice`, through the shared traced client,
kept for `CACHE_SECONDS`: the page is drawn from it and `/api/roll` refuses a die that
is not on it, without asking the die-service on every roll (a roll's trace stays
frontend → dice-roller → die-service).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx
from opentelemetry.sdk.trace import TracerProvider
from sandbox_telemetry.upstream import Upstream

__all__ = ["CACHE_SECONDS", "NAME_PATTERN", "STAGE2_DICE", "Offered", "OfferedDice"]

CACHE_SECONDS = 10.0
"""How long the die-service's list is kept: a die added there shows up within this."""
NAME_PATTERN = r"[a-z0-9-]{1,32}"
"""A die's name as the die-service allows it; also what `/api/roll` takes."""
MAX_DICE = 50
"""The most dice the page lists, whatever the die-service says."""


@dataclass(frozen=True)
class Offered:
    name: str
    label: str
    """What the page says of it: `d20 (1-20, fails 5%)`."""


STAGE2_DICE = (
    Offered("fair", "fair (1-6)"),
    Offered("risky", "risky (2-7, fails one time in ten)"),
)


class OfferedDice:
    """The dice on offer; `all` raises `UpstreamFailure` when the die-service gives none."""

    def __init__(
        self,
        die_service_url: str | None,
        timeout_seconds: float,
        tracer_provider: TracerProvider,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.upstream = (
            Upstream("die-service", die_service_url, timeout_seconds, tracer_provider, transport)
            if die_service_url
            else None
        )
        self._kept: tuple[float, list[Offered]] | None = None

    async def all(self) -> list[Offered]:
        if self.upstream is None:
            return list(STAGE2_DICE)
        if self._kept and time.monotonic() - self._kept[0] < CACHE_SECONDS:
            return self._kept[1]
        answer = await self.upstream.get("/dice")
        if answer.status != 200:
            raise self.upstream.error_status(answer)
        dice = answer.body.get("dice") if isinstance(answer.body, dict) else None
        read = [_offered(die) for die in (dice if isinstance(dice, list) else [])][:MAX_DICE]
        offered = [die for die in read if die is not None]
        if not offered or len(offered) != len(read):
            raise self.upstream.bad_answer(answer, "a list of dice")
        self._kept = (time.monotonic(), offered)
        return offered

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()


def _offered(die: object) -> Offered | None:
    """A die of the die-service's list, or None if it is not one."""
    if not isinstance(die, dict):
        return None
    name, faces, rate = die.get("name"), die.get("faces"), die.get("failure_rate")
    if not (isinstance(name, str) and re.fullmatch(NAME_PATTERN, name)):
        return None
    if not (isinstance(faces, list) and faces and all(isinstance(f, int) for f in faces)):
        return None
    fails = f", fails {rate:.1%}" if isinstance(rate, int | float) and rate > 0 else ""
    return Offered(name, f"{name} ({faces[0]}-{faces[-1]}{fails})")
