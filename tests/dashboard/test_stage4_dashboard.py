"""The "Dice Roller - Stage 4" dashboard: generated, well formed, and asking only for
what stage 4 really produces.

Stage 4's services run as users run them: the die-service, the dice-roller at stage 3
in front of it (`DICE_DIE_SERVICE_URL`), the frontend in front of that, the dice-roller
and the die-service exporting their spans to one OTLP receiver. The dice-roller reads a
copy of the shipped flag file in which every roll waits 1.5 s more (so a scrape
catches a batch under way) and the risky die fails one roll in two (so a batch has
failures). The page's "Roll them all" asks five d4s through the frontend while the
dice-roller's /metrics is read; a batch of twenty risky dice and one single d4 follow.
Then the names, labels and exemplars of the three scrapes, the spans of the batch and
of the single roll, and the dice-roller's log lines are what the queries are checked
against. Every query goes through Grafana's own grammars.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dashboard_model import (
    DASHBOARD_PATH,
    HOST_DASHBOARD_PATH,
    JSON,
    ROOT,
    SCRAPE_LABELS,
    STAGE2_DASHBOARD_PATH,
    STAGE3_DASHBOARD_PATH,
    STAGE4_DASHBOARD_PATH,
    STAGE5_DASHBOARD_PATH,
    Exposed,
    alloy_log_labels,
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
from tests.support.die_service import running_die_service
from tests.support.flags import copy_shipped
from tests.support.frontend import running_frontend
from tests.support.grafana_macros import QueryContext, dashboard_variables, substitute
from tests.support.grammars import parse_batch, require_grammars
from tests.support.metrics import OPENMETRICS
from tests.support.otlp import ReceivedSpan, otlp_receiver, spans_of
from tests.support.prometheus import JOB as DICE_ROLLER_JOB
from tests.support.service import running_service, trace_of

# Rows and panels, written out apart from the generator: (row, [(panel, type)]).
EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Batches",
        [
            ("Batches per Second", "timeseries"),
            ("Batch Size", "timeseries"),
            ("Rolls in Flight", "timeseries"),
        ],
    ),
    (
        "A Batch Against Single Rolls",
        [
            ("Batch vs Single Roll Duration", "timeseries"),
            ("Rolls by Die", "timeseries"),
            ("Failed Rolls in Batches", "timeseries"),
        ],
    ),
    (
        "Traces and Logs",
        [("Batches in Tempo", "table"), ("Batch Rolled Logs", "logs")],
    ),
]
SERVICES = ("frontend", "dice-roller", "die-service")  # compose's names
JOBS = {"dice-roller": DICE_ROLLER_JOB, "frontend": "frontend", "die-service": "die-service"}
PAGE_BATCH = 5  # the page's "Roll them all": five d4s, which never fail
RISKY_BATCH = 20  # the most one batch rolls; half fail by the flag file
SERVER_KIND = 2  # opentelemetry.proto...Span.SpanKind
CEILING_SECONDS = 15.0
"""How long a request may take: every roll waits 1.5 s more here, far below it."""


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard(STAGE4_DASHBOARD_PATH)


@pytest.fixture(scope="module")
def services() -> dict[str, JSON]:
    return compose_services(SERVICES, stage=3)  # stage 4 runs stage 3's stack


# --- Stage 4 for real -------------------------------------------------------------------


@dataclass
class Stage4:
    """What the services exposed, traced and logged after the fixture's requests."""

    exposed: dict[str, Exposed]
    """By the Prometheus job that scrapes each service."""
    roller_scrape: str
    """The dice-roller's scrape, as OpenMetrics text (exemplars included)."""
    peak_in_flight: float
    """The most `dice_rolls_in_flight` read while the page's batch ran."""
    batch: str
    """The trace id of the risky batch."""
    batch_body: dict[str, Any]
    single: str
    """The trace id of the single roll."""
    spans: list[ReceivedSpan]
    log_lines: list[str]
    """The dice-roller's JSON lines, as it printed them."""


