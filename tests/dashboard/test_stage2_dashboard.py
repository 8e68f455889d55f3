"""The "Dice Roller - Stage 2" dashboard: generated, well formed, and asking only for
what stage 2 really produces.

The frontend's metric names and labels are read from the real frontend, built in
process and served one good and one failed roll (the dice-roller behind it is an
httpx mock); the service graph's names are the ones Alloy's servicegraph connector
writes and Grafana's service graph reads. Every query goes through Grafana's own
grammars, and the stack files (compose, Alloy, the provisioned data sources) are read
for the names the queries rely on.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import httpx
import pytest
import yaml
from frontend.app import create_app
from frontend.settings import Settings
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.support.dashboard_model import (
    ALLOY_CONFIG,
    COMPOSE_FILE,
    DASHBOARD_PATH,
    DASHBOARD_PROVIDERS_DIR,
    JSON,
    STAGE2_DASHBOARD_PATH,
    Query,
    load_dashboard,
    load_generator,
    panel_by_title,
    panels,
    provisioned_datasources,
    queries,
    rows,
)
from tests.support.grafana_macros import QueryContext, dashboard_variables, substitute
from tests.support.grammars import parse_batch, require_grammars
from tests.support.metrics import OPENMETRICS

# Rows and panels, written out apart from the generator: (row, [(panel, type)]).
EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Frontend",
        [
            ("Frontend Request Rate", "timeseries"),
            ("Frontend Error Ratio", "timeseries"),
            ("Frontend Request Duration", "timeseries"),
        ],
    ),
    (
        "Frontend → Dice-Roller",
        [
            ("Upstream Duration by Outcome", "timeseries"),
            ("Upstream Errors by Reason", "timeseries"),
        ],
    ),
    (
        "Between the Services",
        [("Service Graph", "nodeGraph"), ("Calls Between Services", "timeseries")],
    ),
    (
        "Traces and Logs",
        [("Slow Cross-Service Traces", "table"), ("Logs of One Trace", "logs")],
    ),
]
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
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
GRID_COLUMNS = 24


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard(STAGE2_DASHBOARD_PATH)


def _compose() -> JSON:
    document: JSON = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


# --- Generated ---------------------------------------------------------------------------


def test_committed_json_is_the_generated_one() -> None:
    committed = STAGE2_DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render_stage2(), (
        "grafana-dashboards/stage2-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_one_run_writes_and_checks_both_dashboards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    stage1, stage2 = tmp_path / DASHBOARD_PATH.name, tmp_path / STAGE2_DASHBOARD_PATH.name
    stage1.write_text(DASHBOARD_PATH.read_text(encoding="utf-8"))
    stage2.write_text(STAGE2_DASHBOARD_PATH.read_text(encoding="utf-8").replace("Stage 2", "X"))
    monkeypatch.setattr(generator, "DASHBOARD_PATH", stage1)
    monkeypatch.setattr(generator, "STAGE2_DASHBOARD_PATH", stage2)
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{stage2.name} is out of date" in out and f"{stage1.name} is up to date" in out
    stage2.unlink()  # a missing file is written too
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert stage1.read_text(encoding="utf-8") == DASHBOARD_PATH.read_text(encoding="utf-8")
    assert stage2.read_text(encoding="utf-8") == STAGE2_DASHBOARD_PATH.read_text(encoding="utf-8")


# --- Shape -------------------------------------------------------------------------------


def test_identity(dashboard: JSON) -> None:
    stage1 = load_dashboard()
    assert dashboard["title"] == "Dice Roller - Stage 2"
    assert dashboard["uid"] == "dice-roller-stage2"
    assert "stage2" in dashboard["tags"]
    assert set(stage1["tags"]) - {"stage1"} <= set(dashboard["tags"])
    assert dashboard["schemaVersion"] == stage1["schemaVersion"]


def test_rows_and_panels(dashboard: JSON) -> None:
    actual = [
        (title, [(panel["title"], panel["type"]) for panel in row_panels])
        for title, row_panels in rows(dashboard)
    ]
    assert actual == EXPECTED_LAYOUT
    ids = [item["id"] for item in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_grid_positions_fit_and_do_not_overlap(dashboard: JSON) -> None:
    def cells(item: JSON) -> set[tuple[int, int]]:
        g = item["gridPos"]
        return {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }

    for item in dashboard["panels"]:
        g = item["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and 0 <= g["x"] <= g["x"] + g["w"] <= GRID_COLUMNS
    for first, second in combinations(dashboard["panels"], 2):
        assert not cells(first) & cells(second), (first["title"], second["title"])
    row_tops = [item["gridPos"]["y"] for item in dashboard["panels"] if item["type"] == "row"]
    bounds = zip(row_tops, [*row_tops[1:], 10**6], strict=True)
    for (title, row_panels), (top, next_top) in zip(rows(dashboard), bounds, strict=True):
        for panel in row_panels:
            g = panel["gridPos"]
            assert top < g["y"] and g["y"] + g["h"] <= next_top, (title, panel["title"])


def test_every_panel_explains_itself_and_graphs_have_units(dashboard: JSON) -> None:
    for panel in panels(dashboard):
        assert len(panel.get("description", "")) >= 60, panel["title"]
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


def test_data_sources_are_the_ones_the_stack_provisions(dashboard: JSON) -> None:
    provisioned = {source["uid"]: source["type"] for source in provisioned_datasources()}
    for panel in panels(dashboard):
        source = panel["datasource"]
        assert provisioned.get(source["uid"]) == source["type"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, (panel["title"], target["refId"])


def test_grafana_provisioning_loads_it_beside_stage1() -> None:
    """The provider reads every JSON file of grafana-dashboards/ (mounted whole at its
    path, tests/stack/test_grafana_provisioning.py), so the new file needs no mount of
    its own; two dashboards with one uid would make Grafana load only one of them."""
    [provider] = [
        p
        for path in sorted(DASHBOARD_PROVIDERS_DIR.glob("*.y*ml"))
        for p in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    ]
    assert provider["type"] == "file"
    assert STAGE2_DASHBOARD_PATH.parent == DASHBOARD_PATH.parent
    uids = [load_dashboard(path)["uid"] for path in sorted(DASHBOARD_PATH.parent.glob("*.json"))]
    assert len(uids) == len(set(uids)) and "dice-roller-stage2" in uids


# --- Queries: grammar, and names the stack really uses -----------------------------------


@pytest.fixture
def grammars() -> Iterator[None]:
    require_grammars()
    yield


@pytest.mark.usefixtures("grammars")
@pytest.mark.parametrize("trace_id", ["", SAMPLE_TRACE_ID], ids=["empty-box", "one-trace"])
def test_every_query_parses(dashboard: JSON, trace_id: str) -> None:
    variables = {**dashboard_variables(dashboard), "trace_id": trace_id}
    found = queries(dashboard)
    assert {query.language for query in found} == {"promql", "logql", "traceql"}
    sent = [substitute(q.text, QueryContext(variables=variables)) for q in found]
    results = parse_batch([(q.language, text) for q, text in zip(found, sent, strict=True)])
    failures = [
        f"{q.panel} / {q.source} ({q.language}): {text!r}: {r.errors}"
        for q, text, r in zip(found, sent, results, strict=True)
        if r.errors
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.usefixtures("grammars")
def test_logs_select_both_services_by_labels_alloy_attaches(dashboard: JSON) -> None:
    text = ALLOY_CONFIG.read_text(encoding="utf-8")
    attached = set(re.findall(r'^\s*target_label\s*=\s*"([^"]+)"', text, flags=re.M))
    services = _compose()["services"]
    containers = {services[name]["container_name"] for name in ("frontend", "dice-roller")}
    log_queries = [q for q in queries(dashboard) if q.language == "logql"]
    assert log_queries
    context = QueryContext(variables=dashboard_variables(dashboard))
    results = parse_batch([("logql", substitute(q.text, context)) for q in log_queries])
    for query, result in zip(log_queries, results, strict=True):
        matchers = [m for selector in result.selectors for m in selector]
        assert matchers, query.panel
        assert {m.label for m in matchers} <= attached, query.panel
        [names] = [m for m in matchers if m.label == "container_name"]
        assert names.op == "=~" and set(names.value.split("|")) == containers, names


def test_trace_queries_name_the_services_as_they_name_themselves(dashboard: JSON) -> None:
    services = _compose()["services"]
    names = {services[s]["environment"]["OTEL_SERVICE_NAME"] for s in ("frontend", "dice-roller")}
    traceql = [q.text for q in queries(dashboard) if q.language == "traceql"]
    assert traceql
    for text in traceql:
        named = set(re.findall(r'resource\.service\.name\s*=\s*"([^"]*)"', text))
        assert named == names, text  # a slow frontend request that reached the dice-roller


def test_prometheus_jobs_are_the_ones_alloy_scrapes(dashboard: JSON) -> None:
    """Alloy names the job of each container it scrapes after its compose service, and
    scrapes only the containers labelled `sandbox.metrics.port`."""
    rules = re.findall(r"rule\s*\{(.*?)\}", ALLOY_CONFIG.read_text(encoding="utf-8"), re.S)
    assert any(
        "__meta_docker_container_label_com_docker_compose_service" in rule
        and re.search(r'target_label\s*=\s*"job"', rule)
        for rule in rules
    )
    scraped = {
        name
        for name, service in _compose()["services"].items()
        if "sandbox.metrics.port" in (service.get("labels") or {})
    }
    jobs = {
        value
        for q in _prometheus_queries(dashboard)
        for _, matchers in _selectors(q.text)
        for label, _, value in matchers
        if label == "job"
    }
    assert jobs == {"frontend"} and jobs <= scraped


# --- PromQL names against the real frontend ----------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"and", "or", "unless", "offset"}


def _metric_names(expr: str) -> set[str]:
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


def _selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each `metric{...}` of the expression with its (label, op, value) matchers."""
    return [
        (name, re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body))
        for name, body in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)
    ]


