"""Figures the README quotes from the code, checked against the code they come from:
histogram buckets, and every default and allowed value of the settings table."""

from __future__ import annotations

import asyncio
import re
import typing
from decimal import Decimal

import httpx
import pytest
from dice_roller import SERVICE_NAME
from dice_roller.app import create_app
from dice_roller.settings import Settings
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.sdk.trace import TracerProvider, export
from prometheus_client.parser import text_string_to_metric_families
from sandbox_telemetry.settings import LogLevel
from sandbox_telemetry.tracing import (
    DEFAULT_EXPORT_TIMEOUT_SECONDS,
    DEFAULT_SCHEDULE_DELAY_MILLIS,
    OTLP_PROTOCOLS,
    TRACES_EXPORTERS,
    traces_exporter_names,
)

from tests.support.compose import ROOT_COMPOSE, load_project
from tests.support.paths import ROOT
from tests.support.readme import code_spans, readme_text, table

ELLIPSIS = "…"


def expand(listing: str) -> list[Decimal]:
    """`0.05 0.1 … 0.95 1` as the numbers it stands for: `…` continues the step of the
    two numbers before it up to the number after it."""
    tokens = listing.split()
    values: list[Decimal] = []
    for index, token in enumerate(tokens):
        if token != ELLIPSIS:
            values.append(Decimal(token))
            continue
        step, end = values[-1] - values[-2], Decimal(tokens[index + 1])
        while values[-1] + step < end:
            values.append(values[-1] + step)
    return values


def buckets_served(family: str) -> list[Decimal]:
    """The `le` bounds a fresh service exposes for `family` (+Inf left out), after a roll."""

    async def roll_then_scrape() -> str:
        app = create_app(Settings(max_delay_seconds=0.0), TracerProvider())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            await client.get("/roll", params={"die": "fair"})
            return (await client.get("/metrics")).text

    bounds = {
        sample.labels["le"]
        for metric in text_string_to_metric_families(asyncio.run(roll_then_scrape()))
        if metric.name == family
        for sample in metric.samples
        if sample.name == f"{family}_bucket"
    }
    return sorted(Decimal(str(float(le))) for le in bounds if le != "+Inf")


def test_the_latency_buckets_are_the_ones_listed() -> None:
    match = re.search(
        r"latency histograms have the same buckets, in seconds:\s*`([^`]+)`", readme_text()
    )
    assert match is not None, "README.md no longer lists the latency buckets"
    documented = expand(match.group(1))
    rows = table("Metric")
    for family in ("http_request_duration_seconds", "dice_roll_duration_seconds"):
        assert "latency buckets" in rows[f"`{family}`"][1], family
        assert buckets_served(family) == documented, family


def test_the_roll_value_buckets_are_one_per_face() -> None:
    match = re.search(
        r"one bucket per face \((\d+) to (\d+)\)", table("Metric")["`dice_roll_value`"][1]
    )
    assert match is not None
    low, high = int(match.group(1)), int(match.group(2))
    assert buckets_served("dice_roll_value") == [Decimal(v) for v in range(low, high + 1)]


def settings_rows() -> dict[str, tuple[str, str]]:
    """Variable name → (default cell, meaning cell) of the README's settings table."""
    return {
        code_spans(first)[0]: (default, meaning)
        for first, (default, meaning) in table("Variable").items()
    }


def shown(value: object) -> str:
    return "unset" if value is None else str(value)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_service_setting_is_documented_with_its_default(field: str) -> None:
    rows = settings_rows()
    variable = f"DICE_{field.upper()}"
    assert variable in rows, f"{variable} is missing from the README's settings table"
    default_cell = rows[variable][0]
    spans = code_spans(default_cell)
    documented = spans[0] if spans else default_cell.strip()
    assert documented == shown(Settings.model_fields[field].default)


def image_environment() -> dict[str, str]:
    dockerfile = (ROOT / "dice-roller" / "Dockerfile").read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*(DICE_\w+)=(\S+)", dockerfile, re.M))


def test_the_image_defaults_are_the_dockerfiles() -> None:
    rows = settings_rows()
    image = image_environment()
    for variable in ("DICE_HOST", "DICE_PORT"):
        match = re.search(r"`([^`]+)` in the image", rows[variable][0])
        assert match is not None, variable
        assert match.group(1) == image[variable], variable


def test_the_log_levels_are_the_ones_accepted() -> None:
    assert code_spans(settings_rows()["DICE_LOG_LEVEL"][1]) == list(
        typing.get_args(typing.get_args(LogLevel)[0])
    )


def test_the_failure_rate_is_one_in_ten_as_the_curl_example_says() -> None:
    rate = Settings.model_fields["risky_failure_rate"].default
    assert "HTTP 500 one time in ten" in readme_text()
    assert round(1 / rate) == 10


def compose_environment() -> dict[str, str]:
    environment = load_project(ROOT_COMPOSE).services["dice-roller"].spec["environment"]
    return {str(key): str(value) for key, value in environment.items()}


def test_the_opentelemetry_defaults_are_the_services_and_the_sdks() -> None:
    rows = settings_rows()

    def default(variable: str) -> str:
        return code_spans(rows[variable][0])[0]

    assert default("OTEL_SERVICE_NAME") == SERVICE_NAME
    assert default("OTEL_TRACES_EXPORTER") == traces_exporter_names({})[0]
    assert code_spans(rows["OTEL_TRACES_EXPORTER"][1]) == list(TRACES_EXPORTERS)
    assert default("OTEL_EXPORTER_OTLP_ENDPOINT") == trace_exporter.DEFAULT_ENDPOINT.rstrip("/")
    in_compose = re.search(r"`([^`]+)` in compose", " ".join(rows["OTEL_EXPORTER_OTLP_ENDPOINT"]))
    assert in_compose is not None
    assert in_compose.group(1) == compose_environment()["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert [default("OTEL_EXPORTER_OTLP_PROTOCOL")] == list(OTLP_PROTOCOLS)

    delay = rows["OTEL_BSP_SCHEDULE_DELAY"]
    assert default("OTEL_BSP_SCHEDULE_DELAY") == str(DEFAULT_SCHEDULE_DELAY_MILLIS)
    sdk_delay = export._DEFAULT_SCHEDULE_DELAY_MILLIS  # the SDK's own, without the variable
    assert f"the SDK's own default is {sdk_delay})" in delay[1]

    timeout = rows["OTEL_EXPORTER_OTLP_TIMEOUT"]
    assert Decimal(default("OTEL_EXPORTER_OTLP_TIMEOUT")) == Decimal(
        str(DEFAULT_EXPORT_TIMEOUT_SECONDS)
    )
    assert f"the SDK's own default is {trace_exporter.DEFAULT_TIMEOUT})" in timeout[1]