def _scrape(url: str) -> str:
    answer = httpx.get(f"{url}/metrics", headers={"Accept": OPENMETRICS}, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    return answer.text


def _in_flight(url: str) -> float:
    samples = exposed_text_values(_scrape(url), "dice_rolls_in_flight")
    return max(samples, default=0.0)


def exposed_text_values(text: str, name: str) -> list[float]:
    """The values of the samples called `name` in a scrape."""
    return [float(m[1]) for m in re.finditer(rf"^{name}(?:\{{[^}}]*\}})? (\S+)", text, re.M)]


@pytest.fixture(scope="module")
def stage4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage4]:
    flags = copy_shipped(
        tmp_path_factory.mktemp("stage4-dashboard-flags"),
        {"risky-failure-rate": "half", "extra-latency-seconds": "slow"},
    )
    with otlp_receiver() as receiver:
        fast = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
        with running_die_service(receiver.service_env(**fast)) as die_service:
            env = receiver.service_env(
                DICE_DIE_SERVICE_URL=die_service.url,
                DICE_DIE_SERVICE_TIMEOUT_SECONDS="10",
                DICE_FLAGS_FILE=str(flags),
                **fast,
            )
            with (
                running_service(env) as roller,
                running_frontend(roller.url, {"FRONTEND_DIE_SERVICE_URL": die_service.url}) as page,
            ):
                answers: list[httpx.Response] = []
                clicked = threading.Thread(
                    target=lambda: answers.append(
                        httpx.get(
                            f"{page.url}/api/roll-async",
                            params={"die": "d4", "times": str(PAGE_BATCH)},
                            timeout=CEILING_SECONDS,
                        )
                    )
                )
                clicked.start()
                peak = 0.0
                while clicked.is_alive():
                    peak = max(peak, _in_flight(roller.url))
                clicked.join()
                assert answers and answers[0].status_code == 200, answers
                batch = httpx.get(
                    f"{roller.url}/roll-async",
                    params={"die": "risky", "times": str(RISKY_BATCH)},
                    timeout=CEILING_SECONDS,
                )
                assert batch.status_code == 200, batch.text
                single = httpx.get(
                    f"{roller.url}/roll", params={"die": "d4"}, timeout=CEILING_SECONDS
                )
                assert single.status_code == 200, single.text
                scrapes = {
                    "dice-roller": _scrape(roller.url),
                    "frontend": _scrape(page.url),
                    "die-service": _scrape(die_service.url),
                }
                batch_id, single_id = trace_of(batch.headers)[0], trace_of(single.headers)[0]
                # The server span, the lookup's two spans, and one span per roll.
                spans = spans_of(receiver, batch_id, 3 + RISKY_BATCH)
                spans += spans_of(receiver, single_id, 3)
                lines = roller.log_lines()
    yield Stage4(
        exposed={JOBS[name]: exposed_labels(text) for name, text in scrapes.items()},
        roller_scrape=scrapes["dice-roller"],
        peak_in_flight=peak,
        batch=batch_id,
        batch_body=batch.json(),
        single=single_id,
        spans=spans,
        log_lines=lines,
    )


# --- Generated ---------------------------------------------------------------------------


def test_committed_json_is_the_generated_one() -> None:
    committed = STAGE4_DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render_stage4(), (
        "grafana-dashboards/stage4-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_one_run_writes_and_checks_it_beside_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    committed = {
        "DASHBOARD_PATH": DASHBOARD_PATH,
        "STAGE2_DASHBOARD_PATH": STAGE2_DASHBOARD_PATH,
        "STAGE3_DASHBOARD_PATH": STAGE3_DASHBOARD_PATH,
        "STAGE4_DASHBOARD_PATH": STAGE4_DASHBOARD_PATH,
        "STAGE5_DASHBOARD_PATH": STAGE5_DASHBOARD_PATH,
        "HOST_DASHBOARD_PATH": HOST_DASHBOARD_PATH,
    }
    for name, path in committed.items():
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        monkeypatch.setattr(generator, name, tmp_path / path.name)
    stage4 = tmp_path / STAGE4_DASHBOARD_PATH.name
    stage4.write_text(stage4.read_text(encoding="utf-8").replace("Stage 4", "X"))
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{stage4.name} is out of date" in out
    for path in committed.values():
        if path != STAGE4_DASHBOARD_PATH:
            assert f"{path.name} is up to date" in out
    stage4.unlink()  # a missing file is written too
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    for path in committed.values():
        assert (tmp_path / path.name).read_text(encoding="utf-8") == path.read_text("utf-8")


