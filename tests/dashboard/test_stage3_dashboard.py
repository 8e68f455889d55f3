"""The "Dice Roller - Stage 3" dashboard: generated, well formed, and asking only for
what stage 3 really produces.

Stage 3's three services are built in process and wired as compose wires them: each
reads its upstream's URL from compose's environment (`DICE_DIE_SERVICE_URL`,
`FRONTEND_DICE_ROLLER_URL`...), and an httpx transport hands each call to the app of
that host, no network. They serve the page, a roll through the frontend, an unknown
die, and a roll while the die-service is down; then their metric names and labels,
and their spans, are what the queries are checked against. The service graph's names
are the ones Alloy's servicegraph connector writes. Every query goes through
Grafana's own grammars, and the stack files (compose with stages/stage3.yml merged
over it, Alloy, the provisioned data sources) are read for the names the queries
rely on.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import dice_roller.app
import dice_roller.catalogue
import dice_roller.settings
import die_service.app
import frontend.app
import frontend.dice
import frontend.settings
import frontend.upstream
import httpx
import pytest
from die_service.dice import SHIPPED_DICE
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sandbox_telemetry import create_tracer_provider
from sandbox_telemetry.upstream import Upstream

from tests.support.dashboard_model import (
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
    compose_services,
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
from tests.support.prometheus import JOB as DICE_ROLLER_JOB

# Rows and panels, written out apart from the generator: (row, [(panel, type)]).
EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Dice",
        [
            ("Rolls by Die", "timeseries"),
            ("Roll Duration p99 by Die", "timeseries"),
            ("Error Ratio by Die", "timeseries"),
        ],
    ),
    (
        "Dice-Roller → Die-Service",
        [
            ("Die Lookups by Outcome", "timeseries"),
            ("Die-Service Lookup Duration", "timeseries"),
            ("Die-Service Failures by Reason", "timeseries"),
        ],
    ),
    (
        "Between the Services",
        [("Service Graph", "nodeGraph"), ("Calls Between Services", "timeseries")],
    ),
    (
        "Traces and Logs",
        [("Rolls That Asked the Die-Service", "table"), ("Logs of One Trace", "logs")],
    ),
]
SERVICES = ("frontend", "dice-roller", "die-service")  # compose's names
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard(STAGE3_DASHBOARD_PATH)


@pytest.fixture(scope="module")
def services() -> dict[str, JSON]:
    return compose_services(SERVICES, stage=3)


# --- Stage 3 in process -------------------------------------------------------------------


class Network:
    """Compose's network in one process: a request to `http://HOST:port` goes to the app
    serving HOST; a host that is down, or unknown, refuses the connection."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.ASGITransport] = {}
        self.down: set[str] = set()

    def serve(self, host: str, app: FastAPI) -> None:
        self.hosts[host] = httpx.ASGITransport(app=app)

    def link(self) -> httpx.AsyncBaseTransport:
        """A transport onto the network for one client alone: OpenTelemetry instruments a
        client by wrapping its transport, so a shared one would trace each call once per
        client sharing it."""
        return _Link(self)

    def upstream(
        self,
        name: str,
        base_url: str,
        timeout_seconds: float,
        tracer_provider: TracerProvider,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstream:
        """`Upstream` as the services create it, on a link of its own."""
        return Upstream(name, base_url, timeout_seconds, tracer_provider, self.link())


class _Link(httpx.AsyncBaseTransport):
    def __init__(self, network: Network) -> None:
        self.network = network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host, network = request.url.host, self.network
        if host in network.down or host not in network.hosts:
            raise httpx.ConnectError(f"{host}: connection refused", request=request)
        return await network.hosts[host].handle_async_request(request)


@dataclass
class Stage3:
    """What stage 3's services exposed and traced after the fixture's requests."""

    exposed: dict[str, Exposed]
    """By the Prometheus job that scrapes each service."""
    spans: list[ReadableSpan]
    rolled: str
    """The trace id of the roll through the frontend."""
    failed: str
    """The trace id of the roll the die-service, down, left without a die."""


def _provider(exporter: InMemorySpanExporter, service_name: str, version: str) -> TracerProvider:
    """The service's own tracer provider (its own `service.name`), exporting to memory."""
    provider = create_tracer_provider(service_name, version, {"OTEL_TRACES_EXPORTER": "none"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _urls(service: JSON) -> dict[str, str]:
    """The upstream URLs compose gives a service (its `*_URL` variables)."""
    return {k: str(v) for k, v in service["environment"].items() if k.endswith("_URL")}


def _trace_id(response: httpx.Response) -> str:
    return response.headers["traceresponse"].split("-")[1]


async def _run_stage3(services: dict[str, JSON]) -> Stage3:
    exporter = InMemorySpanExporter()
    network = Network()
    die_service_app = die_service.app.create_app(
        tracer_provider=_provider(exporter, die_service.SERVICE_NAME, die_service.__version__)
    )
    roller_settings = dice_roller.settings.load_settings(_urls(services["dice-roller"]))
    assert roller_settings.die_service_url is not None, "the dice-roller at stage 1"
    with ExitStack() as patches:  # each client the services create gets a link of its own
        for module in (dice_roller.catalogue, frontend.upstream, frontend.dice):
            patches.enter_context(patch.object(module, "Upstream", network.upstream))
        roller = dice_roller.app.create_app(
            roller_settings,
            tracer_provider=_provider(exporter, dice_roller.SERVICE_NAME, dice_roller.__version__),
        )
        page = frontend.app.create_app(
            frontend.settings.load_settings(_urls(services["frontend"])),
            tracer_provider=_provider(exporter, frontend.SERVICE_NAME, frontend.__version__),
        )
    apps = {"die-service": die_service_app, "dice-roller": roller, "frontend": page}
    for host, app in apps.items():
        network.serve(host, app)
    jobs = {"die-service": "die-service", "dice-roller": DICE_ROLLER_JOB, "frontend": "frontend"}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))

        async def get(host: str, path: str, **params: str) -> httpx.Response:
            client = httpx.AsyncClient(transport=network.link(), base_url=f"http://{host}:8000")
            async with client:
                return await client.get(path, params=params, headers={"Accept": OPENMETRICS})

        assert (await get("frontend", "/")).status_code == 200  # lists the die-service's dice
        rolled = await get("frontend", "/api/roll", die="d4")  # d4 never fails
        assert rolled.status_code == 200, rolled.text
        assert (await get("dice-roller", "/roll", die="d7")).status_code == 422  # no such die
        network.down.add("die-service")
        failed = await get("dice-roller", "/roll", die="d4")
        assert failed.status_code == 503, failed.text
        network.down.clear()
        exposed = {}
        for host, job in jobs.items():
            scraped = await get(host, "/metrics")
            assert scraped.headers["content-type"].startswith("application/openmetrics-text")
            exposed[job] = exposed_labels(scraped.text)
    return Stage3(
        exposed, list(exporter.get_finished_spans()), _trace_id(rolled), _trace_id(failed)
    )


@pytest.fixture(scope="module")
def stage3(services: dict[str, JSON]) -> Stage3:
    return asyncio.run(_run_stage3(services))


# --- Generated ---------------------------------------------------------------------------


def test_committed_json_is_the_generated_one() -> None:
    committed = STAGE3_DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render_stage3(), (
        "grafana-dashboards/stage3-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_one_run_writes_and_checks_the_three_dashboards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    committed = {
        "DASHBOARD_PATH": DASHBOARD_PATH,
        "STAGE2_DASHBOARD_PATH": STAGE2_DASHBOARD_PATH,
        "STAGE3_DASHBOARD_PATH": STAGE3_DASHBOARD_PATH,
    }
    for name, path in committed.items():
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        monkeypatch.setattr(generator, name, tmp_path / path.name)
    stage3 = tmp_path / STAGE3_DASHBOARD_PATH.name
    stage3.write_text(stage3.read_text(encoding="utf-8").replace("Stage 3", "X"))
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{stage3.name} is out of date" in out
    assert f"{DASHBOARD_PATH.name} is up to date" in out
    assert f"{STAGE2_DASHBOARD_PATH.name} is up to date" in out
    stage3.unlink()  # a missing file is written too
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    for path in committed.values():
        assert (tmp_path / path.name).read_text(encoding="utf-8") == path.read_text("utf-8")


# --- Shape -------------------------------------------------------------------------------


def test_identity(dashboard: JSON) -> None:
    stage2 = load_dashboard(STAGE2_DASHBOARD_PATH)
    assert dashboard["title"] == "Dice Roller - Stage 3"
    assert dashboard["uid"] == "dice-roller-stage3"
    assert {"stage3", "die-service"} <= set(dashboard["tags"])
    assert set(stage2["tags"]) - {"stage2"} <= set(dashboard["tags"])
    assert dashboard["schemaVersion"] == stage2["schemaVersion"]


def test_it_links_to_the_earlier_stages_dashboards(dashboard: JSON) -> None:
    earlier = [load_dashboard(path) for path in (DASHBOARD_PATH, STAGE2_DASHBOARD_PATH)]
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
    assert STAGE3_DASHBOARD_PATH.parent == DASHBOARD_PATH.parent
    uids = provisioned_dashboard_uids()
    assert len(uids) == len(set(uids))
    assert {"dice-roller-stage1", "dice-roller-stage2", "dice-roller-stage3"} <= set(uids)


def test_descriptions_give_each_die_its_catalogue_figures(dashboard: JSON) -> None:
    """The delays and failure rates the panels quote are the die-service's own."""
    names = "|".join(die.name for die in SHIPPED_DICE)
    duration = panel_by_title(dashboard, "Roll Duration p99 by Die")["description"]
    delays = re.findall(rf"\b({names}) (\d+(?:\.\d+)?) s\b", duration)
    assert {name: float(s) for name, s in delays} == {
        die.name: die.max_delay_seconds for die in SHIPPED_DICE
    }
    ratio = panel_by_title(dashboard, "Error Ratio by Die")["description"]
    rates = re.findall(rf"\b({names}) (\d+(?:\.\d+)?) %", ratio)
    assert {name: float(p) for name, p in rates} == {
        die.name: round(die.failure_rate * 100, 3) for die in SHIPPED_DICE
    }


def test_the_service_graph_names_stage3s_calls(dashboard: JSON) -> None:
    """Shared with stage 2 but for its first sentence, which names the die-service here."""
    description = panel_by_title(dashboard, "Service Graph")["description"]
    stage2 = panel_by_title(load_dashboard(STAGE2_DASHBOARD_PATH), "Service Graph")
    assert "`die-service`" in description and "`die-service`" not in stage2["description"]
    assert description.endswith(stage2["description"].split("`dice-roller`.")[1])


# --- Queries: grammar, and names the stack really uses -----------------------------------


@pytest.mark.parametrize("trace_id", ["", SAMPLE_TRACE_ID], ids=["empty-box", "one-trace"])
def test_every_query_parses(dashboard: JSON, trace_id: str) -> None:
    require_grammars()
    assert {query.language for query in queries(dashboard)} == {"promql", "logql", "traceql"}
    variables = {**dashboard_variables(dashboard), "trace_id": trace_id}
    assert syntax_errors(dashboard, variables) == []


def test_logs_select_the_three_services_by_labels_alloy_attaches(
    dashboard: JSON, services: dict[str, JSON]
) -> None:
    require_grammars()
    containers = {service["container_name"] for service in services.values()}
    log_queries = [q for q in queries(dashboard) if q.language == "logql"]
    assert log_queries
    context = QueryContext(variables=dashboard_variables(dashboard))
    results = parse_batch([("logql", substitute(q.text, context)) for q in log_queries])
    for query, result in zip(log_queries, results, strict=True):
        matchers = [m for selector in result.selectors for m in selector]
        assert matchers and {m.label for m in matchers} <= alloy_log_labels(), query.panel
        [names] = [m for m in matchers if m.label == "container_name"]
        assert names.op == "=~" and set(names.value.split("|")) == containers, names


def test_prometheus_jobs_are_the_ones_alloy_scrapes(
    dashboard: JSON, services: dict[str, JSON]
) -> None:
    """Only the HTTP histogram, which every service exposes, needs its job: the
    die-service's, named by Alloy after its compose service."""
    jobs = {
        value
        for q in prometheus_queries(dashboard)
        for _, matchers in selectors(q.text)
        for label, _, value in matchers
        if label == "job"
    }
    assert jobs == {"die-service"} and jobs <= alloy_scraped_jobs(services)


# --- Traces: the services as they name themselves, and the spans they really write -------

_SPANSET = re.compile(r"\{([^}]*)\}")
_CONDITIONS = {
    "service": re.compile(r'resource\.service\.name\s*=\s*"([^"]*)"'),
    "kind": re.compile(r"kind\s*=\s*(server|client|internal)"),
    "attribute": re.compile(r"span\.([\w.]+)\s*!=\s*nil"),
}
_KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}


