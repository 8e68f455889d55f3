"""Every stdout line is one JSON object, with the spec's fields and real trace ids."""

from __future__ import annotations

import re
from datetime import datetime

import httpx

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