# --- Shape -------------------------------------------------------------------------------


def test_identity(dashboard: JSON) -> None:
    stage3 = load_dashboard(STAGE3_DASHBOARD_PATH)
    assert dashboard["title"] == "Dice Roller - Stage 4"
    assert dashboard["uid"] == "dice-roller-stage4"
    assert "stage4" in dashboard["tags"] and "stage3" not in dashboard["tags"]
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
    assert STAGE4_DASHBOARD_PATH.parent == DASHBOARD_PATH.parent
    uids = provisioned_dashboard_uids()
    assert len(uids) == len(set(uids))
    assert {f"dice-roller-stage{n}" for n in (1, 2, 3, 4, 5)} <= set(uids)


def test_the_stages_guide_points_at_it(dashboard: JSON) -> None:
    text = (ROOT / "docs" / "stages.md").read_text(encoding="utf-8")
    stage4 = text[text.index("## Stage 4") : text.index("## Stage 5")]
    look_at = stage4[stage4.index("**Look at:**") :]
    assert f'- *A dashboard:* "{dashboard["title"]}"' in look_at


# --- Queries: grammar, and names the stack really uses -----------------------------------


def test_every_query_parses(dashboard: JSON) -> None:
    require_grammars()
    assert {query.language for query in queries(dashboard)} == {"promql", "logql", "traceql"}
    assert syntax_errors(dashboard, dashboard_variables(dashboard)) == []


def test_logs_select_the_dice_roller_by_labels_alloy_attaches(
    dashboard: JSON, services: dict[str, JSON]
) -> None:
    require_grammars()
    log_queries = [q for q in queries(dashboard) if q.language == "logql"]
    assert sorted(q.panel for q in log_queries) == ["Batch Rolled Logs", "Failed Rolls in Batches"]
    context = QueryContext(variables=dashboard_variables(dashboard))
    results = parse_batch([("logql", substitute(q.text, context)) for q in log_queries])
    for query, result in zip(log_queries, results, strict=True):
        matchers = [m for selector in result.selectors for m in selector]
        assert {m.label for m in matchers} <= alloy_log_labels(), query.panel
        assert [(m.label, m.op, m.value) for m in matchers] == [
            ("container_name", "=", services["dice-roller"]["container_name"])
        ], query.panel


def _handlers(matchers: list[tuple[str, str, str]]) -> set[str]:
    """The `handler` values a selector matches: its exact value, or its alternatives."""
    values = {value for label, _, value in matchers if label == "handler"}
    return {part for value in values for part in value.split("|")}


def test_prometheus_reads_the_dice_roller_without_naming_a_job(
    dashboard: JSON, stage4: Stage4
) -> None:
    """Its batch families are the dice-roller's alone; the HTTP families every service
    exposes are selected by routes only the dice-roller serves (the page's batch is
    `/api/roll-async`), so no query needs the job Prometheus gives the dice-roller."""
    roller = stage4.exposed[DICE_ROLLER_JOB]
    others = [exposed for job, exposed in stage4.exposed.items() if job != DICE_ROLLER_JOB]
    for query in prometheus_queries(dashboard):
        for _, matchers in selectors(query.text):
            assert "job" not in {label for label, _, _ in matchers}, query.panel
        for name in metric_names(query.text):
            assert name in roller, (query.panel, name)
            shared = [exposed[name] for exposed in others if name in exposed]
            if not shared:
                continue
            routes = [_handlers(m) for metric, m in selectors(query.text) if metric == name]
            assert routes, (query.panel, name)
            for handlers in routes:
                assert handlers and handlers <= roller[name]["handler"], (query.panel, handlers)
                assert not any(handlers & labels["handler"] for labels in shared), query.panel


