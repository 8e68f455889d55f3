"""database-down's parts without a stack: its catalogue entry, the trace it looks for,
its probes against stand-in answers of the dice-roller, Prometheus and Loki (an
in-process transport: every other line of the probes runs as it does live), and the
native stack's way to stop PostgreSQL and start it again.

The drill itself runs end to end against a stage-5 native stack in
tests/nativestack/live/."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from drills.catalogue import DRILLS, STAGE5_DASHBOARD
from drills.context import DrillContext
from drills.database_probes import (
    DATABASE_DOWN_LINES,
    DATABASE_HOP,
    database_failed,
    database_fails_the_roll,
    exporter_reports_down,
    trace_of_database_failure,
)
from drills.outage import CommandControl, compose_command
from drills.probes import Span
from drills.runner import DrillError, check_stack
from drills.settings import DrillSettings
from drills.upstream_probes import failed_lines, upstream_errors
from nativestack.docker_api import STDOUT, Container
from nativestack.stack import Component, NativeStack
from stackclient import Api
from tests.support.drills import NativeControl
from tests.support.paths import ROOT

TRACE_ID = "d2cb9a033611c9b62ad23078b5b1fe9a"
SAID = "The die-service answered 503: The database cannot be reached (ConnectionRefusedError)."
"""The dice-roller's 502, as a stage-5 native stack answered it with PostgreSQL stopped."""


# ---------------------------------------------------------------- the catalogue entry


def test_database_down_stops_postgres_at_stage_5_and_rolls_at_the_dice_roller() -> None:
    drill = DRILLS["database-down"]
    assert (drill.stops, drill.stage, drill.flags, drill.traffic) == (
        "postgres",
        5,
        {},
        "dice-roller",
    )
    assert drill.look.dashboard == STAGE5_DASHBOARD
    assert drill.look.logql == DATABASE_DOWN_LINES
    assert 'message="Database unavailable"' in DATABASE_DOWN_LINES
    assert '{container_name="die-service"}' in DATABASE_DOWN_LINES
    assert "alertmanager" not in drill.needs and "frontend" not in drill.needs


def test_its_compose_commands_name_stage_5_s_file_over_stage_3_s() -> None:
    """compose knows postgres from stages/stage5.yml alone, and that file merges over
    stage 3's (the die-service it points at the database)."""
    drill = DRILLS["database-down"]
    assert drill.stops is not None
    control = CommandControl(compose_command("stop", drill.stage), compose_command("start", 5))
    files = ["-f", "docker-compose.yml", "-f", "stages/stage3.yml", "-f", "stages/stage5.yml"]
    assert control.argv("stop", drill.stops) == ["docker", "compose", *files, "stop", "postgres"]
    assert control.argv("start", drill.stops) == ["docker", "compose", *files, "start", "postgres"]
    assert all((ROOT / name).is_file() for name in files[1::2])
    assert "\n  postgres:" in (ROOT / "stages" / "stage5.yml").read_text(encoding="utf-8")


def test_a_stack_that_is_not_there_is_told_to_start_stage_5() -> None:
    settings = DrillSettings(
        service_url="http://127.0.0.1:9", prometheus_url="http://127.0.0.1:9", timeout=2
    )
    api = Api(timeout=2)
    try:
        with pytest.raises(DrillError, match=r"stages/stage5\.yml up -d") as raised:
            check_stack(api, settings, ("service", "prometheus"), 5)
    finally:
        api.close()
    assert "-f stages/stage3.yml -f stages/stage5.yml" in str(raised.value)
    assert "nativestack --stage 5" in str(raised.value)


def test_its_plan_waits_for_the_outage_then_the_return() -> None:
    plan = DRILLS["database-down"].plan(_ctx({}))
    assert [s.name for s in plan.signals] == [
        "The dice-roller answers 502",
        "Database errors up",
        "pg_up falls to 0",
        "Database unavailable logged",
        "A trace's die-service span failed",
    ]
    assert [s.name for s in plan.back] == ["The die-service answers again", "Rolls succeed again"]
    assert plan.flags == {} and plan.give_up > 0 and plan.back_give_up > 0


