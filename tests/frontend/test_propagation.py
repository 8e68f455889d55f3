"""W3C trace context, in and out: the frontend continues the browser's trace, and its
client span sends the trace on to the dice-roller in a `traceparent` header.

The frontend runs in-process, its spans kept in memory; the dice-roller is a stand-in
on a real socket that records the headers it gets, so the test sees the very header
the dice-roller would continue.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import httpx
import pytest
from frontend.settings import Settings
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from tests.support.frontend import in_process_frontend
from tests.support.http_server import serving
from tests.support.stand_in_dice_roller import StandInDiceRoller


@pytest.fixture
def stand_in() -> Iterator[StandInDiceRoller]:
    with serving(StandInDiceRoller()) as stand_in:
        yield stand_in


def roll(
    stand_in: StandInDiceRoller, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[ReadableSpan]]:
    """GET `path` from an in-process frontend in front of `stand_in`: the answer and
    every span the frontend ended."""

    async def scenario() -> tuple[httpx.Response, list[ReadableSpan]]:
        settings = Settings(dice_roller_url=stand_in.url)  # type: ignore[arg-type]
        async with in_process_frontend(settings) as frontend:
            response = await frontend.client.get(path, headers=headers)
            return response, frontend.spans()

    return asyncio.run(scenario())


def hex_id(value: int, digits: int) -> str:
    """A span or trace id as logs, headers and exemplars write it: lower-case hex."""
    return format(value, f"0{digits}x")


def context_of(span: ReadableSpan) -> SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def flags(span: ReadableSpan) -> str:
    return hex_id(context_of(span).trace_flags, 2)


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = context_of(span)
    return hex_id(context.trace_id, 32), hex_id(context.span_id, 16)


def parent_of(span: ReadableSpan) -> str:
    return hex_id(span.parent.span_id, 16) if span.parent else ""


def only(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def test_the_client_span_reaches_the_dice_roller_as_its_traceparent(
    stand_in: StandInDiceRoller,
) -> None:
    response, spans = roll(stand_in, "/api/roll?die=fair")
    assert response.status_code == 200, response.text
    assert response.json()["roll"] == 4  # the stand-in's roll, passed on

    server = only(spans, SpanKind.SERVER)
    assert server.name == "GET /api/roll"
    assert server.parent is None  # nothing came in: the trace starts here
    assert server.status.status_code != StatusCode.ERROR
    client = only(spans, SpanKind.CLIENT)
    trace_id, client_span_id = ids(client)
    assert parent_of(client) == ids(server)[1]
    assert ids(server)[0] == trace_id == response.json()["trace_id"]

    [call] = stand_in.received()
    assert call.path == "/roll?die=fair"
    # W3C Trace Context: version-trace id-parent id-flags, the parent being the client
    # span, sampled (the dice-roller records its span too).
    assert call.headers["traceparent"] == f"00-{trace_id}-{client_span_id}-{flags(client)}"
    assert int(flags(client), 16) & 0x01


def test_an_incoming_traceparent_is_continued_by_the_server_span(
    stand_in: StandInDiceRoller,
) -> None:
    browser_trace, browser_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{browser_trace}-{browser_span}-01"
    response, spans = roll(stand_in, "/api/roll?die=risky", {"traceparent": traceparent})
    assert response.status_code == 200, response.text
    assert response.json()["trace_id"] == browser_trace

    server = only(spans, SpanKind.SERVER)
    assert ids(server)[0] == browser_trace
    assert parent_of(server) == browser_span
    assert server.parent is not None and server.parent.is_remote
    assert response.headers["traceresponse"] == f"00-{browser_trace}-{ids(server)[1]}-01"
    client = only(spans, SpanKind.CLIENT)
    assert parent_of(client) == ids(server)[1]
    [call] = stand_in.received()
    assert call.headers["traceparent"] == f"00-{browser_trace}-{ids(client)[1]}-01"


def test_an_invalid_traceparent_starts_a_trace_of_its_own(stand_in: StandInDiceRoller) -> None:
    # All-zero ids are invalid (W3C): the frontend must not continue a trace of zeros.
    zeros = f"00-{'0' * 32}-{'0' * 16}-01"
    response, spans = roll(stand_in, "/api/roll?die=fair", {"traceparent": zeros})
    assert response.status_code == 200
    server = only(spans, SpanKind.SERVER)
    assert server.parent is None
    assert ids(server)[0] != "0" * 32
    assert response.json()["trace_id"] == ids(server)[0]


@pytest.mark.parametrize("path", ["/metrics", "/static/page.js"])
def test_scrapes_and_static_files_make_no_spans(stand_in: StandInDiceRoller, path: str) -> None:
    response, spans = roll(stand_in, path)
    assert response.status_code == 200
    assert spans == []
    assert "traceresponse" not in response.headers