def test_labels_and_values_are_the_dice_rollers(dashboard: JSON, stage4: Stage4) -> None:
    """`by (die_type)`, `by (handler)`, `by (status)`, `handler="/roll-async"`: each label
    a query names is on the samples it reads, each value it matches one really written."""
    roller = stage4.exposed[DICE_ROLLER_JOB]
    for query in prometheus_queries(dashboard):
        for name in metric_names(query.text):
            labels = set(roller[name])
            assert grouping(query.text) <= labels | {"le"}, (query.panel, name)
            for metric, matchers in selectors(query.text):
                for label, op, value in matchers if metric == name else []:
                    assert label in labels and label not in SCRAPE_LABELS, (query.panel, label)
                    matched = value.split("|") if op == "=~" else [value]
                    assert set(matched) <= roller[name][label], (query.panel, label, value)


def test_exemplars_where_the_histograms_have_them(dashboard: JSON, stage4: Stage4) -> None:
    """A batch's size and its request's duration carry the batch's trace id."""
    for histogram, labels in (
        ("dice_batch_size", ""),
        ("http_request_duration_seconds", 'handler="/roll-async"'),
    ):
        bucket = re.compile(rf"^{histogram}_bucket\{{[^}}]*{labels}[^}}]*\}} \S+ # \{{", re.M)
        assert bucket.search(stage4.roller_scrape), histogram
    for title in ("Batch Size", "Batch vs Single Roll Duration"):
        quantile_targets = [
            t for t in panel_by_title(dashboard, title)["targets"] if "quantile" in t["expr"]
        ]
        assert quantile_targets and all(t.get("exemplar") for t in quantile_targets), title
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert any(d["name"] == "trace_id" and d["datasourceUid"] == "tempo" for d in destinations)


def test_rates_follow_the_zoom(dashboard: JSON) -> None:
    windows = [range_windows(q.text) for q in prometheus_queries(dashboard)]
    assert all(window == {"$__rate_interval"} for window in windows), windows
    [failed] = panel_by_title(dashboard, "Failed Rolls in Batches")["targets"]
    assert range_windows(failed["expr"]) == {"$__auto"}  # Loki's step


def test_queries_stay_valid_once_grafana_fills_them(dashboard: JSON) -> None:
    """No variable but Grafana's own: a query naming an unknown `$name` would raise."""
    for query in queries(dashboard):
        substitute(query.text, QueryContext(variables=dashboard_variables(dashboard)))


# --- What each panel must show -------------------------------------------------------------


def _quantiles(dashboard: JSON, title: str) -> list[tuple[str, set[str], str]]:
    return [
        (q[0], grouping(t["expr"]), t["legendFormat"])
        for t in panel_by_title(dashboard, title)["targets"]
        if (q := re.findall(r"histogram_quantile\(([\d.]+),", t["expr"]))
    ]


def test_batch_size_draws_p50_p99_and_the_exact_mean(dashboard: JSON, stage4: Stage4) -> None:
    targets = panel_by_title(dashboard, "Batch Size")["targets"]
    assert _quantiles(dashboard, "Batch Size") == [("0.5", {"le"}, "p50"), ("0.99", {"le"}, "p99")]
    assert all(metric_names(t["expr"]) == {"dice_batch_size_bucket"} for t in targets[:2])
    [mean] = [t for t in targets if t["legendFormat"] == "mean"]
    assert re.fullmatch(
        r"sum\(rate\(dice_batch_size_sum\[[^\]]+\]\)\)\s*/\s*"
        r"sum\(rate\(dice_batch_size_count\[[^\]]+\]\)\)",
        mean["expr"],
    )
    # The two batches: 5 and 20 dice, so the mean is 12.5 dice a batch.
    roller = stage4.roller_scrape
    assert exposed_text_values(roller, "dice_batch_size_count") == [2.0]
    assert exposed_text_values(roller, "dice_batch_size_sum") == [PAGE_BATCH + RISKY_BATCH]


def test_rolls_in_flight_keeps_the_peak_of_the_gauge_a_batch_lifts(
    dashboard: JSON, stage4: Stage4
) -> None:
    """While the page's five d4s waited, the gauge read five; after, zero again."""
    [target] = panel_by_title(dashboard, "Rolls in Flight")["targets"]
    assert re.fullmatch(r"max\(max_over_time\(dice_rolls_in_flight\[[^\]]+\]\)\)", target["expr"])
    assert stage4.peak_in_flight == PAGE_BATCH
    assert exposed_text_values(stage4.roller_scrape, "dice_rolls_in_flight") == [0.0]


