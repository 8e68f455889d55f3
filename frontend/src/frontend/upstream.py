"""The call to the dice-roller: a traced HTTP client, and every way the call can fail.

The client span, and the `traceparent` header that makes the dice-roller's server
span its child, come from OpenTelemetry's httpx instrumentation: one line in
`DiceRoller.__init__`. What is left here is what a caller must decide for itself:
how long to wait, and what each failure means to the person who clicked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from sandbox_telemetry import cut_text

__all__ = ["DiceRoller", "FailureReason", "Roll", "UpstreamFailure"]

FailureReason = Literal["timeout", "unreachable", "error_status", "bad_answer"]
"""Why a roll did not come back: the `reason` label of the upstream metrics."""
MAX_DETAIL_CHARS = 200
"""The longest part of the dice-roller's own error message passed on to the page."""


@dataclass(frozen=True)
class Roll:
    value: int
    seconds: float


class UpstreamFailure(Exception):
    """The dice-roller gave no roll: why, how long it took, and what to tell the page."""

    def __init__(self, reason: FailureReason, status: int, detail: str, seconds: float) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status  # what the frontend answers: 502, 503 or 504
        self.detail = detail
        self.seconds = seconds


class DiceRoller:
    """The dice-roller's `/roll`, through one pooled, traced httpx client."""

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float,
        tracer_provider: TracerProvider,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        # httpx's timeout bounds each step (connect, each read); the whole call is
        # bounded in `roll`, so a dice-roller that trickles its answer cannot hang us.
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_seconds, transport=transport
        )
        HTTPXClientInstrumentor.instrument_client(self.client, tracer_provider=tracer_provider)

    async def roll(self, die: str) -> Roll:
        """Roll `die` on the dice-roller, or raise `UpstreamFailure` saying why not."""
        started = time.perf_counter()

        def failure(reason: FailureReason, status: int, detail: str) -> UpstreamFailure:
            return UpstreamFailure(reason, status, detail, time.perf_counter() - started)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await self.client.get("/roll", params={"die": die})
        except (httpx.TimeoutException, TimeoutError):
            raise failure(
                "timeout", 504, f"The dice-roller did not answer within {self.timeout_seconds} s."
            ) from None
        except httpx.TransportError as error:
            raise failure(
                "unreachable", 503, f"The dice-roller is unreachable at {self.base_url} ({error})."
            ) from None
        if response.status_code != 200:
            said = cut_text(_detail(response), MAX_DETAIL_CHARS)
            raise failure(
                "error_status", 502, f"The dice-roller answered {response.status_code}: {said}"
            )
        value = _roll_value(response)
        if value is None:
            raise failure("bad_answer", 502, "The dice-roller answered without a roll.")
        return Roll(value, time.perf_counter() - started)

    async def close(self) -> None:
        await self.client.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else response.reason_phrase


def _roll_value(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("roll") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
