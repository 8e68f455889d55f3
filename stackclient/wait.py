"""The one way the project waits for something that is on its way.

Data travels through the stack in steps (a batch of spans, a scrape, a log line
shipped), servers take a moment to start: the tools and the tests all ask again and
again until the answer is there, within a limit. Every such wait is `wait_until`,
so each one asks once more when its time is up, never sleeps past its limit, and
reads the same.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import httpx

__all__ = ["answers", "wait_until", "wait_until_serving"]

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """The first answer of `probe` that is not None, or None once `timeout` seconds
    have passed.

    `probe` is called at once, then every `interval` seconds, and a last time when the
    time is up, so even a timeout of 0 asks once. None means "not yet": a probe for
    which an empty list or 0 means "not yet" too returns `... or None`. An exception
    from `probe` is not caught: what cannot get better (a component that is down, a
    process that died) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        remaining = deadline - time.monotonic()
        if found is not None or remaining <= 0:
            return found
        time.sleep(min(interval, remaining))


def answers(url: str, status: int = 200, timeout: float = 2.0) -> bool | None:
    """True when GET `url` answers `status`; None while it does not (not listening yet,
    another status): a probe for `wait_until` that waits for a server to be ready."""
    try:
        return httpx.get(url, timeout=timeout).status_code == status or None
    except httpx.HTTPError:
        return None


def wait_until_serving(
    process: subprocess.Popen[Any],
    url: str,
    timeout: float,
    status: int = 200,
    interval: float = 0.1,
) -> Literal["exited", "timed out"] | None:
    """None once GET `url` answers `status`; otherwise why not: `process` exited while
    starting, or `timeout` seconds passed. The caller says it in its own words, with
    the process's output."""

    def ready() -> bool | None:
        if process.poll() is not None:
            raise _Exited
        return answers(url, status)

    try:
        return None if wait_until(ready, timeout, interval) else "timed out"
    except _Exited:
        return "exited"


class _Exited(Exception):
    """The process being waited for ended."""
