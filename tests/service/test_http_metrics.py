"""HTTP requests are labelled by the route the router chose, never by the raw path."""

from __future__ import annotations

import asyncio

import httpx
from dice_roller.app import create_app
from dice_roller.settings import Settings
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families


async def requests_then_scrape(*calls: tuple[str, str]) -> str:
    app = create_app(Settings(max_delay_seconds=0.0, seed=1), TracerProvider())  # exports nothing
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        for method, path in calls:
            await client.request(method, path)
        await client.get("/metrics")  # a scrape is not counted, even by the next one
        return (await client.get("/metrics")).text


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for s in family.samples
        if s.name == "http_requests_total"
    }


def test_each_request_counts_once_under_its_route_template() -> None:
    text = asyncio.run(
        requests_then_scrape(
            ("GET", "/roll?die=fair"),
            ("GET", "/roll?die=fair"),
            ("GET", "/roll?die=bad"),
            ("POST", "/roll"),  # 405: the route matched, the method did not
            ("GET", "/roll/"),  # redirected to /roll: no route took it
            ("GET", "/nowhere"),
            ("GET", "/"),
        )
    )
    assert request_counts(text) == {
        ("/roll", "GET", "2xx"): 2.0,
        ("/roll", "GET", "4xx"): 1.0,
        ("/roll", "POST", "4xx"): 1.0,
        ("none", "GET", "3xx"): 1.0,
        ("none", "GET", "4xx"): 1.0,
        ("/", "GET", "2xx"): 1.0,
    }
    durations = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "http_request_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count") and s.labels["handler"] == "/roll"
    ]
    assert sum(s.value for s in durations) == 4.0
