"""Grafana's provisioning: data sources, their links to each other, and the dashboards.

Grafana reads these files only inside its container, which can't run here. What can
break them is checked with the tools that can: uids cross-referenced, `$` escaped the
way Grafana's provisioning expects, link queries parsed by Grafana's own grammars,
and the trace-to-logs and logs-to-trace links matched against how the logs and
exemplars are really labelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider

from tests.support.compose import ROOT, ROOT_COMPOSE, STACK_COMPOSE, load_project, mounts, ports
from tests.support.grafana_macros import QueryContext, substitute
from tests.support.grammars import parse_batch, require_grammars
from tests.support.paths import ALLOY_CONFIG

PROVISIONING = ROOT / "stack" / "grafana" / "provisioning"
DATASOURCES_FILE = PROVISIONING / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS_FILE = PROVISIONING / "dashboards" / "dashboards.yaml"
DASHBOARDS_DIR = ROOT / "grafana-dashboards"

# Data source references Grafana resolves itself, not provisioned data sources.
BUILTIN_DATASOURCES = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}

# Values Grafana puts into a data link's variables when a user follows it.
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
LINK_VARIABLES = {
    "${__trace.traceId}": SAMPLE_TRACE_ID,
    "${__span.spanId}": "00f067aa0ba902b7",
    "${__value.raw}": SAMPLE_TRACE_ID,
}

JSON = dict[str, Any]


def load_datasources() -> list[JSON]:
    document = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    datasources: list[JSON] = document["datasources"]
    return datasources


def by_uid() -> dict[str, JSON]:
    return {ds["uid"]: ds for ds in load_datasources()}


def as_grafana_reads_it(value: str) -> str:
    """The string after Grafana's provisioning interpolation, with no variables set:
    it splits on `$$`, expands environment variables in each part, joins with `$`
    (pkg/services/provisioning/values/values.go, interpolateValue)."""
    return "$".join(value.split("$$"))


def strings_in(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value of a YAML document, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings_in(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every `datasourceUid` (and `alertmanagerUid`) in a data source's settings, with
    its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key in ("datasourceUid", "alertmanagerUid"):
                yield here, value
            else:
                yield from references(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from references(value, f"{path}[{index}]")


def provisioning_files() -> list[Path]:
    return sorted(PROVISIONING.rglob("*.y*ml"))


def test_datasources_have_fixed_unique_uids() -> None:
    datasources = load_datasources()
    assert all("uid" in ds for ds in datasources), "give every data source a fixed uid"
    uids = [str(ds["uid"]) for ds in datasources]
    names = [ds["name"] for ds in datasources]
    assert sorted(uids) == ["alertmanager", "loki", "prometheus", "tempo"], uids
    assert len(set(names)) == len(names)
    assert {ds["uid"]: ds["type"] for ds in datasources} == {
        "prometheus": "prometheus",
        "loki": "loki",
        "tempo": "tempo",
        "alertmanager": "alertmanager",
    }


def test_datasources_point_at_the_compose_services() -> None:
    """Each URL's host is a stack service and its port one the service listens on."""
    services = load_project(STACK_COMPOSE).services
    for ds in load_datasources():
        match = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"])
        assert match, f"{ds['name']}: unexpected url {ds['url']}"
        host, port = match.groups()
        assert host in services, f"{ds['name']}: no service {host}"
        published = [p.container_port for p in ports(services[host])]
        assert port in published, f"{ds['name']}: {host} listens on {published}, not {port}"


def test_every_datasource_reference_exists_with_the_right_type() -> None:
    datasources = by_uid()
    # Which kind of data source each link must lead to.
    expected_type = {
        "exemplarTraceIdDestinations": "tempo",
        "derivedFields": "tempo",
        "tracesToLogsV2": "loki",
        "tracesToMetrics": "prometheus",
        "serviceMap": "prometheus",
        "alertmanagerUid": "alertmanager",
    }
    seen = set()
    for ds in datasources.values():
        for path, uid in references(ds.get("jsonData", {})):
            assert uid in datasources, f"{ds['name']}.{path}: no data source with uid {uid!r}"
            section = path.split(".")[0].split("[")[0]
            seen.add((ds["type"], section))
            if section in expected_type:
                assert datasources[uid]["type"] == expected_type[section], f"{ds['name']}.{path}"
    assert {
        ("prometheus", "exemplarTraceIdDestinations"),
        ("loki", "derivedFields"),
        ("tempo", "tracesToLogsV2"),
        ("tempo", "serviceMap"),
        ("prometheus", "alertmanagerUid"),
    } <= seen


