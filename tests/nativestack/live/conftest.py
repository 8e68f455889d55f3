"""The native stack, started once for the tests of this package, with some traffic.

Prometheus 3.14, Alertmanager 0.35, Loki 3.7.6 and Alloy 1.18.1 built from their Go
modules, the Tempo stand-in, the alert-receiver and the service, each in its own
network namespace, on the shipped configs (nativestack/). The tests reach them at
their namespace addresses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from nativestack.stack import NativeStack
from tests.support.processes import eventually as wait_for
from verify.service import parse_traceresponse

T = TypeVar("T")

CONTAINER = "dice-roller-stage1"
WAIT = 90.0
"""Seconds any test waits for data to travel through the stack."""
LOKI_PAGE = 5000
"""Loki's default `max_entries_limit_per_query`: the most lines one query returns."""


@dataclass
class Roll:
    """One request the fixture made, and the trace it started."""

    die: str
    status: int
    trace_id: str


@dataclass
class LiveStack:
    native: NativeStack
    rolls: list[Roll]
    started: float

    def loki(
        self, query: str, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Streams of a LogQL log query over Loki's HTTP API."""
        response = httpx.get(
            f"{self.native.loki_url}/loki/api/v1/query_range",
            params={
                "query": query,
                "start": str(int((since or self.started - 60) * 1e9)),
                "end": str(int((time.time() + 5) * 1e9)),
                "limit": str(limit),
            },
            timeout=30,
        )
        assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def loki_lines(self, query: str, since: float) -> set[str]:
        """Every line of a log query since `since`, page by page: Loki answers at most
        5,000 lines a query, and the session's stack prints more than that."""
        start, end = int(since * 1e9), int((time.time() + 5) * 1e9)
        lines: set[str] = set()
        while True:
            response = httpx.get(
                f"{self.native.loki_url}/loki/api/v1/query_range",
                params={
                    "query": query,
                    "start": str(start),
                    "end": str(end),
                    "limit": str(LOKI_PAGE),
                    "direction": "forward",
                },
                timeout=30,
            )
            assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
            page = sorted(
                (int(stamp), line)
                for stream in response.json()["data"]["result"]
                for stamp, line in stream["values"]
            )
            lines.update(line for _, line in page)
            # The next page starts at the last line's nanosecond (inclusive: lines
            # sharing it are read twice, and the set keeps them once).
            if len(page) < LOKI_PAGE or page[-1][0] == start:
                return lines
            start = page[-1][0]

    def prometheus(self, expr: str, path: str = "/api/v1/query", **params: str) -> Any:
        response = httpx.get(
            f"{self.native.prometheus_url}{path}", params={"query": expr, **params}, timeout=30
        )
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]


def eventually(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """`tests.support.processes.eventually` with this package's patience."""
    return wait_for(probe, what, timeout)


def roll(url: str, dice: list[str]) -> list[Roll]:
    """Roll `dice` concurrently; every roll with the trace its answer names."""

    def one(die: str) -> Roll:
        response = httpx.get(f"{url}/roll", params={"die": die}, timeout=30)
        ids = parse_traceresponse(response.headers.get("traceresponse"))
        assert ids is not None, f"no trace named in {dict(response.headers)}"
        return Roll(die, response.status_code, ids[0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, dice))


@pytest.fixture(scope="package")
def live(native: NativeStack) -> LiveStack:
    """The session's native stack, and some rolls of each die made through it."""
    rolls = roll(native.service_url, ["fair", "risky"] * 15)
    return LiveStack(native, rolls, native.started)
