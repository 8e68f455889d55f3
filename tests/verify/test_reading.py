"""How the checks read what the components and the repository say."""

from __future__ import annotations

import base64
import math

import pytest

from verify.context import DATASOURCES_DIR
from verify.dashboard import _values, interpolate
from verify.model import Failed
from verify.otlp_json import spans_of
from verify.service import parse_traceresponse
from verify.tempo import read_trace_answer
from verify.trace_link import link_query, tempo_link_settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", (TRACE, SPAN)),
        (f"00-{TRACE.upper()}-{SPAN}-00", (TRACE, SPAN)),
        (None, None),
        ("", None),
        (f"00-{'0' * 32}-{SPAN}-01", None),  # an invalid (all-zero) trace id
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"01-{TRACE}-{SPAN}-01", None),  # a version this parser does not know
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
    ],
)
def test_traceresponse_header(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_traceresponse(header) == expected


def test_the_link_query_comes_from_the_provisioning_file_with_ids_filled_in() -> None:
    link, loki = tempo_link_settings(DATASOURCES_DIR)
    assert loki["type"] == "loki"
    query = link_query(link, TRACE, SPAN)
    assert "$" not in query
    assert query.count(TRACE) == str(link["query"]).count("__trace.traceId")
    assert query.startswith('{container_name=~"dice-roller-stage1|frontend"}')


def test_a_link_query_with_variables_the_checks_cannot_fill_is_reported() -> None:
    link = {"customQuery": True, "query": '{job="x"} |= "$${__trace.traceId}" | $${__tags}'}
    with pytest.raises(Failed, match=r"uses \$\{__tags"):
        link_query(link, TRACE, SPAN)


def test_span_ids_in_hex_or_in_tempo_base64_are_read_alike() -> None:
    def trace(span_id: str) -> dict[str, object]:
        span = {"spanId": span_id, "name": "GET /roll", "kind": "SPAN_KIND_SERVER"}
        span |= {"startTimeUnixNano": "1000000000", "endTimeUnixNano": "1500000000"}
        return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}

    encoded = base64.b64encode(bytes.fromhex(SPAN)).decode()
    for span_id in (SPAN, encoded):
        [span] = spans_of(trace(span_id))
        assert span["span_id"] == SPAN
        assert span["seconds"] == pytest.approx(0.5)


TEMPO_SPAN = {"spanId": SPAN, "name": "GET /roll", "kind": "SPAN_KIND_SERVER"}
TEMPO_TRACE = {"resourceSpans": [{"scopeSpans": [{"spans": [TEMPO_SPAN]}]}]}


@pytest.mark.parametrize(
    "body",
    [
        {"trace": {}, "metrics": {}},  # Tempo 3.0.3, before it has ingested the trace
        {"trace": {"resourceSpans": []}},
        {"trace": {"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}},
    ],
    ids=["tempo-3.0.3-not-yet", "no-resource-spans", "no-spans"],
)
def test_a_tempo_answer_without_spans_means_not_yet(body: object) -> None:
    assert read_trace_answer(body) is None


def test_a_tempo_answer_with_spans_is_the_trace() -> None:
    trace = read_trace_answer({"trace": TEMPO_TRACE})
    assert trace == TEMPO_TRACE
    assert [span["span_id"] for span in spans_of(trace)] == [SPAN]


@pytest.mark.parametrize(
    "body",
    [
        [],
        "trace",
        {},
        {"metrics": {}},
        {"trace": None},
        {"trace": []},
        {"trace": {"resourceSpans": "none"}},
        {"trace": {"resourceSpans": {"scopeSpans": []}}},
    ],
)
def test_a_malformed_tempo_answer_fails_at_once(body: object) -> None:
    with pytest.raises(Failed, match="expected"):
        read_trace_answer(body)


def test_nan_and_null_values_are_not_data() -> None:
    frame = {
        "schema": {"fields": [{"name": "Time", "type": "time"}, {"name": "Value"}]},
        "data": {"values": [[1, 2, 3], [None, math.nan, 0.9]]},
    }
    assert _values([frame]) == (1, [0.9])
    only_nan = {**frame, "data": {"values": [[1], [math.nan]]}}
    assert _values([only_nan]) == (0, [])


def test_dashboard_variables_are_filled_in_and_grafana_macros_left_alone() -> None:
    query = 'rate(x{die="$die", job="${job}"}[$__rate_interval])'
    filled = interpolate(query, {"die": "fair", "job": "dice"})
    assert filled == 'rate(x{die="fair", job="dice"}[$__rate_interval])'
