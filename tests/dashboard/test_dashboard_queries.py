"""Every query of the dashboard is valid PromQL, LogQL or TraceQL for Grafana's own
grammars, and every log query selects streams by labels Alloy really attaches."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from tests.support.dashboard_model import (
    ALLOY_CONFIG,
    COMPOSE_FILE,
    JSON,
    Query,
    load_dashboard,
    queries,
)
from tests.support.grafana_macros import QueryContext, dashboard_variables, substitute
from tests.support.grammars import parse_batch, require_grammars


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard()


@pytest.fixture(autouse=True)
def _grammars() -> Iterator[None]:
    require_grammars()
    yield


def _substituted(dashboard: JSON, query: Query) -> str:
    """The query as Grafana sends it, with typical values for its macros."""
    context = QueryContext(variables=dashboard_variables(dashboard))
    return substitute(query.text, context)


def test_every_query_parses(dashboard: JSON) -> None:
    found = queries(dashboard)
    # All three languages are really checked, not skipped for want of queries.
    assert {query.language for query in found} == {"promql", "logql", "traceql"}
    results = parse_batch([(q.language, _substituted(dashboard, q)) for q in found])
    failures = [
        f"{q.panel} / {q.source} ({q.language}): {q.text!r}: {r.errors}"
        for q, r in zip(found, results, strict=True)
        if r.errors
    ]
    assert not failures, "\n".join(failures)


def test_log_queries_select_labels_alloy_attaches(dashboard: JSON) -> None:
    """Loki keeps only the labels Alloy's relabel rules write (it drops every `__meta`
    label), so a selector on any other label would match no stream at all. That each
    query finds the service's lines in the real Loki, through the real Alloy, is
    tests/nativestack/live/test_native_stack.py's to show."""
    assert ALLOY_CONFIG.is_file(), f"{ALLOY_CONFIG} is missing"
    text = ALLOY_CONFIG.read_text(encoding="utf-8")
    attached = set(re.findall(r'^\s*target_label\s*=\s*"([^"]+)"', text, flags=re.M))
    log_queries = [q for q in queries(dashboard) if q.language == "logql"]
    assert log_queries
    results = parse_batch([("logql", _substituted(dashboard, q)) for q in log_queries])
    for query, result in zip(log_queries, results, strict=True):
        assert result.selectors, f"{query.panel}: no stream selector"
        for matcher in (m for selector in result.selectors for m in selector):
            assert matcher.label in attached, (
                f"{query.panel}: selects on {matcher.label!r}, but Alloy only attaches "
                f"{sorted(attached)}"
            )


def test_trace_queries_name_the_service_as_it_names_itself(dashboard: JSON) -> None:
    """TraceQL's `resource.service.name` and the span metrics' `service` label both come
    from the service's OTEL_SERVICE_NAME; a different spelling would find no trace."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    service_name = compose["services"]["dice-roller"]["environment"]["OTEL_SERVICE_NAME"]
    found = queries(dashboard)
    traceql = [q.text for q in found if q.language == "traceql"]
    spanmetrics = [q.text for q in found if "traces_spanmetrics" in q.text]
    assert traceql and spanmetrics
    for text in traceql:
        assert re.findall(r'resource\.service\.name\s*=\s*"([^"]*)"', text) == [service_name]
    for text in spanmetrics:
        assert re.findall(r'\bservice\s*=\s*"([^"]*)"', text) == [service_name]
