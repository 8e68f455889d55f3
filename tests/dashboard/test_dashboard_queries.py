"""Every query of the dashboard is valid PromQL, LogQL or TraceQL for Grafana's own
grammars, and every log query selects streams by labels Alloy really attaches."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from tests.dashboard.model import (
    ALLOY_CONFIG,
    COMPOSE_FILE,
    JSON,
    Query,
    compose_container_name,
    load_dashboard,
    queries,
)
from tests.stack.alloy_syntax import relabel, relabel_rules
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
    label), so a selector on any other label would match no stream at all."""
    assert ALLOY_CONFIG.is_file(), f"{ALLOY_CONFIG} is missing"
    rules = relabel_rules(ALLOY_CONFIG.read_text(encoding="utf-8"))
    attached = {
        rule.attribute("target_label"): rule
        for rule in rules
        if rule.optional("action", "replace") == "replace"
    }
    # The labels Docker discovery gives the service's container, as Alloy sees them.
    container = {"__meta_docker_container_name": "/" + compose_container_name("dice-roller")}

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
            if matcher.op == "=" and all(
                source in container for source in attached[matcher.label].strings("source_labels")
            ):
                written = relabel(attached[matcher.label], container)
                assert written == matcher.value, (
                    f"{query.panel}: selects {matcher.label}={matcher.value!r}, but for the "
                    f"service's container Alloy writes {written!r}"
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
