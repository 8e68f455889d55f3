"""Every way a call to the dice-roller can fail, as the frontend answers and records it.

The frontend runs as a process, as users run it, in front of a stand-in dice-roller
that misbehaves on demand (or of a port where nothing listens). For each failure: the
status and `reason` the page gets, with words it can show; the server span in ERROR
naming the failure; `frontend_upstream_errors_total{reason}` counted with the trace as
exemplar; and one ERROR line "Roll failed upstream", the request's only line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.frontend import RunningFrontend, running_frontend
from tests.support.http_server import serving
from tests.support.metrics import Metrics, scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.processes import eventually
from tests.support.service import trace_of
from tests.support.stand_in_dice_roller import StandInDiceRoller
from tests.support.tcp_server import serving_tcp
from tests.support.tools import free_port

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
STATUS_ERROR = 2
REASONS = ("timeout", "unreachable", "error_status", "bad_answer")
TIMEOUT_SECONDS = "0.3"
CEILING_SECONDS = 10.0
"""How long a test waits for the frontend's answer: far past its timeout, so an answer
that never comes fails the test rather than hanging it."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInDiceRoller]:
    with serving(StandInDiceRoller()) as stand_in:
        yield stand_in


def frontend_env(receiver: OtlpReceiver) -> dict[str, str]:
    return receiver.service_env(
        OTEL_BSP_SCHEDULE_DELAY="200", FRONTEND_UPSTREAM_TIMEOUT_SECONDS=TIMEOUT_SECONDS
    )


@pytest.fixture(scope="module")
def frontend(receiver: OtlpReceiver, stand_in: StandInDiceRoller) -> Iterator[RunningFrontend]:
    with running_frontend(stand_in.url, frontend_env(receiver)) as frontend:
        yield frontend


@dataclass(frozen=True)
class Failure:
    """A failed roll: what the page got, and what the frontend recorded of it."""

    status: int
    body: dict[str, Any]
    trace_id: str
    span: ReceivedSpan
    line: dict[str, Any]
    before: Metrics
    after: Metrics


def failed_roll(frontend: RunningFrontend, receiver: OtlpReceiver, die: str = "fair") -> Failure:
    before = scrape(frontend.url)
    response = httpx.get(frontend.url + "/api/roll", params={"die": die}, timeout=CEILING_SECONDS)
    trace_id, span_id = trace_of(response.headers)
    after = scrape(frontend.url)  # a later request: the roll's is over by its end

    lines = [r for r in frontend.log_records() if r.get("trace_id") == trace_id]
    assert len(lines) == 1, lines  # the roll's own line, no "Request failed" beside it

    def server_span() -> ReceivedSpan | None:
        spans = [s for s in list(receiver.spans) if s.trace_id == trace_id]
        return next((s for s in spans if s.kind == SERVER_KIND), None)

    span = eventually(server_span, f"the server span of {trace_id} arrived", timeout=15)
    assert span.span_id == span_id
    assert response.headers["content-type"] == "application/json"
    return Failure(response.status_code, response.json(), trace_id, span, lines[0], before, after)


def assert_recorded(failure: Failure, reason: str, status: int, die: str = "fair") -> None:
    """What every failure must leave: the answer, the span, the metrics, the line."""
    assert failure.status == status, failure.body
    assert set(failure.body) == {"detail", "reason", "trace_id"}
    assert failure.body["reason"] == reason
    assert failure.body["trace_id"] == failure.trace_id
    detail = failure.body["detail"]
    assert detail.startswith("The dice-roller ")

    span = failure.span
    assert span.name == "GET /api/roll"
    assert span.status_code == STATUS_ERROR
    assert span.attributes["upstream.failure"] == reason
    assert span.attributes["upstream.name"] == "dice-roller"
    assert span.attributes["die.type"] == die
    assert span.attributes["http.response.status_code"] == status

    errors = "frontend_upstream_errors_total"
    for other in REASONS:
        grew = failure.after.value(errors, reason=other) - failure.before.value(
            errors, reason=other
        )
        assert grew == (1 if other == reason else 0), (other, grew)
    assert failure.after.exemplar_trace_ids(errors, reason=reason) == {failure.trace_id}
    calls = "frontend_upstream_request_duration_seconds_count"
    for outcome in ("success", *REASONS):
        grew = failure.after.value(calls, outcome=outcome) - failure.before.value(
            calls, outcome=outcome
        )
        assert grew == (1 if outcome == reason else 0), (outcome, grew)
    requests = {"handler": "/api/roll", "method": "GET", "status": f"{status // 100}xx"}
    counted = failure.after.count("http_requests_total", **requests)
    assert counted - failure.before.count("http_requests_total", **requests) == 1

    line = failure.line
    assert line["level"] == "ERROR"
    assert line["message"] == "Roll failed upstream"
    assert line["logger"] == "frontend"
    assert line["span_id"] == span.span_id
    assert line["reason"] == reason
    assert line["upstream"] == "dice-roller"
    assert line["die_type"] == die
    assert line["error"] == detail
    assert line["status"] == status
    assert line["route"] == "/api/roll"
    assert line["method"] == "GET"


