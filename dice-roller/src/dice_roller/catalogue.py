"""Where a roll learns what its die is: by heart (stage 1), or from the die-service.

From stage 3 on, `DieServiceDice` asks the die-service for every roll's die, through
the shared traced client: its client span is a child of the roll's server span, and
the `traceparent` header it sends makes the die-service's server span a child of it.
One roll, one trace, three services. Nothing is cached, so every roll shows the hop.
"""

from __future__ import annotations

from typing import Protocol

from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError
from sandbox_telemetry.upstream import Upstream

from .dice import Die, stage1_dice
from .settings import Settings

__all__ = ["Catalogue", "DieServiceDice", "LocalDice", "catalogue_for"]

DIE_SERVICE = "die-service"


class Catalogue(Protocol):
    """The dice there are; `get` gives None for a name that is no die."""

    async def get(self, name: str) -> Die | None: ...

    async def names(self) -> list[str]: ...

    async def close(self) -> None: ...


class LocalDice:
    """Stage 1's two dice, known by heart."""

    def __init__(self, settings: Settings) -> None:
        self.dice = stage1_dice(settings.max_delay_seconds, settings.risky_failure_rate)

    async def get(self, name: str) -> Die | None:
        return self.dice.get(name)

    async def names(self) -> list[str]:
        return list(self.dice)

    async def close(self) -> None:
        pass


class DieServiceDice:
    """The die-service's dice; a call that gives nothing to use raises `UpstreamFailure`."""

    def __init__(self, url: str, timeout_seconds: float, tracer_provider: TracerProvider) -> None:
        self.upstream = Upstream(DIE_SERVICE, url, timeout_seconds, tracer_provider)

    async def get(self, name: str) -> Die | None:
        answer = await self.upstream.get(f"/dice/{name}")  # name matched NAME_PATTERN
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self.upstream.error_status(answer)
        try:
            die = Die.model_validate(answer.body)
        except ValidationError:
            die = None
        if die is None or die.name != name:
            raise self.upstream.bad_answer(answer, f"the {name} die's specification")
        return die

    async def names(self) -> list[str]:
        answer = await self.upstream.get("/dice")
        if answer.status != 200:
            raise self.upstream.error_status(answer)
        try:
            return [Die.model_validate(die).name for die in answer.body["dice"]]
        except (TypeError, KeyError, ValidationError):
            raise self.upstream.bad_answer(answer, "a list of dice") from None

    async def close(self) -> None:
        await self.upstream.close()


def catalogue_for(settings: Settings, tracer_provider: TracerProvider) -> Catalogue:
    """The die-service's dice when `DICE_DIE_SERVICE_URL` is set (stage 3), else stage 1's."""
    if settings.die_service_url is None:
        return LocalDice(settings)
    url = str(settings.die_service_url)
    return DieServiceDice(url, settings.die_service_timeout_seconds, tracer_provider)
