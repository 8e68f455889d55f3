"""The "Dice Roller - Stage 5" dashboard: generated, well formed, and asking only for
what stage 5 really produces.

Stage 5 is stage 3 with the die-service's dice in PostgreSQL. Here the database is
real: Debian's PostgreSQL, made as compose's `postgres` image makes it (its user,
password and database from stages/stage5.yml), with Debian's postgres_exporter on it,
given compose's `DATA_SOURCE_NAME`; the die-service runs in process over compose's
`DIE_SERVICE_DATABASE_URL`, pointed at that server. It lists the dice and looks up
three; the exporter is scraped; then PostgreSQL stops and one more lookup fails. The
`pg_*` and `die_service_db_*` names and labels the queries use are checked against
those scrapes, the service-graph edge against the die-service's query spans, the logs
panel against the die-service's own "Database unavailable" line. Every query goes
through Grafana's own grammars.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import die_service.app
import httpx
import pytest
from die_service.database import PostgresCatalogue
from die_service.metrics import DatabaseMetrics
from die_service.settings import Settings as DieServiceSettings
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sandbox_telemetry import create_tracer_provider, new_registry
from sandbox_telemetry.logs import JsonLogFormatter, TraceContextFilter

from nativestack import postgres
from nativestack.postgres import Server, temporary_server
from stackclient import answers, wait_until
from tests.support.dashboard_model import (
    ALLOY_CONFIG,
    DASHBOARD_PATH,
    JSON,
    SCRAPE_LABELS,
    SERVICE_GRAPH_LABELS,
    SERVICE_GRAPH_METRICS,
    STAGE2_DASHBOARD_PATH,
    STAGE3_DASHBOARD_PATH,
    STAGE5_DASHBOARD_PATH,
    Exposed,
    alloy_log_labels,
    alloy_scraped_jobs,
    compose_services,
    exposed_labels,
    grouping,
    layout_problems,
    load_dashboard,
    load_generator,
    loki_trace_link_pattern,
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
from tests.support.tools import free_port

# Rows and panels, written out apart from the generator: (row, [(panel, type)]).
EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Die-Service → Database",
        [
            ("Query Duration by Query", "timeseries"),
            ("Pool Connections", "timeseries"),
            ("Pool Wait p99", "timeseries"),
            ("Database Errors by Reason", "timeseries"),
        ],
    ),
    (
        "PostgreSQL",
        [
            ("PostgreSQL Up", "stat"),
            ("Backends", "timeseries"),
            ("Transactions", "timeseries"),
            ("Cache Hit Ratio", "timeseries"),
        ],
    ),
    (
        "In the Traces",
        [
            ("Calls die-service → dice", "timeseries"),
            ("Call Duration die-service → dice", "timeseries"),
        ],
    ),
    (
        "Logs",
        [("Database Unavailable", "logs"), ("PostgreSQL Server Log", "logs")],
    ),
]
SERVICES = ("frontend", "dice-roller", "die-service", "postgres", "postgres-exporter")
EXPORTER_JOB = "postgres-exporter"  # Alloy names each job after its compose service
DIE_SERVICE_JOB = "die-service"
IN_BOTH_EXPORTERS = {
    "pg_up",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_hit",
    "pg_stat_database_blks_read",
    "pg_database_size_bytes",
}
"""postgres_exporter's families that Debian's 0.11.1 (the native stack's, scraped
here) and v0.20.1 (compose's, seen on a compose stack) both expose, with the
`datname` label; 0.11.1 adds a `server` label that v0.20.1 has not."""


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard(STAGE5_DASHBOARD_PATH)


@pytest.fixture(scope="module")
def services() -> dict[str, JSON]:
    return compose_services(SERVICES, stage=5)


# --- Stage 5's database for real, the die-service in process -------------------------------


@dataclass
class Stage5:
    """What the die-service and the exporter exposed, and what the die-service traced
    and logged, after the fixture's lookups."""

    exposed: dict[str, Exposed]
    """By the Prometheus job that scrapes each."""
    die_service_scrape: str
    """The die-service's scrape, as OpenMetrics text (exemplars included)."""
    spans: list[ReadableSpan]
    log_lines: list[str]
    """The die-service's JSON lines, as it prints them."""
    postgres_output: str
    found: str
    """The trace id of a lookup the database answered."""
    failed: str
    """The trace id of the lookup made while the database was down."""


def _on_localhost(url: str, port: int) -> str:
    """Compose's URL with its host (`postgres:5432`) replaced by 127.0.0.1:`port`."""
    parts = urlsplit(url)
    assert parts.hostname == "postgres", url
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}").geturl()


