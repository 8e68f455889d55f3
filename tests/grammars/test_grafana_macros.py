"""Grafana's macro rules, checked against values worked out by hand from Grafana's code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.grafana_macros import (
    QueryContext,
    UnknownVariableError,
    dashboard_variables,
    format_go_duration,
    format_interval,
    substitute,
)


def test_rate_interval_is_four_scrapes_when_the_step_is_small() -> None:
    context = QueryContext(interval=timedelta(seconds=15), scrape_interval=timedelta(seconds=15))
    assert context.rate_interval == timedelta(minutes=1)
    assert substitute("[$__rate_interval]", context) == "[1m0s]"


def test_rate_interval_is_step_plus_scrape_when_the_step_is_large() -> None:
    context = QueryContext(interval=timedelta(minutes=2), scrape_interval=timedelta(seconds=15))
    assert context.rate_interval == timedelta(minutes=2, seconds=15)
    assert substitute("${__rate_interval}", context) == "2m15s"


def test_interval_range_and_auto() -> None:
    context = QueryContext(interval=timedelta(seconds=30), time_range=timedelta(minutes=5))
    assert substitute("$__interval $__interval_ms $__range $__range_s $__auto", context) == (
        "30s 30000 300s 300 30s"
    )
    instant = QueryContext(time_range=timedelta(minutes=5), instant=True)
    assert substitute("$__auto", instant) == "300s"


def test_formats() -> None:
    assert format_interval(timedelta(seconds=90)) == "1m"  # Grafana truncates
    assert format_interval(timedelta(milliseconds=250)) == "250ms"
    assert format_go_duration(timedelta(hours=1, seconds=5)) == "1h0m5s"
    assert format_go_duration(timedelta(milliseconds=1500)) == "1500ms"


def test_dashboard_variables_in_all_spellings() -> None:
    context = QueryContext(variables={"die_type": "fair"})
    assert substitute('$die_type ${die_type} ${die_type:raw} [[die_type]] "$1"', context) == (
        'fair fair fair fair "$1"'
    )


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(UnknownVariableError, match=r"\$nope"):
        substitute("rate(x[$nope])")


def test_dashboard_variables_use_all_value_and_multi_value_regex() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "a", "allValue": ".+", "current": {"value": ["$__all"]}},
                {"name": "b", "current": {"value": ["fair", "risky"]}},
                {"name": "c", "current": {"value": "fair"}},
            ]
        }
    }
    assert dashboard_variables(dashboard) == {"a": ".+", "b": "(fair|risky)", "c": "fair"}
