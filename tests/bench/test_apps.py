"""The bench's builds are the service's own app, each with exactly its signals on."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from dice_roller.app import create_app
from dice_roller.logs import LOGGER_NAME
from dice_roller.settings import Settings
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bench.apps import VARIANTS, build_app
from tests.bench.asgi import roll_and_scrape

SETTINGS = Settings(max_delay_seconds=0.0, seed=1)


def roll_endpoint(app: FastAPI) -> object:
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.path == "/roll"]
    assert len(routes) == 1
    return routes[0].endpoint


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_build_serves_the_services_own_roll_route(variant: str) -> None:
    service_roll = roll_endpoint(create_app(SETTINGS, signals=()))
    bench_roll = roll_endpoint(build_app(variant, SETTINGS))
    # Each app has its own closure, but the code is the service's, not a copy.
    assert bench_roll.__code__ is service_roll.__code__  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_build_emits_its_signals_and_no_other(
    variant: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # spans of `traces` to stdout
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    roll, scrape = asyncio.run(roll_and_scrape(build_app(variant, SETTINGS)))
    assert roll.status_code == 200

    assert (scrape.status_code == 200) == (variant == "metrics")
    if variant == "metrics":
        assert 'dice_rolls_total{die_type="fair",result="success"} 1.0' in scrape.text

    rolls_logged = [r for r in caplog.records if r.getMessage() == "Roll completed"]
    assert len(rolls_logged) == (1 if variant == "logs" else 0)

    traced = variant in ("traces", "traces-unexported")
    assert ("traceresponse" in roll.headers) == traced
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    roll_spans = [span for span in exported if span["name"] == "GET /roll"]
    if variant == "traces":
        assert len(roll_spans) == 1
        assert roll_spans[0]["attributes"]["die.type"] == "fair"
        assert roll_spans[0]["attributes"]["die.result"] == "success"
    else:
        assert roll_spans == []  # unexported: made, ended, sent nowhere
