"""The grammar tool must tell valid queries from broken ones in all three languages.

Without these negative tests, a parse script that silently returned "no errors" for
everything would make every dashboard syntax check pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.grafana_macros import QueryContext, substitute
from tests.support.grammars import (
    Matcher,
    parse_batch,
    parse_errors,
    parse_errors_batch,
    require_grammars,
)

VALID = [
    ("promql", 'sum(rate(http_requests_total{handler="/roll"}[1m]))'),
    (
        "promql",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    ("logql", '{container_name="dice-roller-stage1"} | json | level="ERROR"'),
    ("logql", 'sum by (die_type) (count_over_time({container_name="x"} | json [5m]))'),
    ("traceql", '{resource.service.name="dice-roller"}'),
    ("traceql", '{span.die.type="risky" && status=error} | count() > 0'),
]

BROKEN = [
    ("promql", "sum(rate(http_requests_total[1m])"),  # unclosed parenthesis
    ("promql", "rate(http_requests_total[$__rate_interval])"),  # macro not substituted
    ("promql", 'http_requests_total{handler="/roll"'),  # unclosed selector
    ("logql", 'container_name="dice-roller-stage1" | json'),  # no stream selector braces
    ("logql", '{container_name="x"} | json | level=='),  # dangling comparison
    ("traceql", "{resource.service.name=}"),  # missing value
    ("traceql", '{resource.service.name="dice-roller"'),  # unclosed spanset
]


@pytest.fixture(autouse=True)
def _grammars() -> Iterator[None]:
    require_grammars()
    yield


def test_valid_queries_have_no_errors() -> None:
    results = parse_errors_batch(VALID)
    assert results == [[] for _ in VALID], list(zip(VALID, results, strict=True))


@pytest.mark.parametrize(("language", "query"), BROKEN)
def test_broken_query_is_reported_with_its_position(language: str, query: str) -> None:
    errors = parse_errors(language, query)
    assert errors, f"{language} grammar accepted a broken query: {query}"
    assert all("offset" in error for error in errors)


def test_batch_keeps_order_of_mixed_results() -> None:
    results = parse_errors_batch([VALID[0], BROKEN[0], VALID[2], BROKEN[3]])
    assert [bool(errors) for errors in results] == [False, True, False, True]


def test_substituted_macros_parse() -> None:
    query = "sum(rate(x[$__rate_interval])) / sum(increase(y[$__range])) > $__interval_ms"
    assert parse_errors("promql", substitute(query, QueryContext())) == []


def test_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown query language"):
        parse_errors("sql", "select 1")


def test_logql_stream_selectors_are_extracted_from_every_selector() -> None:
    query = (
        'sum(count_over_time({container_name="dice-roller-stage1", stream=~"std.*"} | json [1m]))'
        " / sum(count_over_time({job=`raw\\d`}[1m]))"
    )
    [result] = parse_batch([("logql", query)])
    assert result.errors == []
    assert result.selectors == [
        [Matcher("container_name", "=", "dice-roller-stage1"), Matcher("stream", "=~", "std.*")],
        [Matcher("job", "=", "raw\\d")],
    ]
    # The label filter after `| json` is not a stream selector.
    [filtered] = parse_batch([("logql", '{a="1"} | json | level="ERROR"')])
    assert filtered.selectors == [[Matcher("a", "=", "1")]]
