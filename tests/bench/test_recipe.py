"""The common-recipe build serves the bare build's `/roll` with each of the recipe's signals."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dice_roller.settings import Settings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from bench.receiver import bench_receiver
from bench.recipe import RECIPE, RecipeJsonFormatter, build_recipe_app, log
from bench.servers import start_server
from tests.support.bench import roll_and_scrape

SETTINGS = Settings(max_delay_seconds=0.0, seed=1)


@pytest.fixture
def roll_log() -> Iterator[io.StringIO]:
    """The roll logger's lines, formatted by the recipe's formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RecipeJsonFormatter())
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def test_the_recipe_build_rolls_with_a_span_a_json_line_and_metrics(
    roll_log: io.StringIO,
) -> None:
    spans = InMemorySpanExporter()
    app = build_recipe_app(SETTINGS, SimpleSpanProcessor(spans), CollectorRegistry())
    roll, scrape = asyncio.run(roll_and_scrape(app))
    assert roll.status_code == 200 and 1 <= roll.json()["roll"] <= 6

    # Traces: the generic ASGI middleware's server span, with its defaults.
    servers = [s for s in spans.get_finished_spans() if s.name == "GET /roll"]
    assert len(servers) == 1
    server = servers[0]
    assert server.attributes is not None and server.attributes["http.route"] == "/roll"
    assert "traceresponse" not in roll.headers  # not part of the recipe

    # Logs: one JSON line for the roll, with the ids of a span of its request.
    lines = [json.loads(line) for line in roll_log.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["Roll completed"]
    assert lines[0]["trace_id"] == format(server.context.trace_id, "032x")
    request_spans = {format(s.context.span_id, "016x") for s in spans.get_finished_spans()}
    assert lines[0]["span_id"] in request_spans
    assert lines[0]["die_type"] == "fair" and lines[0]["roll_value"] == roll.json()["roll"]

    # Metrics: the instrumentator's defaults, exposed on /metrics.
    assert scrape.status_code == 200
    assert 'http_requests_total{handler="/roll",method="GET",status="2xx"} 1.0' in scrape.text


def test_the_bench_serves_the_recipe_with_uvicorns_access_line(tmp_path: Path) -> None:
    with bench_receiver() as receiver:
        with start_server(RECIPE, receiver.service_env(max_delay_seconds=0), tmp_path) as server:
            assert httpx.get(server.roll_url, timeout=5.0).status_code == 200  # the second
            output_path = server.output_path
        # Stopped: the batch processor has flushed at exit.
        assert receiver.wait_for_spans(2, timeout=5.0) >= 2  # readiness probe and roll

    output = output_path.read_text()
    assert '"GET /roll?die=fair HTTP/1.1" 200' in output  # uvicorn's plain-text line
    rolls = [json.loads(line) for line in output.splitlines() if "Roll completed" in line]
    assert len(rolls) >= 2
    assert all(int(roll["trace_id"], 16) and int(roll["span_id"], 16) for roll in rolls)
