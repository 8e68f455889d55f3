"""Read the dashboard, and the stack files it depends on, into plain Python values.

The tests check the dashboard against what the rest of the project really provides:
the data source uids Grafana provisions, the labels Alloy attaches to log streams,
the container name compose gives the service. This module reads those files, so
the tests themselves read as statements about the dashboard. It also holds what the
checks of more than one stage's dashboard share: the layout rules, the syntax check
through Grafana's grammars, and a reader of PromQL just deep enough to list the
metric names, label matchers and groupings a query relies on.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from nativestack.substitutions import compose_service
from tests.support.grafana_macros import QueryContext, substitute
from tests.support.grammars import parse_batch
from tests.support.paths import ALLOY_CONFIG as ALLOY_CONFIG  # re-exported for the tests
from tests.support.paths import ROOT as ROOT

DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage1-dashboard.json"
STAGE2_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage2-dashboard.json"
STAGE3_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage3-dashboard.json"
STAGE4_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage4-dashboard.json"
STAGE5_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage5-dashboard.json"
HOST_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "host-dashboard.json"
GENERATOR_PATH = ROOT / "grafana-dashboards" / "generate_dashboard.py"
DATASOURCES_DIR = ROOT / "stack" / "grafana" / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = ROOT / "stack" / "grafana" / "provisioning" / "dashboards"
COMPOSE_FILE = ROOT / "docker-compose.yml"

JSON = dict[str, Any]

# Which query language each data source type speaks.
LANGUAGE_OF = {"prometheus": "promql", "loki": "logql", "tempo": "traceql"}
GRID_COLUMNS = 24
MIN_DESCRIPTION = 60
"""Characters: a description shorter than this cannot say what, why and from where."""


def load_dashboard(path: Path = DASHBOARD_PATH) -> JSON:
    """A dashboard file: stage 1's unless `path` names another."""
    data: JSON = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_generator() -> ModuleType:
    """grafana-dashboards/generate_dashboard.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("generate_dashboard", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(dashboard: JSON) -> list[tuple[str, list[JSON]]]:
    """Each row's title with the panels under it. With every row open (not collapsed),
    Grafana stores a row's panels after it at the top level, up to the next row."""
    result: list[tuple[str, list[JSON]]] = []
    for item in dashboard["panels"]:
        if item["type"] == "row":
            result.append((item["title"], list(item.get("panels", []))))
        elif result:
            result[-1][1].append(item)
        else:
            result.append(("", [item]))  # a panel above the first row
    return result


def panels(dashboard: JSON) -> list[JSON]:
    """Every panel that is not a row, top to bottom."""
    return [panel for _, row_panels in rows(dashboard) for panel in row_panels]


def panel_by_title(dashboard: JSON, title: str) -> JSON:
    matches = [panel for panel in panels(dashboard) if panel["title"] == title]
    assert len(matches) == 1, f"expected one panel titled {title!r}, found {len(matches)}"
    return matches[0]


@dataclass(frozen=True)
class Query:
    """One query the dashboard sends, and where it comes from."""

    panel: str
    source: str  # "target A", "link 'Search...'"
    language: str
    text: str
    target: JSON


def _explore_queries(panel: JSON) -> list[Query]:
    """Queries inside the panel's links to Explore (`/explore?...&panes={...}`)."""
    found: list[Query] = []
    links = panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    for link in [*links, *panel.get("links", [])]:
        url = urlsplit(link["url"])
        if not url.path.endswith("/explore"):
            continue
        for pane_json in parse_qs(url.query).get("panes", []):
            for pane in json.loads(pane_json).values():
                for query in pane["queries"]:
                    language = LANGUAGE_OF[query["datasource"]["type"]]
                    text = query.get("expr") or query.get("query") or ""
                    found.append(
                        Query(panel["title"], f"link {link['title']!r}", language, text, query)
                    )
    return found


def queries(dashboard: JSON) -> list[Query]:
    """Every query of every panel: its targets and the queries in its Explore links.

    A Tempo `serviceMap` target has no query text (Grafana itself reads the service
    graph series from Prometheus), so it is not one of them."""
    found: list[Query] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("queryType") == "serviceMap":
                continue
            datasource = target.get("datasource") or panel["datasource"]
            language = LANGUAGE_OF[datasource["type"]]
            text = target.get("expr") if language != "traceql" else target.get("query")
            found.append(Query(panel["title"], f"target {target['refId']}", language, text, target))
        found.extend(_explore_queries(panel))
    return found


# --- The stack's side -------------------------------------------------------------------


