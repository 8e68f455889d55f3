"""The HTTP side: a few small httpx clients used as one.

Why not one client? httpcore 1.0's connection pool rescans all the requests and
connections it holds each time a request starts or ends, so its cost per request grows
with the number in flight. With a hundred in flight that cost made the generator, not
the service, the thing that set the rate, and a slow moment fed itself: more in flight,
dearer requests, even more in flight. Pools of ``REQUESTS_PER_CLIENT`` keep the cost per
request flat, and each pool has a connection for every request it may hold, so no
request waits for a connection inside the generator and every latency measured is the
service's.
"""

from __future__ import annotations

import math
from types import TracebackType

import httpx

from .config import Settings

__all__ = ["REQUESTS_PER_CLIENT", "ClientGroup"]

#: Most requests one httpx client holds at a time.
REQUESTS_PER_CLIENT = 8


class ClientGroup:
    """Enough small ``httpx.AsyncClient``s for the run; each request goes to the least busy.

    Idle connections are all kept (``max_keepalive_connections`` equal to the maximum):
    httpcore 1.0 compares that limit with the count of *all* its connections, so a lower
    one closes idle connections whenever the pool is busy, and requests then pay for new
    connections (encode/httpcore#1000).
    """

    def __init__(self, settings: Settings) -> None:
        in_flight = settings.max_in_flight if settings.open_loop else settings.users
        per_client = min(in_flight, REQUESTS_PER_CLIENT)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self._clients = [
            httpx.AsyncClient(
                base_url=settings.url,
                timeout=httpx.Timeout(settings.timeout),
                limits=limits,
                headers={"user-agent": "traffic-gen"},
            )
            for _ in range(math.ceil(in_flight / per_client))
        ]
        self._busy = [0] * len(self._clients)
        self.base_url = self._clients[0].base_url

    async def get(self, url: httpx.URL | str) -> httpx.Response:
        """``GET url`` (absolute, or relative to the base URL); the body is read in full."""
        index = self._busy.index(min(self._busy))
        self._busy[index] += 1
        try:
            return await self._clients[index].get(url)
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> ClientGroup:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
