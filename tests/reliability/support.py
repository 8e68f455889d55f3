"""Tools the reliability tests share: a raw HTTP client, series counts, process figures.

The client speaks HTTP/1.1 over plain asyncio sockets rather than through httpx: it
can send what no well-behaved client would (arbitrary method tokens, raw non-UTF-8
bytes, megabyte URLs), it keeps connections alive so tens of thousands of requests
fit in seconds, and it reports a dropped connection as a missing answer instead of
raising, because counting what was lost is the point of these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service import RunningService

__all__ = [
    "LEGITIMATE_TARGETS",
    "STANDARD_METHODS",
    "LoadResult",
    "RawResponse",
    "broken_log_lines",
    "exchange",
    "metric_series",
    "open_fds",
    "report",
    "request_bytes",
    "rss_bytes",
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


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def metric_series(service: RunningService) -> dict[str, set[SeriesKey]]:
    """Every series `/metrics` exposes, grouped by family: what Prometheus would store."""
    text = httpx.get(service.url + "/metrics", timeout=10).text
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))) for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def broken_log_lines(service: RunningService) -> tuple[int, list[str]]:
    """(complete stdout lines, those that are not one JSON object each).

    A line still being written has no newline yet; it is left for the next look.
    """
    data = service.output_path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    lines = [line for line in complete.split(b"\n") if line.strip()]
    broken = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                broken.append(line.decode("utf-8", "replace"))
        except ValueError:
            broken.append(line.decode("utf-8", "replace"))
    return len(lines), broken


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux only, like our machines)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def report(name: str, **figures: object) -> None:
    """Say what a test tried and what came of it, for `pytest -rA` and the figures table.

    With RELIABILITY_FIGURES=path, each report is also appended there as a JSON line,
    which is how docs/reliability.md gets its numbers from real runs.
    """
    print(f"[reliability] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps({"test": name, **figures}, default=str) + "\n")
