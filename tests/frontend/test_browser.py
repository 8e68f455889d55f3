"""The page in a real browser: a click on Roll is the root of one trace across three
services.

A real dice-roller and a real frontend run as processes, both exporting to one OTLP
receiver; Debian's chromium opens the page, whose bundled OpenTelemetry (tracing.js,
built from frontend/web) exports its spans through the frontend's `/v1/traces` relay
to that same receiver. So the test sees what Tempo would: the browser's fetch span,
the frontend's server and client spans, the dice-roller's server span, one trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import chromium
from tests.support.frontend import RunningFrontend, running_frontend
from tests.support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.processes import eventually
from tests.support.service import RunningService, running_service

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
BUNDLE = Path(__file__).resolve().parents[2] / "frontend/src/frontend/static/tracing.js"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # the services' spans leave within 0.2 s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module; each test opens its own page."""
    assert BUNDLE.is_file(), (
        f"{BUNDLE} is missing: `python3 tasks.py test` builds it (or run `npm ci && "
        "npm run build` in frontend/web)"
    )
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def dice_roller(receiver: OtlpReceiver) -> Iterator[RunningService]:
    with running_service(receiver.service_env(**FAST_EXPORT)) as service:
        yield service


@pytest.fixture(scope="module")
def frontend(receiver: OtlpReceiver, dice_roller: RunningService) -> Iterator[RunningFrontend]:
    with running_frontend(dice_roller.url, receiver.service_env(**FAST_EXPORT)) as frontend:
        yield frontend


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def roll(page: Page, url: str) -> None:
    page.goto(url)
    page.click("#roll")


def service_of(span: ReceivedSpan) -> str:
    return str(span.resource.get("service.name"))


def url_of(span: ReceivedSpan) -> str:
    return str(span.attributes.get("url.full") or span.attributes.get("http.url"))


def test_a_click_is_the_root_of_one_trace_across_the_three_services(
    page: Page, frontend: RunningFrontend, receiver: OtlpReceiver
) -> None:
    roll(page, frontend.url)
    expect(page.locator("#result")).to_have_text(re.compile(r"^[1-6]$"), timeout=10_000)
    link = page.locator("#trace-link")
    expect(link).to_be_visible()
    trace_id = link.get_attribute("data-trace-id") or ""
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32, trace_id
    assert trace_id in (link.get_attribute("href") or "")

    # Each link of the chain: (service, span kind, span name or None for any).
    chain_of = {
        "browser fetch": ("frontend-web", CLIENT_KIND, None),
        "frontend server": ("frontend", SERVER_KIND, "GET /api/roll"),
        "frontend client": ("frontend", CLIENT_KIND, None),
        "dice-roller server": ("dice-roller", SERVER_KIND, "GET /roll"),
    }

    def spans_of_the_roll() -> dict[str, ReceivedSpan] | None:
        spans = [s for s in receiver.spans if s.trace_id == trace_id]
        found = {
            role: [
                s
                for s in spans
                if (service_of(s), s.kind) == (service, kind) and name in (None, s.name)
            ]
            for role, (service, kind, name) in chain_of.items()
        }
        if not all(found.values()):
            return None
        for role, matches in found.items():
            assert len(matches) == 1, f"{role}: {matches}"
        return {role: matches[0] for role, matches in found.items()}

    chain = eventually(
        spans_of_the_roll,
        f"the four spans of trace {trace_id} (browser, frontend x2, dice-roller) arrived",
        timeout=15,
    )
    fetch = chain["browser fetch"]
    assert "/api/roll?die=fair" in url_of(fetch), fetch.attributes
    assert fetch.parent_span_id == "", "the click's fetch is the root of the trace"
    assert chain["frontend server"].parent_span_id == fetch.span_id
    assert chain["frontend client"].parent_span_id == chain["frontend server"].span_id
    assert chain["dice-roller server"].parent_span_id == chain["frontend client"].span_id

    # The page load is traced too, and the exporter's own calls are not.
    def page_loads() -> list[ReceivedSpan]:
        web = [s for s in receiver.spans if service_of(s) == "frontend-web"]
        return [s for s in web if s.name == "documentLoad"]

    eventually(page_loads, "a documentLoad span from frontend-web arrived", timeout=10)
    web = [s for s in receiver.spans if service_of(s) == "frontend-web"]
    assert not [s for s in web if "/v1/traces" in url_of(s)]


def test_the_page_says_plainly_when_the_dice_roller_is_unreachable(page: Page) -> None:
    with (
        running_service() as dice_roller,
        running_frontend(dice_roller.url) as frontend,
    ):
        page.goto(frontend.url)
        dice_roller.stop()
        page.click("#roll")
        result = page.locator("#result")
        # Refused at once: no waiting out the frontend's 3 s upstream timeout.
        expect(result).to_contain_text("dice-roller is unreachable", timeout=2_500)
        expect(result).to_have_class("failed")