def test_the_latency_panel_sets_a_batch_against_a_single_roll(dashboard: JSON) -> None:
    by_handler = {"le", "handler"}
    assert _quantiles(dashboard, "Batch vs Single Roll Duration") == [
        ("0.5", by_handler, "p50 {{handler}}"),
        ("0.99", by_handler, "p99 {{handler}}"),
    ]
    for target in panel_by_title(dashboard, "Batch vs Single Roll Duration")["targets"]:
        [(metric, matchers)] = selectors(target["expr"])
        assert metric == "http_request_duration_seconds_bucket"
        assert _handlers(matchers) == {"/roll", "/roll-async"}


def test_a_batch_lasts_its_slowest_roll_not_the_sum(stage4: Stage4) -> None:
    """What the latency panel's description says, in the risky batch's spans."""
    trace = [s for s in stage4.spans if s.trace_id == stage4.batch]
    [server] = [s for s in trace if s.kind == SERVER_KIND and s.name == "GET /roll-async"]
    rolls = [s for s in trace if s.parent_span_id == server.span_id and s.name == "roll risky"]
    assert len(rolls) == RISKY_BATCH
    assert server.duration_seconds >= max(r.duration_seconds for r in rolls)
    assert server.duration_seconds < sum(r.duration_seconds for r in rolls) / 4
    assert all(
        a.start_ns < b.end_ns and b.start_ns < a.end_ns for a, b in itertools.combinations(rolls, 2)
    )


def test_rolls_by_die_counts_every_roll_and_batches_apart(dashboard: JSON, stage4: Stage4) -> None:
    """Its stack (`dice_rolls_total`) counts the 25 rolls of the batches and the single
    one; its dashed line (`dice_batch_size_sum`) the 25 of the batches alone."""
    panel = panel_by_title(dashboard, "Rolls by Die")
    stack, batched = panel["targets"]
    assert metric_names(stack["expr"]) == {"dice_rolls_total"}
    assert grouping(stack["expr"]) == {"die_type"} and stack["legendFormat"] == "{{die_type}}"
    assert metric_names(batched["expr"]) == {"dice_batch_size_sum"}
    [override] = panel["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byName", "options": batched["legendFormat"]}
    properties = {p["id"]: p["value"] for p in override["properties"]}
    assert properties["custom.stacking"]["mode"] == "none"  # a line over the stack
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    rolls = sum(exposed_text_values(stage4.roller_scrape, "dice_rolls_total"))
    batched_rolls = sum(exposed_text_values(stage4.roller_scrape, "dice_batch_size_sum"))
    assert (rolls, batched_rolls) == (PAGE_BATCH + RISKY_BATCH + 1, PAGE_BATCH + RISKY_BATCH)


def _batch_lines(dashboard: JSON, stage4: Stage4) -> tuple[list[str], str]:
    """The dice-roller's lines the logs panel keeps, and the message it asks for."""
    [target] = panel_by_title(dashboard, "Batch Rolled Logs")["targets"]
    [line_filter] = re.findall(r'\|= "([^"]*)"', target["expr"])
    [message] = re.findall(r'\| message="([^"]*)"', target["expr"])
    lines = [line for line in stage4.log_lines if line_filter in line]
    return lines, message


def test_the_logs_panel_shows_each_batchs_line_with_its_trace_link(
    dashboard: JSON, stage4: Stage4
) -> None:
    lines, message = _batch_lines(dashboard, stage4)
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == [message, message]  # one per batch, no single
    [risky] = [
        (line, r) for line, r in zip(lines, records, strict=True) if r["trace_id"] == stage4.batch
    ]
    line, record = risky
    assert record["times"] == RISKY_BATCH and record["die_type"] == "risky"
    assert record["failed"] == stage4.batch_body["failed"]
    assert record["roll_values"] == stage4.batch_body["rolls"]
    assert record["feature_flags"]["risky-failure-rate"] == "half"
    link = loki_trace_link_pattern().search(line)
    assert link is not None and link[1] == stage4.batch
    description = panel_by_title(dashboard, "Batch Rolled Logs")["description"]
    for field in ("die_type", "times", "failed", "roll_values", "feature_flags", "trace_id"):
        assert f"`{field}`" in description and field in record, field