def _traceql(dashboard: JSON) -> dict[str, str]:
    """Each TraceQL query by where it is: `panel / target A` or `panel / link '...'`."""
    found = {f"{q.panel} / {q.source}": q.text for q in queries(dashboard)}
    return {where: text for where, text in found.items() if "resource." in text}


def _matches(span: ReadableSpan, spanset: str) -> bool:
    """Whether `span` meets every condition of a spanset of the shapes the dashboard
    uses (service name, kind, an attribute that exists); another shape fails the test."""
    conditions = [c.strip() for c in spanset.split("&&")]
    verdicts = []
    for condition in conditions:
        kind, match = next(
            ((k, m) for k, p in _CONDITIONS.items() if (m := p.fullmatch(condition))),
            (None, None),
        )
        assert match is not None, f"no reader here for {condition!r}"
        if kind == "service":
            verdicts.append(span.resource.attributes.get("service.name") == match[1])
        elif kind == "kind":
            verdicts.append(span.kind == _KINDS[match[1]])
        else:
            verdicts.append(match[1] in (span.attributes or {}))
    return all(verdicts)


def _finds(query: str, spans: list[ReadableSpan], trace_id: str) -> bool:
    """Whether the TraceQL `{...} && {...}` finds the trace: each spanset a span of it."""
    assert not _SPANSET.sub("", query).replace("&&", "").strip(), query
    trace = [s for s in spans if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]
    assert trace, f"no span of trace {trace_id}"
    return all(any(_matches(s, spanset) for s in trace) for spanset in _SPANSET.findall(query))