@pytest.mark.parametrize("path", provisioning_files(), ids=lambda p: p.name)
def test_every_dollar_is_escaped_for_grafana(path: Path) -> None:
    """A lone `$` is an environment variable to Grafana: `${__trace.traceId}` would
    become an empty string at start-up. Only `$$` survives, as a literal `$`."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for where, value in strings_in(document):
        lone = [part for part in value.split("$$") if "$" in part]
        assert not lone, f"{path.name}: {where} = {value!r}: write $$ for a literal $"


def test_exemplar_links_cover_the_app_and_tempo_label_names() -> None:
    """The dice roller labels its exemplars with the current span's trace id; Tempo's
    metrics generator uses `traceID` (modules/generator/registry, 3.0.3) unless
    `trace_id_label_name` says otherwise."""
    from sandbox_telemetry import current_exemplar

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("roll"):
        exemplar = current_exemplar()
    assert exemplar is not None
    (app_label,) = exemplar
    tempo = yaml.safe_load((ROOT / "stack" / "tempo" / "config.yaml").read_text())
    tempo_defaults = tempo.get("overrides", {}).get("defaults", {}).get("metrics_generator", {})
    tempo_label = tempo_defaults.get("trace_id_label_name", "traceID")
    prometheus = by_uid()["prometheus"]
    names = {d["name"] for d in prometheus["jsonData"]["exemplarTraceIdDestinations"]}
    assert {app_label, tempo_label} <= names


def dice_roller_log_line() -> tuple[str, str]:
    """A log line as the dice roller writes it inside a request, and its trace id."""
    import logging

    from sandbox_telemetry.logs import JsonLogFormatter, TraceContextFilter

    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("dice_roller", logging.INFO, __file__, 1, "Roll completed", (), None)
    with tracer.start_as_current_span("GET /roll") as span:
        TraceContextFilter().filter(record)
        trace_id = format(span.get_span_context().trace_id, "032x")
    return JsonLogFormatter().format(record), trace_id


def test_loki_derived_field_finds_the_trace_id_in_a_real_log_line() -> None:
    loki = by_uid()["loki"]
    (field,) = loki["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == "tempo"
    assert as_grafana_reads_it(field["url"]) == "${__value.raw}"
    line, trace_id = dice_roller_log_line()
    match = re.search(field["matcherRegex"], line)
    assert match is not None, f"{field['matcherRegex']} finds nothing in {line}"
    assert match.group(1) == trace_id


def trace_to_logs_query() -> str:
    settings = by_uid()["tempo"]["jsonData"]["tracesToLogsV2"]
    assert settings["datasourceUid"] == "loki"
    assert settings["customQuery"] is True, "without it the link only shows for mapped tags"
    return as_grafana_reads_it(settings["query"])


def fill_link_variables(query: str) -> str:
    for variable, value in LINK_VARIABLES.items():
        query = query.replace(variable, value)
    return query


def link_queries() -> list[tuple[str, str, str]]:
    """(where, language, query as Grafana sends it) for every query a link runs."""
    found = [("tracesToLogsV2.query", "logql", fill_link_variables(trace_to_logs_query()))]
    tempo = by_uid()["tempo"]["jsonData"]
    tags = ", ".join(f'{t["value"]}="dice-roller"' for t in tempo["tracesToMetrics"]["tags"])
    context = QueryContext(variables={"__tags": tags})
    for query in tempo["tracesToMetrics"]["queries"]:
        text = substitute(fill_link_variables(as_grafana_reads_it(query["query"])), context)
        found.append((f"tracesToMetrics {query['name']!r}", "promql", text))
    return found


def test_link_queries_parse_with_grafanas_grammars() -> None:
    require_grammars()
    queries = link_queries()
    results = parse_batch([(language, text) for _, language, text in queries])
    for (where, _, text), result in zip(queries, results, strict=True):
        assert not result.errors, f"{where}: {text}: {result.errors}"
        assert "$" not in text, f"{where}: a variable was left unreplaced in {text}"


def alloy_label_targets() -> set[str]:
    """Labels Alloy's relabel rules create on the log streams."""
    text = ALLOY_CONFIG.read_text(encoding="utf-8")
    return set(re.findall(r'^\s*target_label\s*=\s*"([^"]+)"', text, flags=re.M))


