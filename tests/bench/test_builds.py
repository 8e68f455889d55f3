"""The overhead bench's builds: the bare app answers as the service does, and each build,
served as the bench serves it, emits exactly the signals it stands for."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dice_roller.app import create_app
from dice_roller.settings import Settings
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from bench.apps import BARE, build_bare_app
from bench.flags import SHIPPED_FLAGS, flag_files, time_flag_layer
from bench.receiver import bench_receiver
from bench.servers import (
    FULL,
    FULL_DRILL,
    FULL_FLAGS,
    METRICS,
    METRICS_LOGS,
    TRACES_UNEXPORTED,
    start_server,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def answers(app: FastAPI, dice: list[str]) -> list[tuple[int, object]]:
    async def roll_each() -> list[tuple[int, object]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            rolls = [await client.get("/roll", params={"die": die}) for die in dice]
        return [(roll.status_code, roll.json()) for roll in rolls]

    return asyncio.run(roll_each())


def test_the_bare_build_answers_as_the_service_does() -> None:
    settings = Settings(max_delay_seconds=0.0, risky_failure_rate=0.5, seed=1)
    dice = ["fair", "risky"] * 20
    service = answers(create_app(settings, TracerProvider()), dice)
    bare = answers(build_bare_app(settings), dice)

    assert bare == service  # the same rolls from the same seed, the same failures
    assert {status for status, _ in bare} == {200, 500}
    assert answers(build_bare_app(settings), ["loaded"])[0][0] == 422


@dataclass(frozen=True)
class Signals:
    """What a build writes and sends for a roll."""

    metrics: bool  # /metrics answers
    logs: bool  # INFO lines, "Roll completed" among them
    spans: bool  # made: a traceresponse header, the ids in the lines and as exemplars
    exported: bool  # sent to the receiver


SIGNALS = {
    BARE: Signals(metrics=False, logs=False, spans=False, exported=False),
    METRICS: Signals(metrics=True, logs=False, spans=False, exported=False),
    METRICS_LOGS: Signals(metrics=True, logs=True, spans=False, exported=False),
    TRACES_UNEXPORTED: Signals(metrics=True, logs=True, spans=True, exported=False),
    FULL: Signals(metrics=True, logs=True, spans=True, exported=True),
}


@pytest.mark.parametrize("build", SIGNALS)
def test_each_build_emits_its_signals_and_no_other(build: str, tmp_path: Path) -> None:
    expected = SIGNALS[build]
    with bench_receiver() as receiver:
        env = {**receiver.service_env(max_delay_seconds=0), "DICE_LOG_LEVEL": "INFO"}
        with start_server(build, env, tmp_path) as server:
            roll = httpx.get(server.roll_url, timeout=5.0)  # the second: readiness rolled too
            scrape = httpx.get(f"{server.url}/metrics", headers={"Accept": OPENMETRICS})
            output_path = server.output_path
        spans = receiver.span_count()  # stopped: every span it made has been exported
    assert roll.status_code == 200

    lines = [json.loads(line) for line in output_path.read_text().splitlines()]
    assert any(line["level"] == "INFO" for line in lines) == expected.logs
    rolls = [line for line in lines if line["message"] == "Roll completed"]
    assert len(rolls) == (2 if expected.logs else 0)

    assert ("traceresponse" in roll.headers) == expected.spans
    if expected.spans:
        trace_id = roll.headers["traceresponse"].split("-")[1]
        assert rolls[-1]["trace_id"] == trace_id
    assert all(("trace_id" in line) == expected.spans for line in rolls)

    assert (scrape.status_code == 200) == expected.metrics
    if expected.metrics:
        assert 'dice_rolls_total{die_type="fair",result="success"} 2.0' in scrape.text
        assert ('# {trace_id="' in scrape.text) == expected.spans  # exemplars

    assert spans == (2 if expected.exported else 0)


def test_the_flag_evaluations_are_timed_on_both_flag_files(tmp_path: Path) -> None:
    files = flag_files(tmp_path)
    assert files[FULL_FLAGS] == SHIPPED_FLAGS
    for build in (FULL_FLAGS, FULL_DRILL):
        assert time_flag_layer(files[build], rolls=10) > 0