# ---------------------------------------------------------------- the trace


def _span(service: str, kind: str, attributes: dict[str, Any]) -> Span:
    return {
        "service": service,
        "kind": kind,
        "span_id": "a" * 16,
        "parent_id": "",
        "name": "GET /dice/{name}" if service == "die-service" else "GET /roll",
        "status": "STATUS_CODE_ERROR",
        "attributes": attributes,
        "events": [],
    }


DIE_SERVICE_SPAN = _span(
    "die-service",
    "SPAN_KIND_SERVER",
    {"http.response.status_code": 503, "error.type": "503", "database.failure": "unreachable"},
)
ROLL_SPAN = _span(
    "dice-roller",
    "SPAN_KIND_SERVER",
    {"upstream.name": "die-service", "upstream.failure": "error_status"},
)


def test_a_trace_met_the_database_down_when_the_die_service_s_span_failed_with_503() -> None:
    found = database_failed([ROLL_SPAN, DIE_SERVICE_SPAN])
    assert found is not None
    assert "'GET /dice/{name}' ERROR, HTTP 503, database.failure=unreachable" in found
    assert "'GET /roll' upstream.failure=error_status" in found
    assert database_failed([DIE_SERVICE_SPAN]) is not None  # the roller's span comes later


def test_a_trace_without_the_die_service_s_failed_span_is_not_it() -> None:
    assert database_failed([ROLL_SPAN]) is None  # die-service-down: no die-service span
    unset = {**DIE_SERVICE_SPAN, "status": "STATUS_CODE_UNSET"}
    assert database_failed([ROLL_SPAN, unset]) is None
    not_found = {**DIE_SERVICE_SPAN, "attributes": {"http.response.status_code": 404}}
    assert database_failed([ROLL_SPAN, not_found]) is None
    slow = {**DIE_SERVICE_SPAN["attributes"], "database.failure": "timeout"}  # not down
    assert database_failed([ROLL_SPAN, {**DIE_SERVICE_SPAN, "attributes": slow}]) is None
    client = {**DIE_SERVICE_SPAN, "kind": "SPAN_KIND_CLIENT"}
    assert database_failed([ROLL_SPAN, client]) is None


# ---------------------------------------------------------------- the probes

Answer = Callable[[httpx.Request], httpx.Response]


def _prometheus(values: dict[str, list[tuple[dict[str, str], float]]]) -> Answer:
    """Prometheus answering each query whose text holds a key of `values` with its rows."""

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        rows = next((rows for part, rows in values.items() if part in query), [])
        result = [{"metric": labels, "value": [time.time(), str(v)]} for labels, v in rows]
        data = {"resultType": "vector", "result": result}
        return httpx.Response(200, json={"status": "success", "data": data})

    return answer


def _ctx(routes: dict[str, Answer], elapsed: float = 30.0) -> DrillContext:
    """A drill's context whose HTTP calls `routes` answers, by path; it began `elapsed`
    seconds ago."""

    def handle(request: httpx.Request) -> httpx.Response:
        for path, answer in routes.items():
            if request.url.path.startswith(path):
                return answer(request)
        return httpx.Response(404)

    api = Api(timeout=5)
    api._client = httpx.Client(transport=httpx.MockTransport(handle))
    return DrillContext(DrillSettings(), api, started=time.time() - elapsed)


def _roll(status: int, body: dict[str, Any]) -> Answer:
    header = {"traceresponse": f"00-{TRACE_ID}-{'b' * 16}-01"}
    return lambda request: httpx.Response(status, json=body, headers=header)


