"""The call to the dice-roller, through the shared traced client (`sandbox_telemetry`).

The client span and the `traceparent` header come with `Upstream`; what is the
frontend's own is what counts as a roll: a 200 answer with an integer `roll`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from opentelemetry.sdk.trace import TracerProvider
from sandbox_telemetry.upstream import Upstream

__all__ = ["Batch", "DiceRoller", "Roll"]


@dataclass(frozen=True)
class Roll:
    value: int
    seconds: float


@dataclass(frozen=True)
class Batch:
    values: list[int]
    failed: int
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

    async def roll_batch(self, die: str, times: int) -> Batch:
        """Stage 4: `times` rolls of `die` at once, or `UpstreamFailure` saying why not."""
        answer = await self.upstream.get("/roll-async", {"die": die, "times": str(times)})
        if answer.status != 200:
            raise self.upstream.error_status(answer)
        body = answer.body if isinstance(answer.body, dict) else {}
        values, failed = body.get("rolls"), body.get("failed")
        if not (
            isinstance(values, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            and isinstance(failed, int)
            and len(values) + failed == times
        ):
            raise self.upstream.bad_answer(answer, f"{times} rolls")
        return Batch(values, failed, answer.seconds)

    async def close(self) -> None:
        await self.upstream.close()