def test_trace_to_logs_selects_every_services_streams_by_their_real_labels() -> None:
    """The link's stream selector must name a label Alloy really sets, with the
    container names compose really gives our services (the dice-roller, stage 2's
    frontend); then it keeps the lines whose JSON trace_id is the span's."""
    require_grammars()
    query = fill_link_variables(trace_to_logs_query())
    (result,) = parse_batch([("logql", query)])
    (selector,) = result.selectors
    services = load_project(ROOT_COMPOSE).services
    names = {services[name].spec["container_name"] for name in ("dice-roller", "frontend")}
    [(label, op, value)] = [(m.label, m.op, m.value) for m in selector]
    assert (label, op) == ("container_name", "=~")
    assert set(value.split("|")) == names
    assert "container_name" in alloy_label_targets()
    assert re.search(rf'\|\s*json\s*\|.*\btrace_id\s*=\s*"{SAMPLE_TRACE_ID}"', query), query


def test_dashboard_provider_reads_the_mounted_dashboards_folder() -> None:
    document = yaml.safe_load(DASHBOARD_PROVIDERS_FILE.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    grafana = load_project(STACK_COMPOSE).services["grafana"]
    mounted = {m.target: (grafana.base / m.source).resolve() for m in mounts(grafana) if m.bind}
    folder = mounted.get(provider["options"]["path"])
    assert folder == DASHBOARDS_DIR, f"{provider['options']['path']} is not grafana-dashboards/"
    assert sorted(DASHBOARDS_DIR.glob("*.json")), "no dashboard in grafana-dashboards/"


def datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every `datasource` field of a dashboard: panels, targets, variables, annotations."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "datasource":
                yield here, value
            else:
                yield from datasource_refs(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from datasource_refs(value, f"{path}[{index}]")


@pytest.mark.parametrize("dashboard", sorted(DASHBOARDS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_dashboards_reference_provisioned_datasources(dashboard: Path) -> None:
    datasources = by_uid()
    names = {ds["name"]: ds for ds in datasources.values()}
    document = json.loads(dashboard.read_text(encoding="utf-8"))
    count = 0
    for where, ref in datasource_refs(document):
        if ref is None:
            continue  # the panel's or the default data source
        count += 1
        if isinstance(ref, str):
            assert ref in BUILTIN_DATASOURCES or ref in names or ref in datasources, (
                f"{dashboard.name} {where}: unknown data source {ref!r}"
            )
            continue
        uid = ref.get("uid")
        if uid in BUILTIN_DATASOURCES:
            continue
        assert uid in datasources, f"{dashboard.name} {where}: no data source with uid {uid!r}"
        if "type" in ref:
            assert ref["type"] == datasources[uid]["type"], f"{dashboard.name} {where}: {ref}"
    assert count, f"{dashboard.name} references no data source"


def test_alertmanager_source_is_the_stacks_prometheus_alertmanager() -> None:
    """Grafana talks to it as to a Prometheus Alertmanager (not Mimir's or its own), and
    the Prometheus source manages its alert rules through it."""
    alertmanager = by_uid()["alertmanager"]
    assert alertmanager["jsonData"]["implementation"] == "prometheus"
    assert alertmanager["access"] == "proxy", "Grafana's server reaches the compose network"
    prometheus = by_uid()["prometheus"]["jsonData"]
    assert prometheus["manageAlerts"] is True
    assert prometheus["alertmanagerUid"] == "alertmanager"
    service = load_project(STACK_COMPOSE).services["alertmanager"]
    assert service.spec["image"].startswith("prom/alertmanager:")