@dataclass
class _Process:
    process: subprocess.Popen[bytes]

    def stop(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _lookups(
    services: dict[str, JSON], server: Server, exporter_url: str
) -> tuple[dict[str, Exposed], str, list[ReadableSpan], list[str], str, str]:
    exporter = InMemorySpanExporter()
    provider = create_tracer_provider("die-service", "test", {"OTEL_TRACES_EXPORTER": "none"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = new_registry()
    database_url = services["die-service"]["environment"]["DIE_SERVICE_DATABASE_URL"]
    url = _on_localhost(database_url, server.port)
    catalogue = PostgresCatalogue(
        url, 5, 2.0, DatabaseMetrics(registry), provider.get_tracer("die_service")
    )
    # asyncpg is instrumented once per process, for the first provider: an app made
    # earlier in the session would get this one's query spans.
    AsyncPGInstrumentor().uninstrument()
    app = die_service.app.create_app(catalogue, provider, registry)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger("die_service")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # its lookups' lines too, as the service prints them
    try:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://die-service") as client,
        ):
            assert (await client.get("/dice")).status_code == 200
            found = [await client.get("/dice/d4") for _ in range(3)]
            assert all(answer.status_code == 200 for answer in found), found[0].text
            async with httpx.AsyncClient() as plain:
                pg_scrape = (await plain.get(f"{exporter_url}/metrics")).text
            server.stop()  # compose's stop_signal, SIGINT: fast shutdown
            failed = await client.get("/dice/d4")
            assert failed.status_code == 503, failed.text
            scrape = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        AsyncPGInstrumentor().uninstrument()  # the next app instruments it for its own
    exposed = {
        DIE_SERVICE_JOB: exposed_labels(scrape.text),
        EXPORTER_JOB: exposed_labels(pg_scrape, text_format=True),
    }
    ids = [answer.headers["traceresponse"].split("-")[1] for answer in (found[0], failed)]
    lines = [line for line in out.getvalue().splitlines() if line]
    return exposed, scrape.text, list(exporter.get_finished_spans()), lines, ids[0], ids[1]


@pytest.fixture(scope="module")
def stage5(services: dict[str, JSON]) -> Iterator[Stage5]:
    env = services["postgres"]["environment"]
    credentials = (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    exporter_port = free_port()
    with temporary_server(*credentials, free_port()) as server:
        dsn = services["postgres-exporter"]["environment"]["DATA_SOURCE_NAME"]
        exporter = _Process(
            subprocess.Popen(
                [postgres.EXPORTER, f"--web.listen-address=127.0.0.1:{exporter_port}"],
                env={**os.environ, "DATA_SOURCE_NAME": _on_localhost(dsn, server.port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        try:
            exporter_url = f"http://127.0.0.1:{exporter_port}"
            assert wait_until(lambda: answers(f"{exporter_url}/metrics"), 30), "no exporter"
            exposed, scrape, spans, lines, found, failed = asyncio.run(
                _lookups(services, server, exporter_url)
            )
        finally:
            exporter.stop(signal.SIGTERM)
        output = server.output()
    yield Stage5(exposed, scrape, spans, lines, output, found, failed)


# --- Generated ---------------------------------------------------------------------------


def test_committed_json_is_the_generated_one() -> None:
    committed = STAGE5_DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render_stage5(), (
        "grafana-dashboards/stage5-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_one_run_writes_and_checks_the_four_dashboards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    committed = {
        "DASHBOARD_PATH": DASHBOARD_PATH,
        "STAGE2_DASHBOARD_PATH": STAGE2_DASHBOARD_PATH,
        "STAGE3_DASHBOARD_PATH": STAGE3_DASHBOARD_PATH,
        "STAGE5_DASHBOARD_PATH": STAGE5_DASHBOARD_PATH,
    }
    for name, path in committed.items():
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        monkeypatch.setattr(generator, name, tmp_path / path.name)
    stage5 = tmp_path / STAGE5_DASHBOARD_PATH.name
    stage5.write_text(stage5.read_text(encoding="utf-8").replace("Stage 5", "X"))
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{stage5.name} is out of date" in out
    for path in (DASHBOARD_PATH, STAGE2_DASHBOARD_PATH, STAGE3_DASHBOARD_PATH):
        assert f"{path.name} is up to date" in out
    stage5.unlink()  # a missing file is written too
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    for path in committed.values():
        assert (tmp_path / path.name).read_text(encoding="utf-8") == path.read_text("utf-8")


# --- Shape -------------------------------------------------------------------------------


def test_identity(dashboard: JSON) -> None:
    stage3 = load_dashboard(STAGE3_DASHBOARD_PATH)
    assert dashboard["title"] == "Dice Roller - Stage 5"
    assert dashboard["uid"] == "dice-roller-stage5"
    assert {"stage5", "postgres"} <= set(dashboard["tags"])
    assert set(stage3["tags"]) - {"stage3"} <= set(dashboard["tags"])
    assert dashboard["schemaVersion"] == stage3["schemaVersion"]


def test_it_links_to_the_earlier_stages_dashboards(dashboard: JSON) -> None:
    earlier = [
        load_dashboard(path)
        for path in (DASHBOARD_PATH, STAGE2_DASHBOARD_PATH, STAGE3_DASHBOARD_PATH)
    ]
    assert [(link["title"], link["url"]) for link in dashboard["links"]] == [
        (board["title"], f"/d/{board['uid']}") for board in earlier
    ]
    assert all(link["keepTime"] for link in dashboard["links"])


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


def test_grafana_provisioning_loads_it_beside_the_others() -> None:
    """The provider reads every JSON file of grafana-dashboards/, so the new file needs
    no change to provisioning; one uid twice would make Grafana load only one of them."""
    assert STAGE5_DASHBOARD_PATH.parent == DASHBOARD_PATH.parent
    uids = provisioned_dashboard_uids()
    assert len(uids) == len(set(uids))
    assert {f"dice-roller-stage{n}" for n in (1, 2, 3, 5)} <= set(uids)


# --- Queries: grammar, and names the stack really uses -----------------------------------


def test_every_query_parses(dashboard: JSON) -> None:
    require_grammars()
    assert {query.language for query in queries(dashboard)} == {"promql", "logql", "traceql"}
    assert syntax_errors(dashboard, dashboard_variables(dashboard)) == []


def test_logs_select_the_die_service_and_postgres_by_labels_alloy_attaches(
    dashboard: JSON, services: dict[str, JSON]
) -> None:
    require_grammars()
    expected = {
        "Database Unavailable": services["die-service"]["container_name"],
        "PostgreSQL Server Log": services["postgres"]["container_name"],
    }
    log_queries = [q for q in queries(dashboard) if q.language == "logql"]
    assert sorted(q.panel for q in log_queries) == sorted(expected)
    results = parse_batch([("logql", q.text) for q in log_queries])
    for query, result in zip(log_queries, results, strict=True):
        matchers = [m for selector in result.selectors for m in selector]
        assert {m.label for m in matchers} <= alloy_log_labels(), query.panel
        assert [(m.label, m.op, m.value) for m in matchers] == [
            ("container_name", "=", expected[query.panel])
        ]


def test_prometheus_reads_services_alloy_scrapes_without_naming_a_job(
    dashboard: JSON, services: dict[str, JSON], stage5: Stage5
) -> None:
    """Each family the queries read (the service graph's aside) is exposed by exactly one
    of the die-service and postgres_exporter, so no query needs a job; both are scraped
    by Alloy, by their containers' label."""
    assert {DIE_SERVICE_JOB, EXPORTER_JOB} <= alloy_scraped_jobs(services)
    for query in prometheus_queries(dashboard):
        assert not any(
            label == "job" for _, matchers in selectors(query.text) for label, _, _ in matchers
        ), query.panel
        for name in metric_names(query.text) - SERVICE_GRAPH_METRICS:
            jobs = [job for job, exposed in stage5.exposed.items() if name in exposed]
            assert len(jobs) == 1, (query.panel, name, jobs)


def test_every_metric_is_one_a_service_exposes_or_the_service_graph(
    dashboard: JSON, stage5: Stage5
) -> None:
    used = {name for q in prometheus_queries(dashboard) for name in metric_names(q.text)}
    assert (
        not used
        - set(stage5.exposed[DIE_SERVICE_JOB])
        - set(stage5.exposed[EXPORTER_JOB])
        - SERVICE_GRAPH_METRICS
    )
    assert used & SERVICE_GRAPH_METRICS
    assert used & set(stage5.exposed[DIE_SERVICE_JOB]) and used & set(stage5.exposed[EXPORTER_JOB])


def test_postgres_families_are_in_both_exporters_releases(dashboard: JSON) -> None:
    """Debian's 0.11.1 runs natively, v0.20.1 in compose: only what both have, and of
    their labels only `datname` (0.11.1's `server` is not in v0.20.1)."""
    for query in prometheus_queries(dashboard):
        postgres_names = {n for n in metric_names(query.text) if n.startswith("pg_")}
        assert postgres_names <= IN_BOTH_EXPORTERS, query.panel
        if postgres_names:
            labels = {label for _, matchers in selectors(query.text) for label, _, _ in matchers}
            assert (labels | grouping(query.text)) <= {"datname"}, query.panel


def test_labels_and_values_are_the_services(dashboard: JSON, stage5: Stage5) -> None:
    """`datname="dice"`, `state`, `by (query)`, `by (reason)`: each label a query names is
    on the samples it reads, and each value it matches exactly is one really written."""
    exposed_by_name = {
        name: labels for by_job in stage5.exposed.values() for name, labels in by_job.items()
    }
    for query in prometheus_queries(dashboard):
        for name in metric_names(query.text):
            if name in SERVICE_GRAPH_METRICS:
                labels, values = SERVICE_GRAPH_LABELS, None
            else:
                values = exposed_by_name[name]
                labels = set(values)
            assert grouping(query.text) <= labels | {"le"}, (query.panel, name)
            for metric, matchers in selectors(query.text):
                for label, op, value in matchers if metric == name else []:
                    if label in SCRAPE_LABELS:
                        continue
                    assert label in labels, (query.panel, name, label)
                    if op == "=" and values is not None:
                        assert value in values[label], (query.panel, name, label, value)


def test_the_database_edge_is_the_one_the_query_spans_draw(
    dashboard: JSON, services: dict[str, JSON], stage5: Stage5
) -> None:
    """Alloy's servicegraph connector draws a database edge from a CLIENT span alone:
    its service's name is the client, its `db.name` (the connector's default
    `database_name_attribute`, which the config leaves as is) the server. The
    die-service's query spans name the database compose creates."""
    assert "database_name_attribute" not in ALLOY_CONFIG.read_text(encoding="utf-8")
    queried = {
        (span.resource.attributes["service.name"], (span.attributes or {}).get("db.name"))
        for span in stage5.spans
        if span.kind == SpanKind.CLIENT and "db.statement" in (span.attributes or {})
    }
    client = services["die-service"]["environment"]["OTEL_SERVICE_NAME"]
    database = services["postgres"]["environment"]["POSTGRES_DB"]
    assert queried == {(client, database)}
    edges = [
        dict((label, value) for label, _, value in matchers)
        for q in prometheus_queries(dashboard)
        for metric, matchers in selectors(q.text)
        if metric in SERVICE_GRAPH_METRICS
    ]
    assert edges and all(
        edge == {"client": client, "server": database, "connection_type": "database"}
        for edge in edges
    ), edges


def test_every_database_failure_reason_and_pool_state_exists(stage5: Stage5) -> None:
    """At zero from the start, so the panels have a line each before the first."""
    exposed = stage5.exposed[DIE_SERVICE_JOB]
    assert exposed["die_service_db_errors_total"]["reason"] == {"unreachable", "timeout", "error"}
    assert exposed["die_service_db_connections"]["state"] == {"idle", "in_use"}
    assert exposed["die_service_db_query_duration_seconds_bucket"]["query"] == {
        "one_die",
        "all_dice",
    }


# --- Traces and logs: what the die-service really writes when the database fails ---------

_CONDITION = {
    "service": re.compile(r'resource\.service\.name\s*=\s*"([^"]*)"'),
    "attribute": re.compile(r"span\.([\w.]+)\s*!=\s*nil"),
}


def _finds(query: str, spans: list[ReadableSpan], trace_id: str) -> bool:
    """Whether the TraceQL `{a && b}` finds the trace: one of its spans meets every
    condition (a service name, an attribute that exists; another shape fails)."""
    [spanset] = re.fullmatch(r"\{([^{}]*)\}", query.strip()).groups()  # type: ignore[union-attr]
    trace = [s for s in spans if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]
    assert trace, f"no span of trace {trace_id}"

    def meets(span: ReadableSpan, condition: str) -> bool:
        if match := _CONDITION["service"].fullmatch(condition):
            return span.resource.attributes.get("service.name") == match[1]
        match = _CONDITION["attribute"].fullmatch(condition)
        assert match is not None, f"no reader here for {condition!r}"
        return match[1] in (span.attributes or {})

    conditions = [c.strip() for c in spanset.split("&&")]
    return any(all(meets(span, c) for c in conditions) for span in trace)


def test_the_errors_link_finds_the_lookup_the_database_failed(
    dashboard: JSON, stage5: Stage5
) -> None:
    [query] = [
        q.text
        for q in queries(dashboard)
        if q.language == "traceql" and q.panel == "Database Errors by Reason"
    ]
    assert _finds(query, stage5.spans, stage5.failed)
    assert not _finds(query, stage5.spans, stage5.found)


def test_the_unavailable_panel_shows_the_die_services_line_with_its_trace_link(
    dashboard: JSON, stage5: Stage5
) -> None:
    """The query's line filter and `message` are the die-service's line's, and the line
    carries the failed lookup's trace id where the Loki data source's **Open trace**
    link finds it."""
    [target] = panel_by_title(dashboard, "Database Unavailable")["targets"]
    [line_filter] = re.findall(r'\|= "([^"]*)"', target["expr"])
    [message] = re.findall(r'\| message="([^"]*)"', target["expr"])
    lines = [line for line in stage5.log_lines if line_filter in line]
    assert lines, stage5.log_lines
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == [message]
    assert records[0]["level"] == "ERROR" and records[0]["reason"] == "unreachable"
    link = loki_trace_link_pattern().search(lines[0])
    assert link is not None and link[1] == stage5.failed
    found = [json.loads(line) for line in stage5.log_lines if stage5.found in line]
    assert found and all(line_filter not in record["message"] for record in found)


def test_postgresql_writes_the_lines_its_panel_describes(dashboard: JSON, stage5: Stage5) -> None:
    description = panel_by_title(dashboard, "PostgreSQL Server Log")["description"]
    for quoted in ("ready to accept connections", "received fast shutdown request"):
        assert quoted in description and quoted in stage5.postgres_output


# --- What each panel must do ---------------------------------------------------------------


def test_descriptions_quote_the_die_services_database_limit(dashboard: JSON) -> None:
    """The timeout the panels quote is the die-service's default."""
    limit = DieServiceSettings().database_timeout_seconds
    for title in ("Query Duration by Query", "Pool Wait p99", "Database Errors by Reason"):
        quoted = re.findall(r"(\d+(?:\.\d+)?) s\b", panel_by_title(dashboard, title)["description"])
        assert quoted and {float(s) for s in quoted} == {limit}, (title, quoted)


def _has_exemplars(scrape: str, histogram: str) -> bool:
    return any(
        line.startswith(f"{histogram}_bucket{{") and " # {" in line for line in scrape.splitlines()
    )


def test_exemplars_where_the_histogram_has_them(dashboard: JSON, stage5: Stage5) -> None:
    """The query histogram carries the trace id of each query; the pool's wait and
    the service graph's carry none, so their panels do not ask."""
    assert _has_exemplars(stage5.die_service_scrape, "die_service_db_query_duration_seconds")
    assert not _has_exemplars(stage5.die_service_scrape, "die_service_db_pool_wait_seconds")
    asked = {
        "Query Duration by Query": True,
        "Pool Wait p99": False,
        "Call Duration die-service → dice": False,
    }
    for title, exemplar in asked.items():
        targets = panel_by_title(dashboard, title)["targets"]
        assert targets and all(t.get("exemplar") is exemplar for t in targets), title
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert any(d["name"] == "trace_id" and d["datasourceUid"] == "tempo" for d in destinations)


def test_latency_quantiles(dashboard: JSON) -> None:
    def quantiles(title: str) -> list[tuple[str, set[str]]]:
        targets = panel_by_title(dashboard, title)["targets"]
        return [
            (re.findall(r"histogram_quantile\(([\d.]+),", t["expr"])[0], grouping(t["expr"]))
            for t in targets
        ]

    by_query = {"le", "query"}
    assert quantiles("Query Duration by Query") == [("0.5", by_query), ("0.99", by_query)]
    assert quantiles("Pool Wait p99") == [("0.99", {"le"})]
    assert quantiles("Call Duration die-service → dice") == [("0.5", {"le"}), ("0.99", {"le"})]


def test_per_reason_and_per_state_lines(dashboard: JSON) -> None:
    expected = {
        "Database Errors by Reason": [({"reason"}, "{{reason}}")],
        "Pool Connections": [({"state"}, "{{state}}"), (set(), "max")],
    }
    for title, lines in expected.items():
        targets = panel_by_title(dashboard, title)["targets"]
        assert [(grouping(t["expr"]), t["legendFormat"]) for t in targets] == lines, title


def test_postgresql_up_reads_pg_up_as_down_or_up(dashboard: JSON, stage5: Stage5) -> None:
    panel = panel_by_title(dashboard, "PostgreSQL Up")
    [target] = panel["targets"]
    assert metric_names(target["expr"]) == {"pg_up"} and target["instant"]
    [mapping] = panel["fieldConfig"]["defaults"]["mappings"]
    assert {value: m["text"] for value, m in mapping["options"].items()} == {
        "0": "Down",
        "1": "Up",
    }


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    windows = [range_windows(q.text) for q in prometheus_queries(dashboard)]
    assert all(window <= {"$__rate_interval"} for window in windows), windows
    assert sum(1 for window in windows if window) >= 6


def test_queries_stay_valid_once_grafana_fills_them(dashboard: JSON) -> None:
    """No variable but Grafana's own: a query naming an unknown `$name` would raise."""
    for query in queries(dashboard):
        substitute(query.text, QueryContext(variables=dashboard_variables(dashboard)))


def test_the_exporters_text_format_is_read_by_the_names_prometheus_stores() -> None:
    """A counter of the older text format keeps its name: no `_total` added."""
    text = (
        "# TYPE pg_stat_database_xact_commit counter\n"
        'pg_stat_database_xact_commit{datid="5",datname="dice"} 4\n'
        "pg_up 1\n"
    )
    exposed = exposed_labels(text, text_format=True)
    assert {name: dict(labels) for name, labels in exposed.items()} == {
        "pg_stat_database_xact_commit": {"datid": {"5"}, "datname": {"dice"}},
        "pg_up": {},
    }