def provisioned_datasources() -> list[JSON]:
    """The data sources Grafana provisions from stack/grafana/provisioning/datasources."""
    found: list[JSON] = []
    for path in sorted(DATASOURCES_DIR.glob("*.y*ml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.extend(document.get("datasources", []))
    return found


def compose_container_name(service: str) -> str:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    name: str = compose["services"][service]["container_name"]
    return name


def compose_services(names: Iterable[str], stage: int) -> dict[str, JSON]:
    """Our services `names` as compose runs them at `stage`: each stage file merged over
    the root file (stages/stage3.yml adds the die-service), as the native stack does."""
    return {name: compose_service(name, stage)[0] for name in names}


def provisioned_dashboard_uids() -> list[str]:
    """The uid of every dashboard Grafana's one file provider loads: each JSON file of
    grafana-dashboards/ (mounted whole at the provider's path)."""
    [provider] = [
        p
        for path in sorted(DASHBOARD_PROVIDERS_DIR.glob("*.y*ml"))
        for p in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    ]
    assert provider["type"] == "file", provider
    return [load_dashboard(path)["uid"] for path in sorted(DASHBOARD_PATH.parent.glob("*.json"))]


def _alloy_block(text: str, header: str) -> str:
    """The body of one Alloy block, `header {...}`, nested blocks included."""
    start = text.index(header + " {") + len(header) + 2
    depth = 1
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end]
    raise ValueError(f"{header}: no closing brace")


def alloy_log_labels() -> set[str]:
    """The labels Alloy attaches to each container's log stream: the target labels of
    its `discovery.relabel "containers"` rules (loki.source.docker drops the others)."""
    body = _alloy_block(ALLOY_CONFIG.read_text(encoding="utf-8"), 'discovery.relabel "containers"')
    return set(re.findall(r'^\s*target_label\s*=\s*"([^"]+)"', body, flags=re.M))


def alloy_scraped_jobs(services: Mapping[str, JSON]) -> set[str]:
    """The Prometheus jobs of the `services` Alloy scrapes: those labelled
    `sandbox.metrics.port`, each job named after its compose service."""
    body = _alloy_block(ALLOY_CONFIG.read_text(encoding="utf-8"), 'discovery.relabel "metrics"')
    rules = re.findall(r"rule\s*\{(.*?)\}", body, re.S)
    assert any(
        "__meta_docker_container_label_com_docker_compose_service" in rule
        and re.search(r'target_label\s*=\s*"job"', rule)
        for rule in rules
    ), "Alloy no longer names a job after its compose service"
    return {
        name
        for name, service in services.items()
        if "sandbox.metrics.port" in (service.get("labels") or {})
    }


# --- Checks every stage's dashboard shares ----------------------------------------------


def layout_problems(dashboard: JSON) -> list[str]:
    """What is wrong with the grid: a panel outside the 24 columns, two panels on one
    cell, a panel not between its row and the next, an id used twice."""
    problems: list[str] = []

    def cells(item: JSON) -> set[tuple[int, int]]:
        g = item["gridPos"]
        return {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }

    ids = [item["id"] for item in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append(f"ids used twice: {ids}")
    for item in dashboard["panels"]:
        g = item["gridPos"]
        if not (g["w"] > 0 and g["h"] > 0 and 0 <= g["x"] <= g["x"] + g["w"] <= GRID_COLUMNS):
            problems.append(f"{item['title']} does not fit the grid: {g}")
    for first, second in combinations(dashboard["panels"], 2):
        if cells(first) & cells(second):
            problems.append(f"{first['title']} overlaps {second['title']}")
    row_tops = [item["gridPos"]["y"] for item in dashboard["panels"] if item["type"] == "row"]
    bounds = zip(row_tops, [*row_tops[1:], 10**6], strict=True)
    for (title, row_panels), (top, next_top) in zip(rows(dashboard), bounds, strict=True):
        for panel in row_panels:
            g = panel["gridPos"]
            if not top < g["y"] <= g["y"] + g["h"] <= next_top:
                problems.append(f"{panel['title']} is not inside row {title}")
    return problems


def unexplained_panels(dashboard: JSON) -> list[str]:
    """Panels without a description worth the name, and graphs without a unit."""
    problems = []
    for panel in panels(dashboard):
        if len(panel.get("description", "")) < MIN_DESCRIPTION:
            problems.append(f"{panel['title']}: description too short")
        if panel["type"] == "timeseries" and not panel["fieldConfig"]["defaults"].get("unit"):
            problems.append(f"{panel['title']}: no unit")
    return problems


def unprovisioned_datasources(dashboard: JSON) -> list[str]:
    """Panels or targets naming a data source (uid and type) Grafana does not provision,
    or a target another than its panel's."""
    provisioned = {source["uid"]: source["type"] for source in provisioned_datasources()}
    problems = []
    for panel in panels(dashboard):
        source = panel["datasource"]
        if provisioned.get(source["uid"]) != source["type"]:
            problems.append(f"{panel['title']}: {source}")
        for target in panel["targets"]:
            if target["datasource"] != source:
                problems.append(f"{panel['title']} / {target['refId']}: {target['datasource']}")
    return problems


def syntax_errors(dashboard: JSON, variables: Mapping[str, str]) -> list[str]:
    """Each query Grafana's grammar rejects once Grafana has replaced its macros and
    `variables` in it, with the errors."""
    found = queries(dashboard)
    sent = [substitute(q.text, QueryContext(variables=dict(variables))) for q in found]
    results = parse_batch([(q.language, text) for q, text in zip(found, sent, strict=True)])
    return [
        f"{q.panel} / {q.source} ({q.language}): {text!r}: {r.errors}"
        for q, text, r in zip(found, sent, results, strict=True)
        if r.errors
    ]


# --- PromQL, read just deep enough for names, matchers and groupings --------------------

# What Alloy's otelcol.connector.servicegraph writes into Prometheus, by the names
# Grafana's service graph reads.
SERVICE_GRAPH_METRICS = {
    "traces_service_graph_request_total",
    "traces_service_graph_request_failed_total",
    *(
        f"traces_service_graph_request_{side}_seconds_{part}"
        for side in ("server", "client")
        for part in ("bucket", "sum", "count")
    ),
}
SERVICE_GRAPH_LABELS = {"client", "server", "connection_type"}
SCRAPE_LABELS = {"job", "instance"}  # added by the scrape, not by the service

# cAdvisor's families the "Host and Containers" dashboard may read, each with its
# `--enable_metrics` kind, as cAdvisor documents them (docs/storage/prometheus.md,
# v0.60.5), and the labels it gives every container's series. No cAdvisor runs here
# (no Docker), so its queries are checked against this table, not a scrape.
CADVISOR_METRICS = {
    "container_cpu_usage_seconds_total": "cpu",
    "container_memory_usage_bytes": "memory",
    "container_memory_working_set_bytes": "memory",
    "container_network_receive_bytes_total": "network",
    "container_network_transmit_bytes_total": "network",
}
CADVISOR_LABELS = {"id", "name", "image", "interface", "cpu"}
"""`name` is the container's name (`--store_container_labels=false` keeps name, image
and id); `interface` is the network's, `cpu` the CPU time's (`total` or a core)."""


def reads_cadvisor_only(panel: JSON) -> bool:
    """Whether every Prometheus query of `panel` reads cAdvisor's families alone."""
    names = [
        metric_names(target["expr"])
        for target in panel.get("targets", [])
        if (target.get("datasource") or panel["datasource"])["type"] == "prometheus"
    ]
    return bool(names) and all(n and n <= set(CADVISOR_METRICS) for n in names)


def without_cadvisor(dashboard: JSON) -> JSON:
    """`dashboard` without the panels that read cAdvisor alone: what the native stack,
    which runs no cAdvisor (it has no Docker containers), can fill."""
    kept = [item for item in dashboard["panels"] if not reads_cadvisor_only(item)]
    return {**dashboard, "panels": kept}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"and", "or", "unless", "offset"}
_MATCHERS = r'\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}'  # `{...}`, braces inside strings too


def prometheus_queries(dashboard: JSON) -> list[Query]:
    found = [q for q in queries(dashboard) if q.language == "promql"]
    assert found, "no Prometheus query"
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its identifiers that are not functions
    (followed by `(`), keywords, labels of `by (...)`, matchers or strings."""
    code = _STRING.sub('""', expr)
    code = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", code)
    code = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", code)
    return {
        match.group(1)
        for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\(?)", code)
        if not match.group(2) and match.group(1) not in _KEYWORDS
    }


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each `metric{...}` of the expression with its (label, op, value) matchers."""
    return [
        (name, re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body))
        for name, body in re.findall(r"([A-Za-z_:][\w:]*)\s*" + _MATCHERS, expr)
    ]