def test_failed_rolls_add_up_the_failed_field_of_the_batch_lines(
    dashboard: JSON, stage4: Stage4
) -> None:
    """The panel's stream and filters are the logs panel's, it sums `failed` by
    `die_type`, both fields of every batch line; here only batches failed, so the sum
    is every error `dice_rolls_total` counted."""
    [target] = panel_by_title(dashboard, "Failed Rolls in Batches")["targets"]
    [logs] = panel_by_title(dashboard, "Batch Rolled Logs")["targets"]
    stream_and_filter, _ = logs["expr"].split(" | json", 1)
    assert target["expr"].count(stream_and_filter) == 1  # the logs panel's stream and filter
    [message] = re.findall(r'\| message="([^"]*)"', logs["expr"])
    assert f'| json message, die_type, failed | message="{message}" |' in target["expr"]
    assert re.search(r"\|\s*unwrap\s+failed\b", target["expr"])
    assert grouping(target["expr"]) == {"die_type"} and target["legendFormat"] == "{{die_type}}"
    assert re.match(r"sum by \(die_type\) \(sum_over_time\(", target["expr"])
    lines, _ = _batch_lines(dashboard, stage4)
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r["failed"], int) and r["die_type"] for r in records)
    failed = sum(r["failed"] for r in records)
    errors = re.findall(
        r'^dice_rolls_total\{[^}]*result="error"[^}]*\} (\S+)', stage4.roller_scrape, re.M
    )
    assert failed == stage4.batch_body["failed"] > 0
    assert failed == sum(float(e) for e in errors)


_CONDITIONS = {
    "service": re.compile(r'resource\.service\.name\s*=\s*"([^"]*)"'),
    "kind": re.compile(r"kind\s*=\s*(server|client|internal)"),
    "name": re.compile(r'name\s*=\s*"([^"]*)"'),
}
_KINDS = {"internal": 1, "server": 2, "client": 3}


def _matches(span: ReceivedSpan, spanset: str) -> bool:
    """Whether `span` meets every condition of `{a && b && ...}` (a service name, a
    kind, a span name; another shape fails the test)."""
    verdicts = []
    for condition in (c.strip() for c in spanset.strip().strip("{}").split("&&")):
        kind, match = next(
            ((k, m) for k, p in _CONDITIONS.items() if (m := p.fullmatch(condition))),
            (None, None),
        )
        assert match is not None, f"no reader here for {condition!r}"
        if kind == "service":
            verdicts.append(span.resource.get("service.name") == match[1])
        elif kind == "kind":
            verdicts.append(span.kind == _KINDS[match[1]])
        else:
            verdicts.append(span.name == match[1])
    return all(verdicts)


def test_the_tempo_search_finds_a_batch_with_its_rolls_side_by_side(
    dashboard: JSON, stage4: Stage4
) -> None:
    """The table and the latency panel's link search one TraceQL: it finds the batch's
    server span, under which its rolls overlap, and nothing of the single roll."""
    found = {q.text for q in queries(dashboard) if q.language == "traceql"}
    [query] = found
    sources = {(q.panel, q.source) for q in queries(dashboard) if q.language == "traceql"}
    assert sources == {
        ("Batch vs Single Roll Duration", "link 'Search the batches in Tempo'"),
        ("Batches in Tempo", "target A"),
    }
    [server] = [s for s in stage4.spans if _matches(s, query)]
    assert server.trace_id == stage4.batch
    assert server.attributes["batch.size"] == RISKY_BATCH
    assert server.attributes["batch.failed"] == stage4.batch_body["failed"]
    rolls = [
        s for s in stage4.spans if s.parent_span_id == server.span_id and s.name.startswith("roll ")
    ]
    assert {s.name for s in rolls} == {"roll risky"} and len(rolls) == RISKY_BATCH
    assert {"die.result"} <= set(rolls[0].attributes)
    description = panel_by_title(dashboard, "Batches in Tempo")["description"]
    for attribute in ("batch.size", "batch.failed", "die.result", "die.value"):
        assert f"`{attribute}`" in description
    assert "`roll d20`" in description and "`GET /roll-async`" in description
