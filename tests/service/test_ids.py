"""A request's ids are formatted once and shared by its header, its lines and its exemplars."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from dice_roller import ids
from dice_roller.app import create_app
from dice_roller.ids import RequestIds
from dice_roller.logs import LOGGER_NAME, TraceContextFilter
from dice_roller.settings import Settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext
from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class LineIds(logging.Handler):
    """The ids TraceContextFilter put on each request's line (None: no ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(TraceContextFilter())
        self.seen: list[tuple[str | None, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.__dict__.get("trace_id"), record.__dict__.get("span_id")))


async def roll_and_scrape() -> tuple[httpx.Response, httpx.Response, RequestIds | None]:
    """A roll, then a scrape; and what `current_ids` says in between, in the task that
    served the roll (httpx's ASGI transport calls the app in the caller's task)."""
    app = create_app(Settings(max_delay_seconds=0.0, seed=1), TracerProvider())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ids") as client:
        roll = await client.get("/roll", params={"die": "fair"})
        after = ids.current_ids()
        return roll, await client.get("/metrics", headers={"Accept": OPENMETRICS}), after


def test_one_formatting_per_request_shared_by_every_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    formatted: list[RequestIds | None] = []

    def counting_ids_of(context: SpanContext) -> RequestIds | None:
        result = original(context)
        formatted.append(result)
        return result

    original = ids.ids_of
    monkeypatch.setattr(ids, "ids_of", counting_ids_of)
    handler = LineIds()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        roll, scrape, _ = asyncio.run(roll_and_scrape())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    assert roll.status_code == 200
    # The roll: formatted once, by the middleware; the scrape has no span to format.
    roll_ids = formatted[0]
    assert roll_ids is not None
    assert [f for f in formatted if f is not None] == [roll_ids]

    assert roll.headers["traceresponse"] == roll_ids.traceresponse
    assert roll.headers["traceresponse"].split("-")[1:3] == [roll_ids.trace_id, roll_ids.span_id]
    assert roll.headers["access-control-expose-headers"] == "traceresponse"
    # The roll's line carries its ids; the scrape's line, made outside any span, none.
    assert handler.seen == [(roll_ids.trace_id, roll_ids.span_id), (None, None)]
    exemplars = {
        family.name: sample.exemplar.labels["trace_id"]
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.exemplar is not None
    }
    # Both the roll's families and the HTTP request's carry the one trace id.
    assert {"dice_rolls", "http_requests"} <= exemplars.keys()
    assert set(exemplars.values()) == {roll_ids.trace_id}


def test_nothing_stays_published_after_the_request() -> None:
    roll, _, after = asyncio.run(roll_and_scrape())
    assert "traceresponse" in roll.headers
    assert after is None  # outside any span again, as before the request
