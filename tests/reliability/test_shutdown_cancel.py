"""A roll still running at the shutdown grace limit is logged as cancelled, in one line.

On SIGTERM uvicorn lets the requests in flight run for `timeout_graceful_shutdown`
(5 s), then cancels the rest: each gets a `CancelledError`, and uvicorn answers 500.
That is the service stopping as told, not a request failing: one short line says so,
with no traceback of where the roll happened to be waiting.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support.figures import report
from tests.support.raw_http import RawResponse, request_bytes, send_all
from tests.support.service import RunningService, running_service
from tests.support.sockets import unread_connections

ROLLS = 4
ENV = {
    "DICE_MAX_DELAY_SECONDS": "20",
    # With this seed the four delays are 19.1, 19.0, 1.1 and 1.7 s: two outlast the
    # 5 s grace by far, two end well within it.
    "DICE_SEED": "2",
}


async def sigterm_with_long_rolls(service: RunningService) -> list[RawResponse | None]:
    written = 0

    def one_more_written() -> None:
        nonlocal written
        written += 1

    rolls = asyncio.create_task(
        send_all(
            service.port,
            [request_bytes("/roll?die=fair")] * ROLLS,
            concurrency=ROLLS,
            timeout=60,
            on_written=one_more_written,
        )
    )
    deadline = time.monotonic() + 30
    while written < ROLLS or unread_connections(service.port) > 0:
        if time.monotonic() > deadline:
            pytest.fail("the rolls were not all read by the service within 30 s")
        await asyncio.sleep(0.01)
    service.process.send_signal(signal.SIGTERM)
    return (await rolls).responses


def test_rolls_cancelled_at_shutdown_are_one_short_line_each() -> None:
    with running_service(ENV) as service:
        responses = asyncio.run(sigterm_with_long_rolls(service))
        exit_code = service.process.wait(30)
        lines = service.log_lines()
        records = service.log_records()

    statuses = [r.status if r else None for r in responses]
    cancelled = [r for r in records if r["message"] == "Request cancelled at shutdown"]
    tracebacks = [r for r in records if "exc_info" in r]
    report(
        "rolls cancelled at the shutdown grace limit",
        rolls=ROLLS,
        statuses=sorted(map(str, statuses)),
        cancelled_lines=len(cancelled),
        longest_cancelled_line=max((len(line) for line in lines if "cancelled" in line), default=0),
        traceback_lines=len(tracebacks),
        error_lines=[r["message"] for r in records if r["level"] == "ERROR"],
        exit_code=exit_code,
    )
    assert exit_code == 0
    assert statuses.count(200) == 2  # the short rolls finished within the grace
    assert statuses.count(500) == 2  # uvicorn's answer to a cancelled request
    assert len(cancelled) == 2  # one line each
    for record in cancelled:
        assert record["level"] == "WARNING"
        assert (record["route"], record["status"]) == ("/roll", 500)
        assert record["duration_seconds"] > 5  # it ran for the whole grace
        assert "trace_id" in record  # still tied to its trace
    assert tracebacks == []
    assert not any(
        r["message"].startswith(("Request failed", "Exception in ASGI")) for r in records
    )
    assert all(len(line) < 1024 for line in lines if "cancelled" in line)
