"""The "Host and Containers" dashboard: generated, well formed, and asking only for what
stage 5's node_exporter and cAdvisor really expose.

node_exporter is the one the native stack runs: built from its Go module at the tag
stages/stage5.yml pins, started here on 127.0.0.1 with compose's own flags (their host
paths translated as the native stack translates them), scraped once; every `node_*`
name and label the queries use is checked against that scrape. cAdvisor watches
Docker's containers and runs with compose only: its queries are checked against the
families and labels cAdvisor documents, and against the metric kinds compose enables.
Every query goes through Grafana's own PromQL grammar.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nativestack import build
from nativestack.substitutions import native_command
from stackclient import answers, wait_until
from tests.support.dashboard_model import (
    CADVISOR_LABELS,
    CADVISOR_METRICS,
    HOST_DASHBOARD_PATH,
    JSON,
    SCRAPE_LABELS,
    STAGE5_DASHBOARD_PATH,
    Exposed,
    alloy_scraped_jobs,
    compose_services,
    exposed_labels,
    grouping,
    layout_problems,
    load_dashboard,
    load_generator,
    metric_names,
    panels,
    prometheus_queries,
    provisioned_dashboard_uids,
    range_windows,
    reads_cadvisor_only,
    rows,
    selectors,
    syntax_errors,
    unexplained_panels,
    unprovisioned_datasources,
    without_cadvisor,
)
from tests.support.grafana_macros import QueryContext, dashboard_variables, substitute
from tests.support.grammars import require_grammars
from tests.support.tools import free_port

EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Host (node_exporter)",
        [
            ("Host CPU Busy", "timeseries"),
            ("Host Memory", "timeseries"),
            ("Host Network", "timeseries"),
            ("Host Load", "timeseries"),
        ],
    ),
    (
        "Containers (cAdvisor, compose only)",
        [
            ("Container CPU", "timeseries"),
            ("Container Memory", "timeseries"),
            ("Container Network", "timeseries"),
        ],
    ),
]
NODE_EXPORTER = "node-exporter"
CADVISOR = "cadvisor"


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard(HOST_DASHBOARD_PATH)


@pytest.fixture(scope="module")
def services() -> dict[str, JSON]:
    return compose_services((NODE_EXPORTER, CADVISOR), stage=5)


@pytest.fixture(scope="module")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exposed]:
    """One scrape of the native stack's node_exporter, run as compose runs it (its
    `--path.*` flags on the host's /proc, /sys and /), on 127.0.0.1."""
    binary = build.build(NODE_EXPORTER, quiet=True)
    state = tmp_path_factory.mktemp("node-exporter")
    command = native_command(NODE_EXPORTER, binary, state, state / "docker.sock", stage=5)
    port = free_port()
    process = subprocess.Popen(
        [*command.argv, f"--web.listen-address=127.0.0.1:{port}"],
        env={**os.environ, **command.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert wait_until(lambda: answers(url), 30), "node_exporter never answered"
        scrape = httpx.get(url, timeout=30).text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    yield exposed_labels(scrape, text_format=True)


# --- Generated -------------------------------------------------------------------------


def test_committed_json_is_the_generated_one() -> None:
    committed = HOST_DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render_host(), (
        "grafana-dashboards/host-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_one_run_writes_it_beside_the_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    for name in (
        "DASHBOARD_PATH",
        "STAGE2_DASHBOARD_PATH",
        "STAGE3_DASHBOARD_PATH",
        "STAGE5_DASHBOARD_PATH",
        "HOST_DASHBOARD_PATH",
    ):
        monkeypatch.setattr(generator, name, tmp_path / getattr(generator, name).name)
    assert generator.main(["--check"]) == 1
    assert f"{HOST_DASHBOARD_PATH.name} is out of date" in capsys.readouterr().out
    assert generator.main([]) == 0
    written = (tmp_path / HOST_DASHBOARD_PATH.name).read_text(encoding="utf-8")
    assert written == HOST_DASHBOARD_PATH.read_text(encoding="utf-8")


# --- Shape -----------------------------------------------------------------------------


def test_identity_and_its_link_to_stage_5(dashboard: JSON) -> None:
    stage5 = load_dashboard(STAGE5_DASHBOARD_PATH)
    assert dashboard["title"] == "Host and Containers"
    assert dashboard["uid"] == "dice-roller-host"
    assert {"host", "containers", "stage5"} <= set(dashboard["tags"])
    assert dashboard["schemaVersion"] == stage5["schemaVersion"]
    assert [(link["title"], link["url"]) for link in dashboard["links"]] == [
        (stage5["title"], f"/d/{stage5['uid']}")
    ]


def test_rows_and_panels(dashboard: JSON) -> None:
    actual = [
        (title, [(panel["title"], panel["type"]) for panel in row_panels])
        for title, row_panels in rows(dashboard)
    ]
    assert actual == EXPECTED_LAYOUT


def test_grid_descriptions_units_and_data_sources(dashboard: JSON) -> None:
    assert layout_problems(dashboard) == []
    assert unexplained_panels(dashboard) == []
    assert unprovisioned_datasources(dashboard) == []


def test_grafana_provisioning_loads_it_beside_the_others() -> None:
    uids = provisioned_dashboard_uids()
    assert len(uids) == len(set(uids))
    assert "dice-roller-host" in uids


# --- Queries: grammar, and the names the exporters really expose -----------------------


def test_every_query_parses(dashboard: JSON) -> None:
    require_grammars()
    assert syntax_errors(dashboard, dashboard_variables(dashboard)) == []
    for query in prometheus_queries(dashboard):
        substitute(query.text, QueryContext(variables=dashboard_variables(dashboard)))


def test_the_host_row_reads_node_exporter_and_the_containers_row_cadvisor(
    dashboard: JSON,
) -> None:
    """The split the native stack's proof relies on (`without_cadvisor`): the cAdvisor
    panels are exactly the containers' row, and none of the host's reads cAdvisor."""
    (_, host), (_, containers) = rows(dashboard)
    assert all(reads_cadvisor_only(panel) for panel in containers)
    for panel in host:
        for target in panel["targets"]:
            assert all(name.startswith("node_") for name in metric_names(target["expr"]))
    kept = {panel["title"] for panel in panels(without_cadvisor(dashboard))}
    assert kept == {panel["title"] for panel in host}
    assert tuple(panel["title"] for panel in containers) == load_generator().CADVISOR_PANELS


def test_both_exporters_are_scraped_by_alloy(services: dict[str, JSON]) -> None:
    assert alloy_scraped_jobs(services) == {NODE_EXPORTER, CADVISOR}


def test_node_exporter_names_and_labels_are_the_real_ones(
    dashboard: JSON, node_exporter: Exposed
) -> None:
    """Each `node_*` family, each label a query matches or groups by, and each value it
    matches exactly (`mode="idle"`) is in a real node_exporter's scrape."""
    used = set()
    for query in prometheus_queries(dashboard):
        for name in metric_names(query.text):
            if not name.startswith("node_"):
                continue
            used.add(name)
            assert name in node_exporter, (query.panel, name)
            labels = node_exporter[name]
            assert grouping(query.text) <= set(labels), (query.panel, name)
            for metric, matchers in selectors(query.text):
                for label, op, value in matchers if metric == name else []:
                    assert label in labels, (query.panel, name, label)
                    if op == "=":
                        assert value in labels[label], (query.panel, name, label, value)
    assert used >= {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1"}


def test_cadvisor_names_and_labels_are_the_documented_ones(
    dashboard: JSON, services: dict[str, JSON]
) -> None:
    """No cAdvisor runs here: each `container_*` family is one cAdvisor documents, of a
    kind compose's `--enable_metrics` keeps, and its labels are cAdvisor's, the
    container's `name` the one a query groups by."""
    flags = dict(str(arg).split("=", 1) for arg in services[CADVISOR]["command"])
    enabled = set(flags["--enable_metrics"].split(","))
    used = set()
    for query in prometheus_queries(dashboard):
        names = {name for name in metric_names(query.text) if not name.startswith("node_")}
        for name in names:
            used.add(name)
            assert name in CADVISOR_METRICS, (query.panel, name)
            assert CADVISOR_METRICS[name] in enabled, (query.panel, name)
        if names:
            labels = {label for _, matchers in selectors(query.text) for label, _, _ in matchers}
            assert labels - SCRAPE_LABELS <= CADVISOR_LABELS, query.panel
            assert grouping(query.text) == {"name"}, query.panel
    assert {kind for name, kind in CADVISOR_METRICS.items() if name in used} == enabled


def test_cadvisor_panels_say_they_are_compose_only(dashboard: JSON) -> None:
    assert "compose only" in dashboard["description"]
    for panel in panels(dashboard):
        if reads_cadvisor_only(panel):
            assert "native stack" in panel["description"], panel["title"]


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    windows = [range_windows(q.text) for q in prometheus_queries(dashboard)]
    assert all(window <= {"$__rate_interval"} for window in windows), windows
    assert sum(1 for window in windows if window) == 6


def test_the_host_cpu_is_the_busy_share_of_every_core(dashboard: JSON) -> None:
    [target] = next(p for p in panels(dashboard) if p["title"] == "Host CPU Busy")["targets"]
    assert target["expr"].replace(" ", "").startswith("1-avg(rate(node_cpu_seconds_total")
    assert 'mode="idle"' in target["expr"]