def test_trace_queries_name_the_services_as_they_name_themselves(
    dashboard: JSON, services: dict[str, JSON], stage3: Stage3
) -> None:
    """Each service name a query uses is one compose gives (`OTEL_SERVICE_NAME`) and the
    service gives itself (its spans' resource); the rolls table names both ends of the
    new hop."""
    composed = {s["environment"]["OTEL_SERVICE_NAME"] for s in services.values()}
    traced = {span.resource.attributes["service.name"] for span in stage3.spans}
    assert composed == traced
    named = {
        where: set(_CONDITIONS["service"].findall(text))
        for where, text in _traceql(dashboard).items()
    }
    assert named and all(names <= composed for names in named.values()), named
    assert named["Rolls That Asked the Die-Service / target A"] == {"dice-roller", "die-service"}


def test_the_rolls_table_finds_a_roll_that_asked_the_die_service(
    dashboard: JSON, stage3: Stage3
) -> None:
    [target] = panel_by_title(dashboard, "Rolls That Asked the Die-Service")["targets"]
    assert target["queryType"] == "traceql" and target["tableType"] == "traces"
    assert _finds(target["query"], stage3.spans, stage3.rolled)
    assert not _finds(target["query"], stage3.spans, stage3.failed)  # no die-service span


def test_the_failures_link_finds_a_roll_the_die_service_left_without_a_die(
    dashboard: JSON, stage3: Stage3
) -> None:
    """The service graph cannot show these rolls; their traces can."""
    [query] = [
        text
        for where, text in _traceql(dashboard).items()
        if where.startswith("Die-Service Failures by Reason / link")
    ]
    assert _finds(query, stage3.spans, stage3.failed)
    assert not _finds(query, stage3.spans, stage3.rolled)


