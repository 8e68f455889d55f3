"""SIGTERM under load: every request in flight gets its answer, and its span is sent.

`docker compose stop` sends SIGTERM, then SIGKILL ten seconds later. Between the two
the service must stop accepting, let the rolls in flight finish (each may sleep up to
a second), flush the spans it still holds, and exit with 0. `test_traces.py` checks
this for eight requests; here hundreds are in flight at once, with the real delay,
and the batch processor holds every span until shutdown (a 30 s schedule), so a
missing flush would lose all of them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from tests.support.figures import report
from tests.support.otlp import otlp_receiver
from tests.support.raw_http import LoadResult, exchange, request_bytes, send_all
from tests.support.service import RunningService, running_service, trace_of
from tests.support.sockets import unread_connections

IN_FLIGHT = 300


async def until(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `done` without blocking the loop the rolls are sent from."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def sigterm_under_load(service: RunningService) -> tuple[LoadResult, float, bool]:
    """Rolls in flight, SIGTERM, then one more request: (rolls, SIGTERM time, late answered)."""
    requests = [request_bytes("/roll?die=" + ("fair", "risky")[i % 2]) for i in range(IN_FLIGHT)]
    written = 0

    def one_more_written() -> None:
        nonlocal written
        written += 1

    load = asyncio.create_task(
        send_all(service.port, requests, concurrency=IN_FLIGHT, on_written=one_more_written)
    )
    # Every roll read by the service (its delay begun) before the signal: after a fixed
    # 0.3 s, a loaded machine could leave some in the listen backlog, lost at shutdown.
    await until(
        lambda: written == IN_FLIGHT and unread_connections(service.port) == 0,
        "every roll read by the service",
    )
    service.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    # Uvicorn says so, then stops listening in the same step: from this line on, a new
    # connection meets a closed door. (It looks for the signal every 0.1 s, so a fixed
    # 0.1 s wait could still find it listening.)
    await until(lambda: '"Shutting down"' in service.output(), "the service shutting down")
    late = await exchange(service.port, request_bytes("/roll?die=fair"), timeout=5)
    return await load, signalled_at, late is not None


def test_sigterm_under_load_loses_nothing() -> None:
    with otlp_receiver() as receiver:
        env = receiver.service_env(
            OTEL_BSP_SCHEDULE_DELAY="30000",  # nothing leaves before shutdown
            DICE_MAX_DELAY_SECONDS="1.0",  # the real delay
        )
        with running_service(env) as service:
            result, signalled_at, late_answered = asyncio.run(sigterm_under_load(service))
            exit_code = service.process.wait(20)
            exit_seconds = time.monotonic() - signalled_at
            records = service.log_records()
        answered = [r for r in result.responses if r is not None]
        expected = {trace_of(r.headers)[0] for r in answered}
        spans = receiver.wait_for_spans(len(expected) + 1, timeout=5)

    received = {s.trace_id for s in spans if s.name == "GET /roll"}
    in_flight = sum(t > signalled_at for t in result.finished_at)
    statuses = result.statuses()
    report(
        "SIGTERM under load",
        sent=result.sent,
        in_flight_at_sigterm=in_flight,
        answered=len(answered),
        statuses=dict(sorted(statuses.items())),
        spans_received=len(received & expected),
        new_connection_after_sigterm="answered" if late_answered else "refused",
        exit_code=exit_code,
        seconds_to_exit=round(exit_seconds, 1),
    )
    assert result.unanswered == 0
    assert in_flight > IN_FLIGHT // 4  # the signal really came with requests in flight
    assert set(statuses) <= {200, 500}
    for response in answered:
        body = response.json()
        assert isinstance(body, dict)
        if response.status == 200:
            assert body["roll"] in range(1, 8)
        else:
            assert body["detail"].startswith("The risky die failed")
    assert expected <= received, f"{len(expected - received)} spans lost"
    assert exit_code == 0
    assert exit_seconds < 10  # within Docker's stop timeout
    assert not late_answered  # once stopping, the service accepts nothing new
    assert all(r["level"] != "ERROR" or r["message"] == "Roll failed" for r in records)
