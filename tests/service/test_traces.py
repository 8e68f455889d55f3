"""Spans sent over real OTLP/HTTP to a receiver started by the test."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from tests.support.otlp import otlp_receiver
from tests.support.processes import eventually
from tests.support.service import running_service, trace_of
from tests.support.sockets import unread_connections
from tests.support.tools import free_port

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
STATUS_ERROR = 2


def otlp_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        **extra,
    }


def test_spans_carry_die_attributes_and_match_the_logs() -> None:
    with otlp_receiver() as receiver:
        env = otlp_env(
            receiver.endpoint,
            DICE_RISKY_FAILURE_RATE="0.5",
            DICE_SEED="5",
            DICE_MAX_DELAY_SECONDS="0.2",
        )
        with running_service(env) as service:
            responses = [
                httpx.get(service.url + "/roll", params={"die": die})
                for die in ("fair", "risky") * 8
            ]
            for _ in range(5):
                httpx.get(service.url + "/metrics")
            spans = receiver.wait_for_spans(len(responses) + 1)  # + the start-up probe of "/"
            service.stop()
            records = service.log_records()

    by_trace = {span.trace_id: span for span in spans if span.name == "GET /roll"}
    assert len(by_trace) == len(responses)
    assert not any("metrics" in span.name for span in spans)  # /metrics makes no spans
    assert all(span.resource["service.name"] == "dice-roller" for span in spans)
    roll_logs = {r["trace_id"]: r for r in records if r.get("die_type")}

    for response in responses:
        trace_id, span_id = trace_of(response.headers)
        span = by_trace[trace_id]
        assert span.span_id == span_id
        # The trace flags as the SDK set them: sampled, and a random trace id (Level 2).
        flags = int(response.headers["traceresponse"].rsplit("-", 1)[1], 16)
        assert flags & 0x01 and flags & 0x02, response.headers["traceresponse"]
        assert span.kind == SERVER_KIND
        assert span.attributes["die.type"] == response.request.url.params["die"]
        assert roll_logs[trace_id]["span_id"] == span.span_id
        if response.status_code == 200:
            assert span.attributes["die.result"] == "success"
            assert span.attributes["die.value"] == response.json()["roll"]
            assert span.status_code != STATUS_ERROR
        else:
            assert span.attributes["die.result"] == "error"
            assert span.attributes["die.error"]
            assert span.status_code == STATUS_ERROR
    # The delay is inside the span: across 16 rolls of up to 200 ms, some take > 50 ms.
    assert max(span.duration_seconds for span in by_trace.values()) > 0.05


def test_service_name_comes_from_otel_service_name() -> None:
    with otlp_receiver() as receiver:
        env = otlp_env(receiver.endpoint, OTEL_SERVICE_NAME="dice-roller-test")
        with running_service(env) as service:
            httpx.get(service.url + "/roll", params={"die": "fair"})
            spans = receiver.wait_for_spans(2)
    assert {span.resource["service.name"] for span in spans} == {"dice-roller-test"}


def test_sigterm_flushes_spans_of_requests_in_flight() -> None:
    with otlp_receiver() as receiver:
        env = otlp_env(
            receiver.endpoint, DICE_MAX_DELAY_SECONDS="0.5", OTEL_BSP_SCHEDULE_DELAY="30000"
        )
        with running_service(env) as service, httpx.Client(timeout=10) as client:
            import concurrent.futures

            written: list[str] = []  # appended to from the pool's threads

            def trace(event: str, info: dict[str, Any]) -> None:
                if event == "http11.send_request_body.complete":
                    written.append(event)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                futures = [
                    pool.submit(
                        client.get,
                        service.url + "/roll",
                        params={"die": "fair"},
                        extensions={"trace": trace},
                    )
                    for _ in range(8)
                ]
                # The requests are in flight (sent, and read by the service), the batch
                # not yet due: a fixed 0.1 s sleep could signal a loaded machine's
                # service before it had read them all, and lose those.
                eventually(
                    lambda: len(written) == 8 and unread_connections(service.port) == 0,
                    "eight rolls read by the service",
                    timeout=30,
                    interval=0.01,
                )
                service.process.send_signal(signal.SIGTERM)
                answers = [future.result() for future in futures]
            assert service.process.wait(15) == 0
        spans = receiver.wait_for_spans(9, timeout=2)
    assert [answer.status_code for answer in answers] == [200] * 8
    traced = {span.trace_id for span in spans}
    assert {trace_of(a.headers)[0] for a in answers} <= traced


@pytest.mark.parametrize("collector", ["refused", "unavailable", "hang"])
def test_a_sick_collector_costs_no_request_and_no_log_spam(collector: str) -> None:
    def run(endpoint: str) -> None:
        env = otlp_env(endpoint, DICE_MAX_DELAY_SECONDS="0")
        with running_service(env) as service:
            for _ in range(3):  # three export rounds, a second apart
                statuses = {
                    httpx.get(service.url + "/roll", params={"die": "fair"}).status_code
                    for _ in range(30)
                }
                assert statuses == {200}
                time.sleep(1.1)
            started = time.monotonic()
            assert service.stop(timeout=30) == 0
            shutdown_seconds = time.monotonic() - started
            records = service.log_records()
        warnings = [r for r in records if r["logger"].startswith("opentelemetry")]
        assert 1 <= len(warnings) <= 2, warnings  # said once, not once per batch
        # Bounded, not timed to the millisecond: the export timeout is 3 s by default.
        assert shutdown_seconds < 15

    if collector == "refused":
        run(f"http://127.0.0.1:{free_port()}")
    else:
        with otlp_receiver("unavailable" if collector == "unavailable" else "hang") as receiver:
            run(receiver.endpoint)
