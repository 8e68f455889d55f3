"""A raw HTTP client, for the reliability tests that send what no client would.

The client speaks HTTP/1.1 over plain asyncio sockets rather than through httpx: it
can send what no well-behaved client would (arbitrary method tokens, raw non-UTF-8
bytes, megabyte URLs), it keeps connections alive so tens of thousands of requests
fit in seconds, and it reports a dropped connection as a missing answer instead of
raising, because counting what was lost is the point of these tests.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "LEGITIMATE_TARGETS",
    "STANDARD_METHODS",
    "LoadResult",
    "RawResponse",
    "exchange",
    "request_bytes",
    "run_load",
    "send_all",
    "warm_up_requests",
]


STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")
# One target of each kind the service tells apart: each route and each answer class.
LEGITIMATE_TARGETS = (
    "/",
    "/roll?die=fair",
    "/roll?die=risky",
    "/roll?die=bad",
    "/roll",
    "/roll/",  # a trailing slash is redirected
    "/nowhere",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/metrics",
)


def warm_up_requests() -> list[bytes]:
    """Each legitimate kind of request, with every method a client can get through.

    The risky die is rolled often enough (failure rate 0.5) that both its answers occur.
    """
    methods = (*STANDARD_METHODS, "PROPFIND")
    requests = [request_bytes(t, m) for t in LEGITIMATE_TARGETS for m in methods]
    return requests + [request_bytes("/roll?die=risky")] * 30


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    """Lower-cased names; the last one wins when a header repeats."""
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request_bytes(
    target: bytes | str, method: bytes | str = b"GET", *, close: bool = False
) -> bytes:
    """An HTTP/1.1 request line and headers, byte for byte as given (nothing is escaped)."""
    target = target.encode() if isinstance(target, str) else target
    method = method.encode() if isinstance(method, str) else method
    connection = b"Connection: close\r\n" if close else b""
    return method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + connection + b"\r\n"


async def _read_response(reader: asyncio.StreamReader, request: bytes) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if request.startswith(b"HEAD "):
        body = b""  # the length is announced, the body never sent
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()  # no length: the body ends with the connection
    return RawResponse(int(status_line.split(b" ")[1]), headers, body)


async def exchange(port: int, request: bytes, timeout: float = 10.0) -> RawResponse | None:
    """Send one request on a fresh connection; None if the server answered nothing."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader, request), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    finally:
        writer.close()


@dataclass
class LoadResult:
    """What came back for each request sent, in the order the requests were given."""

    responses: list[RawResponse | None]
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the answered requests only."""
    elapsed: float = 0.0
    finished_at: list[float] = field(default_factory=list)
    """`time.monotonic()` when each request got its answer (or was given up)."""

    @property
    def sent(self) -> int:
        return len(self.responses)

    @property
    def unanswered(self) -> int:
        return sum(response is None for response in self.responses)

    def statuses(self) -> Counter[int]:
        return Counter(response.status for response in self.responses if response is not None)

    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


class _Connection:
    """One keep-alive connection, reopened whenever the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(
        self, request: bytes, timeout: float, on_written: Callable[[], None] | None = None
    ) -> RawResponse | None:
        """`on_written` is called once the request is written out in full (the first time)."""
        for attempt in range(2):
            reused = self.streams is not None
            try:
                if self.streams is None:
                    self.streams = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), timeout
                    )
                reader, writer = self.streams
                writer.write(request)
                await writer.drain()
                if on_written is not None and attempt == 0:
                    on_written()
                response = await asyncio.wait_for(_read_response(reader, request), timeout)
            except asyncio.IncompleteReadError as error:
                self.close()
                # A kept-alive connection the server closed while idle: the classic race
                # every HTTP client retries once. Anything else is a lost answer.
                if reused and not error.partial and attempt == 0:
                    continue
                return None
            except (OSError, TimeoutError, asyncio.LimitOverrunError):
                self.close()
                return None
            if response.headers.get("connection", "").lower() == "close":
                self.close()
            return response
        return None

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def send_all(
    port: int,
    requests: Sequence[bytes],
    concurrency: int = 32,
    timeout: float = 10.0,
    on_written: Callable[[], None] | None = None,
) -> LoadResult:
    """Send every request, `concurrency` at a time, each worker on its own connection;
    `on_written` is called as each request is written out, before its answer."""
    result = LoadResult(responses=[None] * len(requests), finished_at=[0.0] * len(requests))
    next_index = iter(range(len(requests)))

    async def worker() -> None:
        connection = _Connection(port)
        try:
            for index in next_index:
                started = time.perf_counter()
                response = await connection.send(requests[index], timeout, on_written)
                result.responses[index] = response
                result.finished_at[index] = time.monotonic()
                if response is not None:
                    result.latencies.append(time.perf_counter() - started)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(requests)))))
    result.elapsed = time.perf_counter() - started
    return result


def run_load(
    port: int, requests: Sequence[bytes], concurrency: int = 32, timeout: float = 10.0
) -> LoadResult:
    return asyncio.run(send_all(port, requests, concurrency, timeout))