# --- PromQL names against the real services ----------------------------------------------


def _exposure(stage3: Stage3, query: str, name: str) -> Exposed:
    """What the service a query reads `name` from exposes: the job's it names, or the one
    service exposing `name` (a family two services expose must be asked with its job)."""
    jobs = {
        value
        for metric, matchers in selectors(query)
        if metric == name
        for label, _, value in matchers
        if label == "job"
    }
    if not jobs:
        jobs = {job for job, exposed in stage3.exposed.items() if name in exposed}
    assert len(jobs) == 1, f"{name}: read from {sorted(jobs) or 'no service'}"
    return stage3.exposed[jobs.pop()]


def test_every_metric_is_one_a_service_exposes_or_the_service_graph(
    dashboard: JSON, stage3: Stage3
) -> None:
    used = {name for q in prometheus_queries(dashboard) for name in metric_names(q.text)}
    exposed = {name for by_job in stage3.exposed.values() for name in by_job}
    assert not used - exposed - SERVICE_GRAPH_METRICS
    assert used & SERVICE_GRAPH_METRICS and used - SERVICE_GRAPH_METRICS


def test_labels_and_values_are_the_services(dashboard: JSON, stage3: Stage3) -> None:
    """`handler="/dice/{name}"`, `result="error"`, `by (reason)`: each label a query
    names is on the samples of the service it reads, and each value it matches exactly
    is one that service really wrote."""
    for query in prometheus_queries(dashboard):
        for name in metric_names(query.text):
            if name in SERVICE_GRAPH_METRICS:
                labels = SERVICE_GRAPH_LABELS
                exposed: Exposed = {}
            else:
                exposed = _exposure(stage3, query.text, name)
                labels = set(exposed[name])
            assert grouping(query.text) <= labels | {"le"}, (query.panel, name)
            for metric, matchers in selectors(query.text):
                for label, op, value in matchers if metric == name else []:
                    if label in SCRAPE_LABELS:
                        continue
                    assert label in labels, (query.panel, name, label)
                    if op == "=" and exposed:
                        assert value in exposed[name][label], (query.panel, name, label, value)


