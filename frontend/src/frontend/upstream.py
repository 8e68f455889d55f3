"""The call to the dice-roller, through the shared traced client (`sandbox_telemetry`).

The client span and the `traceparent` header come with `Upstream`; what is the
frontend's own is what counts as a roll: a 200 answer with an integer `roll`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from opentelemetry.sdk.trace import TracerProvider
from sandbox_telemetry.upstream import Upstream

__all__ = ["DiceRoller", "Roll"]


@dataclass(frozen=True)
class Roll:
    value: int
    seconds: float


class DiceRoller:
    """The dice-roller's `/roll`."""

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float,
        tracer_provider: TracerProvider,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.upstream = Upstream(
            "dice-roller", base_url, timeout_seconds, tracer_provider, transport
        )

    async def roll(self, die: str) -> Roll:
        """Roll `die` on the dice-roller, or raise `UpstreamFailure` saying why not."""
        answer = await self.upstream.get("/roll", {"die": die})
        if answer.status != 200:
            raise self.upstream.error_status(answer)
        value = answer.body.get("roll") if isinstance(answer.body, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.upstream.bad_answer(answer, "a roll")
        return Roll(value, answer.seconds)

    async def close(self) -> None:
        await self.upstream.close()
