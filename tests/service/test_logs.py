"""Every stdout line is one JSON object, with the fields README.md shows and real trace ids."""

from __future__ import annotations

import logging
import re
from datetime import datetime

import httpx
import pytest
from dice_roller.logs import TraceContextFilter
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, TraceFlags

from tests.support.service import running_service, trace_of

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_every_line_is_json_with_the_spec_fields() -> None:
    with running_service({"DICE_RISKY_FAILURE_RATE": "0.5", "DICE_SEED": "3"}) as service:
        responses = [
            httpx.get(service.url + "/roll", params={"die": die}) for die in ("fair", "risky") * 10
        ]
        httpx.get(service.url + "/roll", params={"die": 'x"}\n{"level":"ERROR"'})
        httpx.get(service.url + "/%E2%9C%93/\u00e9")
        service.stop()
        lines = service.log_lines()
        records = service.log_records()  # json.loads of every line: fails on any other

    assert len(records) == len(lines) > 20
    for record in records:
        assert {"timestamp", "level", "message", "logger"} <= set(record), record
        stamp = datetime.fromisoformat(record["timestamp"])
        offset = stamp.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
        assert record["timestamp"].endswith("Z")
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert any(r["logger"].startswith("uvicorn") for r in records)

    rolls = [r for r in records if r["message"] in {"Roll completed", "Roll failed"}]
    assert len(rolls) == len(responses)
    by_trace = {r["trace_id"]: r for r in rolls}
    for response in responses:
        trace_id, span_id = trace_of(response.headers)
        record = by_trace[trace_id]
        assert HEX32.match(record["trace_id"]) and record["trace_id"] != "0" * 32
        assert HEX16.match(record["span_id"]) and record["span_id"] == span_id
        die = str(response.request.url.params["die"])
        assert record["die_type"] == die
        if response.status_code == 200:
            assert record["level"] == "INFO" and record["message"] == "Roll completed"
            assert record["roll_value"] == response.json()["roll"]
        else:
            assert record["level"] == "ERROR" and record["message"] == "Roll failed"
    assert any(r["level"] == "ERROR" for r in rolls)
    # ERROR lines are exactly the failed rolls: the hostile `die` value got a 422 and
    # an access line (with the value percent-encoded), never an event of its own.
    assert sum(1 for r in records if r["level"] == "ERROR") == sum(
        1 for r in responses if r.status_code == 500
    )


def test_log_level_setting_hides_info_lines() -> None:
    with running_service({"DICE_LOG_LEVEL": "warning", "DICE_RISKY_FAILURE_RATE": "1"}) as service:
        httpx.get(service.url + "/roll", params={"die": "fair"})
        httpx.get(service.url + "/roll", params={"die": "risky"})
        service.stop()
        records = service.log_records()
    assert {r["message"] for r in records if r["logger"] == "dice_roller"} == {"Roll failed"}
    assert all(r["level"] in {"WARNING", "ERROR", "CRITICAL"} for r in records)


def test_a_huge_request_line_is_cut_and_stays_one_json_line() -> None:
    """Docker splits stdout lines over 16 KiB; the access line of a huge URL is cut first."""
    path = "/" + "p" * 20_000
    with running_service() as service:
        assert httpx.get(service.url + path).status_code == 404
        service.stop()
        records = service.log_records()  # json.loads of every line: fails on a split one
    huge = [r["message"] for r in records if path[:1000] in r["message"]]
    assert len(huge) == 1, huge
    assert huge[0].endswith("more characters]"), huge[0][-80:]
    assert len(huge[0]) < 2100


def test_lines_written_outside_a_request_carry_no_ids() -> None:
    """Start-up and shutdown lines have no span: no ids at all, rather than zeros."""
    with running_service() as service:
        httpx.get(service.url + "/roll", params={"die": "fair"})
        service.stop()
        records = service.log_records()
    outside = [r for r in records if r["logger"] == "uvicorn.error"]
    messages = {r["message"] for r in outside}
    assert any(m.startswith("Started server process") for m in messages), messages
    assert {"Application startup complete.", "Application shutdown complete."} <= messages
    for record in outside:
        assert "trace_id" not in record and "span_id" not in record, record
    # The same filter does put ids on the lines of a request.
    rolls = [r for r in records if r["logger"] == "dice_roller"]
    assert rolls and all(HEX32.match(r.get("trace_id", "")) for r in rolls)


def _filtered_record() -> logging.LogRecord:
    record = logging.LogRecord("dice_roller", logging.INFO, __file__, 1, "event", None, None)
    assert TraceContextFilter().filter(record)
    return record


@pytest.mark.parametrize(
    "context",
    [None, INVALID_SPAN_CONTEXT],
    ids=["no-span", "invalid-span-context"],
)
def test_no_ids_without_a_valid_span(context: SpanContext | None) -> None:
    if context is None:
        record = _filtered_record()
    else:
        with trace.use_span(NonRecordingSpan(context)):
            record = _filtered_record()
    assert not hasattr(record, "trace_id") and not hasattr(record, "span_id")


def test_ids_of_the_current_span() -> None:
    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        record = _filtered_record()
    assert getattr(record, "trace_id", None) == f"{0xABC:032x}"
    assert getattr(record, "span_id", None) == f"{0xDEF:016x}"
