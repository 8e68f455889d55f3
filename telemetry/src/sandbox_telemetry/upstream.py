"""A call from one sandbox service to another: a traced HTTP client, and how it fails.

The client span, and the `traceparent` header that makes the called service's server
span its child, come from OpenTelemetry's httpx instrumentation: one line in
`Upstream.__init__`. What is left is what a caller must decide for itself: how long to
wait, and what each failure means to whoever asked. The frontend calls the dice-roller
this way (stage 2), and the dice-roller the die-service (stage 3).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from .logs import cut_text

__all__ = ["FAILURE_REASONS", "Answer", "FailureReason", "Upstream", "UpstreamFailure"]

FailureReason = Literal["timeout", "unreachable", "error_status", "bad_answer"]
"""Why a call gave nothing to use: the `reason` label of the callers' upstream metrics."""
FAILURE_REASONS: tuple[FailureReason, ...] = (
    "timeout",
    "unreachable",
    "error_status",
    "bad_answer",
)
BACKSTOP = 1.5
"""The whole call's bound, in timeouts: httpx's own timeout fires first, inside the
client span, which then records the error; this catches an answer that trickles."""
MAX_DETAIL_CHARS = 200
"""The longest part of the called service's own error message passed on."""


@dataclass(frozen=True)
class Answer:
    """What the called service answered, and how long the call took."""

    status: int
    reason: str
    """The status's phrase (`Service Unavailable`)."""
    body: Any
    """The JSON body, or None when it was not JSON."""
    seconds: float


class UpstreamFailure(Exception):
    """A call to `upstream` gave nothing to use: why, how long it took, and what to tell
    the caller's own client (`status`: 502, 503 or 504)."""

    def __init__(
        self, upstream: str, reason: FailureReason, status: int, detail: str, seconds: float
    ) -> None:
        super().__init__(detail)
        self.upstream = upstream
        self.reason = reason
        self.status = status
        self.detail = detail
        self.seconds = seconds


class Upstream:
    """One service we call, by `name`, through one pooled, traced httpx client."""

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout_seconds: float,
        tracer_provider: TracerProvider,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        # httpx's timeout bounds each step (connect, each read); the whole call is
        # bounded in `get` (BACKSTOP), so a service that trickles its answer cannot hang us.
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_seconds, transport=transport
        )
        HTTPXClientInstrumentor.instrument_client(self.client, tracer_provider=tracer_provider)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        """GET `path`: whatever status it answers, or `UpstreamFailure` (504 when it is
        too slow, 503 when it cannot be reached)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_seconds * BACKSTOP):
                response = await self.client.get(path, params=params)
        except (httpx.TimeoutException, TimeoutError):
            detail = f"The {self.name} did not answer within {self.timeout_seconds:g} s."
            raise UpstreamFailure(
                self.name, "timeout", 504, detail, time.perf_counter() - started
            ) from None
        except httpx.TransportError as error:
            detail = f"The {self.name} is unreachable at {self.base_url} ({error})."
            raise UpstreamFailure(
                self.name, "unreachable", 503, detail, time.perf_counter() - started
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        seconds = time.perf_counter() - started
        return Answer(response.status_code, response.reason_phrase, body, seconds)

    def error_status(self, answer: Answer) -> UpstreamFailure:
        """The failure for an answer with an error status, quoting its `detail` (cut)."""
        detail = answer.body.get("detail") if isinstance(answer.body, dict) else None
        said = cut_text(detail if isinstance(detail, str) else answer.reason, MAX_DETAIL_CHARS)
        return UpstreamFailure(
            self.name,
            "error_status",
            502,
            f"The {self.name} answered {answer.status}: {said}",
            answer.seconds,
        )

    def bad_answer(self, answer: Answer, missing: str) -> UpstreamFailure:
        """The failure for a 200 answer without what was asked for."""
        return UpstreamFailure(
            self.name,
            "bad_answer",
            502,
            f"The {self.name} answered without {missing}.",
            answer.seconds,
        )

    async def close(self) -> None:
        await self.client.aclose()