def test_a_502_quoting_the_die_service_s_database_is_the_outage() -> None:
    ctx = _ctx({"/roll": _roll(502, {"detail": SAID})})
    reading = database_fails_the_roll(ctx)
    assert reading.responded, reading.detail
    assert reading.detail.startswith("HTTP 502 in ") and SAID in reading.detail
    assert ctx.found["database-down:rolled"] == [TRACE_ID]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"roll": 4}),
        (503, {"detail": "The die-service is unreachable at http://die-service:8000."}),
        (502, {"detail": "The die-service answered 500: Internal Server Error"}),
        (503, {"detail": SAID}),
    ],
)
def test_any_other_answer_is_not_yet_and_keeps_no_trace(status: int, body: dict[str, Any]) -> None:
    ctx = _ctx({"/roll": _roll(status, body)})
    reading = database_fails_the_roll(ctx)
    assert not reading.responded
    assert f"HTTP {status}" in reading.detail and "is the database stopped?" in reading.detail
    assert "database-down:rolled" not in ctx.found


def test_pg_up_at_0_is_the_database_down_while_the_exporter_s_scrape_goes_on() -> None:
    labels = {"job": "postgres-exporter"}
    ctx = _ctx({"/api/v1/query": _prometheus({"pg_up": [(labels, 0)], "up{": [(labels, 1)]})})
    reading = exporter_reports_down(ctx)
    assert reading.responded, reading.detail
    assert 'pg_up{job="postgres-exporter"} fell to 0 (up is 1' in reading.detail

    up = _ctx({"/api/v1/query": _prometheus({"pg_up": [(labels, 1)]})})
    assert not exporter_reports_down(up).responded
    assert not exporter_reports_down(_ctx({"/api/v1/query": _prometheus({})})).responded
    too_soon = _ctx({"/api/v1/query": _prometheus({"pg_up": [(labels, 0)]})}, elapsed=0.2)
    assert not exporter_reports_down(too_soon).responded


def test_database_errors_are_the_die_service_s_count_of_unreachable_lookups() -> None:
    def rows(count: float) -> dict[str, list[tuple[dict[str, str], float]]]:
        return {
            "die_service_db_errors_total": [({"reason": "unreachable"}, count)],
            "http_requests_total": [({"status": "5xx"}, 12), ({"status": "2xx"}, 3)],
        }

    reading = upstream_errors(_ctx({"/api/v1/query": _prometheus(rows(12))}), DATABASE_HOP)
    assert reading.responded, reading.detail
    assert reading.detail.startswith("12 calls to the database unreachable; 12 of 15 /roll")
    few = upstream_errors(_ctx({"/api/v1/query": _prometheus(rows(3))}), DATABASE_HOP)
    assert not few.responded and "waiting for 10" in few.detail
    # The dice-roller's own count is not the database's.
    theirs = {"dice_die_service_errors_total": [({"reason": "unreachable"}, 50.0)]}
    other = upstream_errors(_ctx({"/api/v1/query": _prometheus(theirs)}), DATABASE_HOP)
    assert not other.responded


def _loki(lines: list[dict[str, Any]]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        values = [[str(time.time_ns()), json.dumps(line)] for line in lines]
        result = [{"stream": {"q": query}, "values": values}] if values else []
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "streams", "result": result}}
        )

    return answer