def test_die_service_failures_count_every_reason(stage3: Stage3) -> None:
    """At zero from the start, so the panel has a line per reason before the first."""
    errors = stage3.exposed[DICE_ROLLER_JOB]["dice_die_service_errors_total"]
    assert errors["reason"] == {"timeout", "unreachable", "error_status", "bad_answer"}


# --- What each panel must do ---------------------------------------------------------------


def test_latency_panels_carry_exemplars_to_tempo(dashboard: JSON) -> None:
    for title in ("Roll Duration p99 by Die", "Die-Service Lookup Duration"):
        targets = panel_by_title(dashboard, title)["targets"]
        assert targets and all(t.get("exemplar") for t in targets), title
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert any(d["name"] == "trace_id" and d["datasourceUid"] == "tempo" for d in destinations)


def test_latency_quantiles(dashboard: JSON) -> None:
    def quantiles(title: str) -> list[str]:
        targets = panel_by_title(dashboard, title)["targets"]
        return [re.findall(r"histogram_quantile\(([\d.]+),", t["expr"])[0] for t in targets]

    assert quantiles("Roll Duration p99 by Die") == ["0.99"]
    assert quantiles("Die-Service Lookup Duration") == ["0.5", "0.99"]
    [by_die] = panel_by_title(dashboard, "Roll Duration p99 by Die")["targets"]
    assert grouping(by_die["expr"]) == {"le", "die_type"}


def test_per_die_and_per_reason_lines(dashboard: JSON) -> None:
    expected = {
        "Rolls by Die": {"die_type"},
        "Error Ratio by Die": {"die_type"},
        "Die Lookups by Outcome": {"outcome"},
        "Die-Service Failures by Reason": {"reason"},
    }
    for title, labels in expected.items():
        for target in panel_by_title(dashboard, title)["targets"]:
            assert grouping(target["expr"]) == labels, title
            assert target["legendFormat"] == "".join(f"{{{{{label}}}}}" for label in labels)


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    for query in prometheus_queries(dashboard):
        assert range_windows(query.text) == {"$__rate_interval"}, query.panel


def test_trace_logs_follow_the_trace_id_box(dashboard: JSON) -> None:
    """Empty, the box keeps every line (`|= ""`); filled, only that trace's lines."""
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "textbox" and variable["name"] == "trace_id"
    assert variable["current"]["value"] == ""
    [target] = panel_by_title(dashboard, "Logs of One Trace")["targets"]
    assert '|= "$trace_id"' in target["expr"]
    assert '|= ""' in substitute(target["expr"], QueryContext(variables={"trace_id": ""}))