def _grouping(expr: str) -> set[str]:
    lists = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", _STRING.sub('""', expr))
    return {label.strip() for group in lists for label in group.split(",") if label.strip()}


def test_the_promql_readers_on_a_known_query() -> None:
    expr = (
        'histogram_quantile(0.5, sum by (le, outcome) (rate(a_bucket{job="x", le=~"1|2"}'
        "[$__rate_interval]))) / (sum(b_total) or vector(0)) > on (job) group_left c"
    )
    assert _metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert _selectors(expr) == [("a_bucket", [("job", "=", "x"), ("le", "=~", "1|2")])]
    assert _grouping(expr) == {"le", "outcome"}  # aggregation labels; `on (job)` is matching


def _prometheus_queries(dashboard: JSON) -> list[Query]:
    found = [q for q in queries(dashboard) if q.language == "promql"]
    assert found
    return found


def _dice_roller(request: httpx.Request) -> httpx.Response:
    """The dice-roller's /roll: the fair die rolls a 4, the risky one fails."""
    if request.url.path == "/roll" and request.url.params.get("die") == "fair":
        return httpx.Response(200, json={"die": "fair", "roll": 4})
    return httpx.Response(500, json={"detail": "Roll failed"})


async def _frontend_scrape() -> str:
    app = create_app(
        Settings(), tracer_provider=TracerProvider(), transport=httpx.MockTransport(_dice_roller)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://frontend") as client:
        assert (await client.get("/api/roll", params={"die": "fair"})).status_code == 200
        assert (await client.get("/api/roll", params={"die": "risky"})).status_code == 502
        assert (await client.get("/")).status_code == 200
        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        return response.text


@pytest.fixture(scope="module")
def exposed() -> dict[str, dict[str, set[str]]]:
    """Each sample name the frontend exposes, with the values seen of each label."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in text_string_to_metric_families(asyncio.run(_frontend_scrape())):
        for sample in family.samples:
            labels = found[sample.name]
            for label, value in sample.labels.items():
                labels[label].add(value)
    return found


def test_every_metric_is_one_the_frontend_exposes_or_the_service_graph(
    dashboard: JSON, exposed: dict[str, dict[str, set[str]]]
) -> None:
    used = {name for q in _prometheus_queries(dashboard) for name in _metric_names(q.text)}
    unknown = used - set(exposed) - SERVICE_GRAPH_METRICS
    assert not unknown, f"not exposed by the frontend nor the service graph: {unknown}"
    assert used & SERVICE_GRAPH_METRICS and used - SERVICE_GRAPH_METRICS


def test_labels_and_values_are_the_frontends(
    dashboard: JSON, exposed: dict[str, dict[str, set[str]]]
) -> None:
    """`handler="/api/roll"`, `status="5xx"`, `upstream="dice-roller"`, `by (outcome)`:
    each label the queries name is on the samples, and each value they match exactly
    is one the frontend really wrote (after a good and a failed roll)."""
    for query in _prometheus_queries(dashboard):
        for name, matchers in _selectors(query.text):
            labels = SERVICE_GRAPH_LABELS if name in SERVICE_GRAPH_METRICS else exposed[name]
            for label, op, value in matchers:
                if label in SCRAPE_LABELS:
                    continue
                assert label in labels, (query.panel, name, label)
                if op == "=" and name not in SERVICE_GRAPH_METRICS:
                    assert value in exposed[name][label], (query.panel, name, label, value)
        for name in _metric_names(query.text):
            labels = SERVICE_GRAPH_LABELS if name in SERVICE_GRAPH_METRICS else exposed[name]
            assert _grouping(query.text) <= set(labels) | {"le"}, (query.panel, name)


# --- What each panel must do ---------------------------------------------------------------


def test_latency_panels_carry_exemplars_to_tempo(dashboard: JSON) -> None:
    for title in ("Frontend Request Duration", "Upstream Duration by Outcome"):
        targets = panel_by_title(dashboard, title)["targets"]
        assert targets and all(t.get("exemplar") for t in targets), title
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert any(d["name"] == "trace_id" and d["datasourceUid"] == "tempo" for d in destinations)


def test_latency_quantiles(dashboard: JSON) -> None:
    def quantiles(title: str) -> list[str]:
        targets = panel_by_title(dashboard, title)["targets"]
        return [re.findall(r"histogram_quantile\(([\d.]+),", t["expr"])[0] for t in targets]

    assert quantiles("Frontend Request Duration") == ["0.5", "0.95", "0.99"]
    assert quantiles("Upstream Duration by Outcome") == ["0.5", "0.99"]
    upstream = panel_by_title(dashboard, "Upstream Duration by Outcome")["targets"]
    assert all("outcome" in _grouping(t["expr"]) for t in upstream)
    [errors] = panel_by_title(dashboard, "Upstream Errors by Reason")["targets"]
    assert _grouping(errors["expr"]) == {"reason"}


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    for query in _prometheus_queries(dashboard):
        windows = set(re.findall(r"\[([^\]]+)\]", _STRING.sub('""', query.text)))
        assert windows == {"$__rate_interval"}, (query.panel, windows)


def test_service_graph_is_tempos_service_map(dashboard: JSON) -> None:
    graph = panel_by_title(dashboard, "Service Graph")
    assert graph["datasource"]["type"] == "tempo"
    assert [t["queryType"] for t in graph["targets"]] == ["serviceMap"]
    [tempo] = [s for s in provisioned_datasources() if s["uid"] == graph["datasource"]["uid"]]
    prometheus_uids = {s["uid"] for s in provisioned_datasources() if s["type"] == "prometheus"}
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] in prometheus_uids


def test_slow_traces_are_a_traceql_search_table(dashboard: JSON) -> None:
    table = panel_by_title(dashboard, "Slow Cross-Service Traces")
    [target] = table["targets"]
    assert target["queryType"] == "traceql" and target["tableType"] == "traces"
    assert re.search(r"duration\s*>\s*\d+m?s", target["query"])


def test_trace_logs_follow_the_trace_id_box(dashboard: JSON) -> None:
    """Empty, the box keeps every line (`|= ""`); filled, only that trace's lines."""
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "textbox" and variable["name"] == "trace_id"
    assert variable["current"]["value"] == ""
    [target] = panel_by_title(dashboard, "Logs of One Trace")["targets"]
    assert '|= "$trace_id"' in target["expr"]
    assert '|= ""' in substitute(target["expr"], QueryContext(variables={"trace_id": ""}))