def test_an_unreachable_dice_roller_is_a_503(receiver: OtlpReceiver) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_frontend(nowhere, frontend_env(receiver)) as frontend:
        failure = failed_roll(frontend, receiver)
    assert_recorded(failure, "unreachable", 503)
    assert "unreachable" in failure.body["detail"]
    assert "127.0.0.1" in failure.body["detail"]


def test_a_dice_roller_too_slow_is_a_504_that_does_not_hang(
    frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour = "slow"
    asked = len(stand_in.received())
    # The stand-in holds the request far past the ceiling: an answer at all means the
    # frontend gave up by itself.
    failure = failed_roll(frontend, receiver, die="risky")
    assert_recorded(failure, "timeout", 504, die="risky")
    assert f"within {TIMEOUT_SECONDS} s" in failure.body["detail"]
    assert len(stand_in.received()) == asked + 1  # it was reached, then given up on


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopped: asyncio.Event
) -> None:
    """A dice-roller that answers one byte every 0.1 s, for as long as it is let: each
    read gets its byte well within any per-read timeout, the whole answer never comes."""
    await reader.readuntil(b"\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    answer = head + b'{"die": "fair", "roll": 4, "pad": "' + b"x" * 100_000
    for byte in answer:
        writer.write(bytes([byte]))
        await writer.drain()  # fails once the frontend has hung up: the handler ends
        try:
            await asyncio.wait_for(stopped.wait(), 0.1)
            return
        except TimeoutError:
            pass


def test_a_dice_roller_answering_a_byte_at_a_time_is_cut_off_at_the_timeout(
    receiver: OtlpReceiver,
) -> None:
    """FRONTEND_UPSTREAM_TIMEOUT_SECONDS is the longest wait for the dice-roller, the
    whole call: not the longest silence between two bytes."""
    with (
        serving_tcp(trickle) as url,
        running_frontend(url, frontend_env(receiver)) as frontend,
    ):
        try:
            failure = failed_roll(frontend, receiver)
        except httpx.TimeoutException:
            pytest.fail(
                f"no answer within {CEILING_SECONDS} s, with an upstream timeout of "
                f"{TIMEOUT_SECONDS} s: the frontend waits as long as the dice-roller trickles"
            )
    assert_recorded(failure, "timeout", 504)


def test_a_dice_roller_error_is_a_502_with_its_own_detail(
    frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour, stand_in.status = "error", 500
    stand_in.detail = "Roll failed: the risky die broke"
    failure = failed_roll(frontend, receiver)
    assert_recorded(failure, "error_status", 502)
    assert failure.body["detail"] == (
        "The dice-roller answered 500: Roll failed: the risky die broke"
    )


def test_a_huge_error_detail_is_cut_to_200_characters(
    frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour, stand_in.status = "error", 500
    stand_in.detail = "y" * 150 + "z" * 4850  # 5000 characters
    failure = failed_roll(frontend, receiver)
    assert_recorded(failure, "error_status", 502)
    detail = failure.body["detail"]
    assert detail.startswith("The dice-roller answered 500: " + "y" * 150 + "z" * 50)
    assert "z" * 51 not in detail
    assert "4800 more characters" in detail
    assert len(detail) < 300


def test_an_error_without_a_json_detail_gives_the_status_words(
    frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour, stand_in.status = "error_text", 503
    failure = failed_roll(frontend, receiver)
    assert_recorded(failure, "error_status", 502)
    assert failure.body["detail"] == "The dice-roller answered 503: Service Unavailable"


@pytest.mark.parametrize(
    "body",
    [
        {"die": "fair"},  # no roll
        {"die": "fair", "roll": "4"},  # a roll that is not a number
        {"die": "fair", "roll": True},  # JSON's true is no roll, though Python's bool is an int
        [4],
        "<html>a proxy's page</html>",  # not JSON at all
    ],
    ids=["no-roll", "string-roll", "bool-roll", "list", "not-json"],
)
def test_a_200_without_a_roll_is_a_502_bad_answer(
    frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller, body: object
) -> None:
    stand_in.behaviour = "answer"
    stand_in.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    failure = failed_roll(frontend, receiver)
    assert_recorded(failure, "bad_answer", 502)
    assert failure.body["detail"] == "The dice-roller answered without a roll."