def _tempo(spans: list[Span]) -> Answer:
    """Tempo answering any trace id with one trace of `spans` (OTLP JSON)."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        attributes = [
            {"key": key, "value": {"stringValue": str(value)}}
            for key, value in span["attributes"].items()
        ]
        by_service.setdefault(span["service"], []).append(
            {
                "traceId": TRACE_ID,
                "spanId": span["span_id"],
                "name": span["name"],
                "kind": span["kind"],
                "status": {"code": span["status"]},
                "attributes": attributes,
            }
        )
    resource_spans = [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": name}}]},
            "scopeSpans": [{"spans": listed}],
        }
        for name, listed in by_service.items()
    ]
    return lambda request: httpx.Response(200, json={"trace": {"resourceSpans": resource_spans}})


def test_the_die_service_s_lines_lead_to_its_failed_span_in_tempo() -> None:
    line = {"message": "Database unavailable", "reason": "unreachable", "trace_id": TRACE_ID}
    ctx = _ctx(
        {
            "/loki/api/v1/query_range": _loki([line]),
            "/api/v2/traces/": _tempo([ROLL_SPAN, DIE_SERVICE_SPAN]),
        }
    )
    logged = failed_lines(ctx, DATABASE_HOP)
    assert logged.responded, logged.detail
    assert ctx.found["database-down"] == {"reason=unreachable": [TRACE_ID]}
    traced = trace_of_database_failure(ctx)
    assert traced.responded, traced.detail
    assert traced.detail.startswith(f"trace {TRACE_ID}: the die-service's 'GET /dice/{{name}}'")


def test_a_trace_with_nothing_failed_in_the_die_service_is_read_once_and_not_it() -> None:
    ok = {**DIE_SERVICE_SPAN, "status": "STATUS_CODE_UNSET"}
    ctx = _ctx({"/api/v2/traces/": _tempo([ROLL_SPAN, ok])})
    ctx.found["database-down:rolled"] = [TRACE_ID]
    reading = trace_of_database_failure(ctx)
    assert not reading.responded
    assert reading.detail == "no trace whose die-service span failed yet (1 of 1 read)"
    assert not trace_of_database_failure(_ctx({})).responded


def test_a_trace_is_judged_once_both_services_server_spans_are_in() -> None:
    """Each service sends its spans in batches of its own: a trace with the dice-roller's
    span alone is asked for again, not written off."""
    ctx = _ctx({"/api/v2/traces/": _tempo([ROLL_SPAN])})
    ctx.found["database-down:rolled"] = [TRACE_ID]
    reading = trace_of_database_failure(ctx)
    assert reading.detail == "no trace whose die-service span failed yet (0 of 1 read)"


# ---------------------------------------------------------------- the native stack's PostgreSQL


@pytest.fixture
def fake_postgres(tmp_path: Path) -> Iterator[tuple[NativeStack, list[str]]]:
    """A native stack reduced to what NativeControl touches, whose "postgres" is a
    process that prints a line and waits (stopped with SIGINT, as compose stops it)."""
    argv = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
    log_path = tmp_path / "postgres.log"
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    container = Container(
        id="0" * 64,
        name="/postgres",
        image="postgres",
        labels={},
        network="monitoring",
        address="10.0.0.5",
        ports=(5432,),
    )
    stack = SimpleNamespace(
        state_dir=tmp_path,
        network=SimpleNamespace(exec_prefix=lambda name: []),
        components={"postgres": Component("postgres", first, argv, log_path, signal.SIGINT)},
        container=None,
        die_service=None,
        postgres=container,
    )
    try:
        yield cast(NativeStack, stack), argv
    finally:
        first.kill()
        first.wait()


def test_native_control_starts_postgres_again_with_the_same_command_into_its_container(
    fake_postgres: tuple[NativeStack, list[str]],
) -> None:
    stack, argv = fake_postgres
    first = stack.components["postgres"].process
    control = NativeControl(stack, stage=5)
    try:
        control.stop("postgres")
        assert first.poll() == -signal.SIGINT  # compose's stop_signal, not SIGTERM
        control.start("postgres")
        again = stack.components["postgres"]
        assert again.process.pid != first.pid and again.process.poll() is None
        assert again.command == argv and again.stop_signal == signal.SIGINT
        container = control.container("postgres")
        assert container is stack.postgres

        def printed() -> bool:
            return [line for _, _, line in container.log.written(0, {STDOUT})] == [b"ready\n"]

        deadline = time.monotonic() + 10
        while not printed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert printed()
        assert (stack.state_dir / "postgres.log").read_bytes() == b"ready\n"
    finally:
        control.close()
    assert stack.components["postgres"].process.poll() == -signal.SIGINT
    assert control.calls == ["stop postgres", "start postgres"]