def grouping(expr: str) -> set[str]:
    """The labels of its `by (...)` and `without (...)` aggregations."""
    lists = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", _STRING.sub('""', expr))
    return {label.strip() for group in lists for label in group.split(",") if label.strip()}


def range_windows(expr: str) -> set[str]:
    """The windows `[...]` of its range vectors, strings aside."""
    return set(re.findall(r"\[([^\]]+)\]", _STRING.sub('""', expr)))


Exposed = dict[str, dict[str, set[str]]]
"""Each sample name a service exposes, with the values seen of each of its labels."""


_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+\S+")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def exposed_labels(openmetrics: str, *, text_format: bool = False) -> Exposed:
    """What one scrape of a service exposes: OpenMetrics text, or with `text_format`
    Prometheus' older text format, as exporters such as postgres_exporter answer. The
    latter is read line by line, each sample by the name it is written with, as
    Prometheus stores it (prometheus_client's parser would add `_total` to a counter's)."""
    found: Exposed = defaultdict(lambda: defaultdict(set))
    if text_format:
        for line in openmetrics.splitlines():
            if (sample := _SAMPLE.match(line)) is not None:
                labels = found[sample[1]]
                for label, value in _LABEL.findall(sample[2] or ""):
                    labels[label].add(value)
        return found
    for family in text_string_to_metric_families(openmetrics):
        for sample in family.samples:
            labels = found[sample.name]
            for label, value in sample.labels.items():
                labels[label].add(value)
    return found


def loki_trace_link_pattern() -> re.Pattern[str]:
    """The regex of the Loki data source's derived field that makes a line's trace id
    the **Open trace** link of the log panels (its `datasourceUid` is Tempo's)."""
    [source] = [s for s in provisioned_datasources() if s["type"] == "loki"]
    [field] = [f for f in source["jsonData"]["derivedFields"] if f["datasourceUid"] == "tempo"]
    return re.compile(field["matcherRegex"])
