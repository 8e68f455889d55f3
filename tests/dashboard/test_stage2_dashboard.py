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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from frontend.app import create_app
from frontend.settings import Settings
from opentelemetry.sdk.trace import TracerProvider

from tests.support.dashboard_model import (
    COMPOSE_FILE,
    DASHBOARD_PATH,
    JSON,
    SCRAPE_LABELS,
    SERVICE_GRAPH_LABELS,
    SERVICE_GRAPH_METRICS,
    STAGE2_DASHBOARD_PATH,
    STAGE3_DASHBOARD_PATH,
    Exposed,
    alloy_log_labels,
    alloy_scraped_jobs,
    exposed_labels,
    grouping,
    layout_problems,
    load_dashboard,
    load_generator,
    metric_names,
    panel_by_title,
    prometheus_queries,
    provisioned_dashboard_uids,
    provisioned_datasources,
    queries,
    range_windows,
    rows,
    selectors,
    syntax_errors,
    unexplained_panels,
    unprovisioned_datasources,
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
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


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
    stage3 = tmp_path / STAGE3_DASHBOARD_PATH.name  # stage 3's own test checks it
    stage3.write_text(STAGE3_DASHBOARD_PATH.read_text(encoding="utf-8"))
    monkeypatch.setattr(generator, "STAGE3_DASHBOARD_PATH", stage3)
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


def test_grid_positions_fit_and_do_not_overlap(dashboard: JSON) -> None:
    assert layout_problems(dashboard) == []


def test_every_panel_explains_itself_and_graphs_have_units(dashboard: JSON) -> None:
    assert unexplained_panels(dashboard) == []


def test_data_sources_are_the_ones_the_stack_provisions(dashboard: JSON) -> None:
    assert unprovisioned_datasources(dashboard) == []


def test_grafana_provisioning_loads_it_beside_stage1() -> None:
    """The provider reads every JSON file of grafana-dashboards/ (mounted whole at its
    path, tests/stack/test_grafana_provisioning.py), so the new file needs no mount of
    its own; two dashboards with one uid would make Grafana load only one of them."""
    assert STAGE2_DASHBOARD_PATH.parent == DASHBOARD_PATH.parent
    uids = provisioned_dashboard_uids()
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
    assert {query.language for query in queries(dashboard)} == {"promql", "logql", "traceql"}
    assert syntax_errors(dashboard, variables) == []


@pytest.mark.usefixtures("grammars")
def test_logs_select_both_services_by_labels_alloy_attaches(dashboard: JSON) -> None:
    attached = alloy_log_labels()
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
    scraped = alloy_scraped_jobs(_compose()["services"])
    jobs = {
        value
        for q in prometheus_queries(dashboard)
        for _, matchers in selectors(q.text)
        for label, _, value in matchers
        if label == "job"
    }
    assert jobs == {"frontend"} and jobs <= scraped


# --- PromQL names against the real frontend ----------------------------------------------


def test_the_promql_readers_on_a_known_query() -> None:
    expr = (
        'histogram_quantile(0.5, sum by (le, outcome) (rate(a_bucket{job="x", le=~"1|2"}'
        "[$__rate_interval]))) / (sum(b_total) or vector(0)) > on (job) group_left c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert selectors(expr) == [("a_bucket", [("job", "=", "x"), ("le", "=~", "1|2")])]
    assert grouping(expr) == {"le", "outcome"}  # aggregation labels; `on (job)` is matching
    route = 'h_bucket{job="die-service", handler="/dice/{name}"}'  # braces inside a value
    assert selectors(route) == [
        ("h_bucket", [("job", "=", "die-service"), ("handler", "=", "/dice/{name}")])
    ]


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
def exposed() -> Exposed:
    """Each sample name the frontend exposes, with the values seen of each label."""
    return exposed_labels(asyncio.run(_frontend_scrape()))


def test_every_metric_is_one_the_frontend_exposes_or_the_service_graph(
    dashboard: JSON, exposed: Exposed
) -> None:
    used = {name for q in prometheus_queries(dashboard) for name in metric_names(q.text)}
    unknown = used - set(exposed) - SERVICE_GRAPH_METRICS
    assert not unknown, f"not exposed by the frontend nor the service graph: {unknown}"
    assert used & SERVICE_GRAPH_METRICS and used - SERVICE_GRAPH_METRICS


def test_labels_and_values_are_the_frontends(dashboard: JSON, exposed: Exposed) -> None:
    """`handler="/api/roll"`, `status="5xx"`, `upstream="dice-roller"`, `by (outcome)`:
    each label the queries name is on the samples, and each value they match exactly
    is one the frontend really wrote (after a good and a failed roll)."""
    for query in prometheus_queries(dashboard):
        for name, matchers in selectors(query.text):
            labels = SERVICE_GRAPH_LABELS if name in SERVICE_GRAPH_METRICS else exposed[name]
            for label, op, value in matchers:
                if label in SCRAPE_LABELS:
                    continue
                assert label in labels, (query.panel, name, label)
                if op == "=" and name not in SERVICE_GRAPH_METRICS:
                    assert value in exposed[name][label], (query.panel, name, label, value)
        for name in metric_names(query.text):
            labels = SERVICE_GRAPH_LABELS if name in SERVICE_GRAPH_METRICS else exposed[name]
            assert grouping(query.text) <= set(labels) | {"le"}, (query.panel, name)


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
    assert all("outcome" in grouping(t["expr"]) for t in upstream)
    [errors] = panel_by_title(dashboard, "Upstream Errors by Reason")["targets"]
    assert grouping(errors["expr"]) == {"reason"}


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    for query in prometheus_queries(dashboard):
        assert range_windows(query.text) == {"$__rate_interval"}, query.panel


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
