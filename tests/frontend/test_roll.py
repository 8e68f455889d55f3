"""A roll through the frontend, both services real processes: the answer, its one log
line, its metrics with exemplars, and its spans, one trace across the two services.

Both processes export their spans to one OTLP receiver, as they would to Alloy.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.frontend import RunningFrontend, running_frontend
from tests.support.metrics import scrape
from tests.support.otlp import OtlpReceiver, only, otlp_receiver, spans_of
from tests.support.service import RunningService, running_service, trace_of

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # spans leave within 0.2 s
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def dice_roller(receiver: OtlpReceiver) -> Iterator[RunningService]:
    # The risky die never fails here: a failure has tests of its own.
    env = receiver.service_env(DICE_RISKY_FAILURE_RATE="0", **FAST_EXPORT)
    with running_service(env) as service:
        yield service


@pytest.fixture(scope="module")
def frontend(receiver: OtlpReceiver, dice_roller: RunningService) -> Iterator[RunningFrontend]:
    with running_frontend(dice_roller.url, receiver.service_env(**FAST_EXPORT)) as frontend:
        yield frontend


def roll(frontend: RunningFrontend, die: str, **headers: str) -> httpx.Response:
    return httpx.get(frontend.url + "/api/roll", params={"die": die}, headers=headers, timeout=10)


@pytest.mark.parametrize(("die", "low", "high"), [("fair", 1, 6), ("risky", 2, 7)])
def test_a_roll_answers_the_die_its_value_and_its_trace(
    frontend: RunningFrontend, die: str, low: int, high: int
) -> None:
    for _ in range(10):
        response = roll(frontend, die)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"die", "roll", "trace_id"}
        assert body["die"] == die
        assert isinstance(body["roll"], int) and low <= body["roll"] <= high
        trace_id, _ = trace_of(response.headers)
        assert body["trace_id"] == trace_id
        assert HEX32.fullmatch(trace_id)


def test_a_roll_writes_one_line_roll_served_with_its_ids_and_http_fields(
    frontend: RunningFrontend,
) -> None:
    response = roll(frontend, "fair")
    assert response.status_code == 200
    trace_id, span_id = trace_of(response.headers)
    scrape(frontend.url)  # a later request: the roll's request is over by its end

    records = frontend.log_records()
    lines = [r for r in records if r.get("trace_id") == trace_id]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["message"] == "Roll served"
    assert line["level"] == "INFO"
    assert line["logger"] == "frontend"
    assert line["span_id"] == span_id
    assert line["die_type"] == "fair"
    assert line["roll_value"] == response.json()["roll"]
    assert line["method"] == "GET"
    assert line["route"] == "/api/roll"
    assert line["path"] == "/api/roll"
    assert line["query"] == "die=fair"
    assert line["status"] == 200
    assert isinstance(line["duration_seconds"], float) and line["duration_seconds"] >= 0
    assert isinstance(line["upstream_seconds"], float) and line["upstream_seconds"] >= 0
    assert line["client"].startswith("127.0.0.1:")
    # httpx's "HTTP Request: GET ..." would repeat the client span: it is not written.
    assert not [r for r in records if r["logger"].startswith("httpx")]
    assert not [r for r in records if "HTTP Request" in r["message"]]


def test_a_roll_is_counted_with_its_trace_as_exemplar(frontend: RunningFrontend) -> None:
    labels = {"handler": "/api/roll", "method": "GET", "status": "2xx"}
    success = {"upstream": "dice-roller", "outcome": "success"}
    before = scrape(frontend.url)
    response = roll(frontend, "fair")
    assert response.status_code == 200
    trace_id, _ = trace_of(response.headers)
    after = scrape(frontend.url)

    requests = "http_requests_total"
    assert after.count(requests, **labels) - before.count(requests, **labels) == 1
    assert after.exemplar_trace_ids(requests, **labels) == {trace_id}
    calls = "frontend_upstream_request_duration_seconds_count"
    assert after.value(calls, **success) - before.value(calls, **success) == 1
    buckets = "frontend_upstream_request_duration_seconds_bucket"
    assert trace_id in after.exemplar_trace_ids(buckets, **success)
    # A roll that came back is no error, of any reason.
    for reason in ("timeout", "unreachable", "error_status", "bad_answer"):
        errors = "frontend_upstream_errors_total"
        assert after.value(errors, reason=reason) == before.value(errors, reason=reason)


def test_the_trace_goes_from_the_frontend_to_the_dice_roller(
    frontend: RunningFrontend, receiver: OtlpReceiver
) -> None:
    response = roll(frontend, "risky")
    assert response.status_code == 200
    trace_id, span_id = trace_of(response.headers)
    spans = spans_of(receiver, trace_id, 3)

    server = only(spans, "frontend", SERVER_KIND)
    assert server.name == "GET /api/roll"
    assert server.span_id == span_id  # the span the `traceresponse` header names
    assert server.parent_span_id == ""  # no traceparent came in: the trace starts here
    assert server.attributes["die.type"] == "risky"
    assert server.attributes["die.value"] == response.json()["roll"]
    assert server.status_code != STATUS_ERROR
    client = only(spans, "frontend", CLIENT_KIND)
    assert client.parent_span_id == server.span_id
    # The dice-roller continued the trace the client span's `traceparent` sent.
    upstream = only(spans, "dice-roller", SERVER_KIND)
    assert upstream.name == "GET /roll"
    assert upstream.parent_span_id == client.span_id


def test_an_incoming_traceparent_makes_the_server_span_its_child(
    frontend: RunningFrontend, receiver: OtlpReceiver
) -> None:
    browser_trace, browser_span = secrets.token_hex(16), secrets.token_hex(8)
    response = roll(frontend, "fair", traceparent=f"00-{browser_trace}-{browser_span}-01")
    assert response.status_code == 200
    assert response.json()["trace_id"] == browser_trace
    trace_id, span_id = trace_of(response.headers)
    assert trace_id == browser_trace and span_id != browser_span

    spans = spans_of(receiver, browser_trace, 3)
    server = only(spans, "frontend", SERVER_KIND)
    assert server.span_id == span_id
    assert server.parent_span_id == browser_span
    client = only(spans, "frontend", CLIENT_KIND)
    assert only(spans, "dice-roller", SERVER_KIND).parent_span_id == client.span_id


def test_the_page_and_its_script_are_served(frontend: RunningFrontend) -> None:
    page = httpx.get(frontend.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/page.js"' in page.text
    script = httpx.get(frontend.url + "/static/page.js", timeout=10)
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
