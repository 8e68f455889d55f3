"""Every stdout line is one JSON object, with the fields README.md shows and real trace ids."""

from __future__ import annotations

import logging
import re
from datetime import datetime

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, TraceFlags
from sandbox_telemetry.logs import TraceContextFilter

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
    # a request line with the value inside a JSON string, never a line of its own.
    assert sum(1 for r in records if r["level"] == "ERROR") == sum(
        1 for r in responses if r.status_code == 500
    )


def test_one_line_per_request_with_how_it_was_asked_and_answered() -> None:
    """The canonical line: a roll's outcome and its HTTP exchange on one line, and the
    same line, without die fields, for any other request. Uvicorn's access line is gone."""
    with running_service({"DICE_RISKY_FAILURE_RATE": "1"}) as service:
        answers = {
            "fair": httpx.get(service.url + "/roll", params={"die": "fair"}),
            "risky": httpx.get(service.url + "/roll", params={"die": "risky"}),
            "index": httpx.get(service.url + "/"),
            "missing": httpx.get(service.url + "/nowhere?x=1"),
            "invalid": httpx.get(service.url + "/roll", params={"die": "loaded"}),
        }
        service.stop()
        records = service.log_records()

    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    lines_of = {
        name: [r for r in records if r.get("trace_id") == trace_of(answer.headers)[0]]
        for name, answer in answers.items()
    }
    assert all(len(lines) == 1 for lines in lines_of.values()), lines_of
    line = {name: lines[0] for name, lines in lines_of.items()}

    fair, risky = line["fair"], line["risky"]
    assert (
        fair["message"] == "Roll completed" and fair["roll_value"] == answers["fair"].json()["roll"]
    )
    assert risky["message"] == "Roll failed" and risky["level"] == "ERROR" and risky["error"]
    for name, record in line.items():
        answer = answers[name]
        assert record["logger"] == "dice_roller"
        assert record["method"] == "GET"
        assert record["path"] == answer.request.url.path
        assert record["status"] == answer.status_code
        assert 0 <= record["duration_seconds"] < 60
        assert re.fullmatch(r"127\.0\.0\.1:\d+", record["client"]), record
    assert fair["route"] == risky["route"] == line["invalid"]["route"] == "/roll"
    assert fair["query"] == "die=fair"
    assert line["index"]["route"] == "/" and line["missing"]["route"] is None
    assert line["missing"]["query"] == "x=1"
    # Lines of requests that were not rolls say so, and carry no die fields.
    for name in ("index", "missing", "invalid"):
        assert line[name]["message"] == "Request completed" and line[name]["level"] == "INFO"
        assert not {"die_type", "roll_value", "error"} & line[name].keys()
    assert (line["missing"]["status"], line["invalid"]["status"]) == (404, 422)


def test_a_scrape_has_its_line_without_ids() -> None:
    """A scrape is not traced: its line has no ids, and its answer no traceresponse."""
    with running_service() as service:
        scrape = httpx.get(service.url + "/metrics")
        assert scrape.status_code == 200
        service.stop()
        records = service.log_records()
    assert "traceresponse" not in scrape.headers
    scrapes = [r for r in records if r.get("path") == "/metrics"]
    assert len(scrapes) == 1 and scrapes[0]["status"] == 200
    assert "trace_id" not in scrapes[0] and "span_id" not in scrapes[0]


def test_log_level_setting_hides_info_lines() -> None:
    with running_service({"DICE_LOG_LEVEL": "warning", "DICE_RISKY_FAILURE_RATE": "1"}) as service:
        httpx.get(service.url + "/roll", params={"die": "fair"})
        httpx.get(service.url + "/roll", params={"die": "risky"})
        service.stop()
        records = service.log_records()
    assert {r["message"] for r in records if r["logger"] == "dice_roller"} == {"Roll failed"}
    assert all(r["level"] in {"WARNING", "ERROR", "CRITICAL"} for r in records)


def test_a_huge_request_line_is_cut_and_stays_one_json_line() -> None:
    """Docker splits stdout lines over 16 KiB; the path of a huge URL is cut first."""
    path = "/" + "p" * 20_000
    with running_service() as service:
        assert httpx.get(service.url + path, params={"q": "q" * 20_000}).status_code == 404
        service.stop()
        lines = service.log_lines()
        records = service.log_records()  # json.loads of every line: fails on a split one
    huge = [r for r in records if r.get("path", "").startswith(path[:1000])]
    assert len(huge) == 1, huge
    for cut in (huge[0]["path"], huge[0]["query"]):
        assert cut.endswith("more characters]"), cut[-80:]
        assert len(cut) < 1100
    assert max(len(line) for line in lines) < 4096


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
