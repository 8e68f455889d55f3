"""Stage 5's boxes against recorded answers: each ticks on what a stage-5 stack says,
and each crosses, saying why, when the thing it names is broken.

The answers (stage5_answers.json) are a real stage-5 native stack's: Tempo's trace of
a d4 rolled through the frontend, and Prometheus' result for each question the boxes
ask. A small server plays Tempo and Prometheus with them; a test breaks one answer
(the query span gone, the exporter down, the edge not a database's) and looks at the
box. The live run of `verify --stage 5` is in tests/nativestack/live.

The d4's trace has two `SELECT` spans of the die-service: the lookup's, under
`GET /dice/{name}`, and the all_dice query under `GET /dice`, the frontend listing the
dice. Only the first is the lookup's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackclient import Api
from tests.support.http_server import serving
from tests.support.misbehaving import Answer, MisbehavingServer, Request, json_answer
from tests.support.tools import closed_url
from tests.support.verify_stack import nothing_running
from verify.cli import build_parser, run_checks
from verify.context import Context, FreshRequest, Settings
from verify.model import GROUPS, Result, Run
from verify.stage5 import EDGE, EXPORTER, GROUP, POOL_METRICS, run_stage5_checks

RECORDED = json.loads((Path(__file__).parent / "stage5_answers.json").read_text("utf-8"))
TRACE_ID: str = RECORDED["roll"]["trace_id"]
SPAN_ID: str = RECORDED["roll"]["span_id"]

UP = f'up{{job="{EXPORTER}"}} == 1'
PG_UP = f'pg_up{{job="{EXPORTER}"}}'
BACKENDS = f'pg_stat_database_numbackends{{job="{EXPORTER}", datname="dice"}}'
POOL = f'{{__name__=~"{"|".join(POOL_METRICS)}", job="die-service"}}'

QUERY, SCRAPED, PG, GRAPH, METRICS = (
    "The die-service's lookup is a query",
    "Prometheus has postgres_exporter's metrics",
    "postgres_exporter reaches the database",
    "The service graph has the edge die-service → dice",
    "Prometheus has the die-service's pool and query metrics",
)


class RecordedBackends(MisbehavingServer):
    """Tempo's `/api/v2/traces/<id>` and Prometheus' `/api/v1/query` from `traces` and
    `results`; a trace id it does not have is Tempo's "not yet", a query it does not
    have an empty result. `later` is Tempo's next answers for the trace, one per ask,
    before `traces` again: a trace arriving in parts."""

    name = "recorded Tempo and Prometheus"

    def __init__(self) -> None:
        super().__init__()
        self.traces: dict[str, Any] = {}
        self.results: dict[str, list[Any]] = {}
        self.later: list[Any] = []
        self.reset()

    def reset(self) -> None:
        """The recorded answers again, unbroken."""
        super().reset()
        self.traces = copy.deepcopy(RECORDED["tempo"])
        self.results = copy.deepcopy(RECORDED["prometheus"])
        self.later = []

    def answer(self, request: Request, mode: str | None) -> Answer:
        if request.path.startswith("/api/v2/traces/"):
            if self.later:
                return json_answer(self.later.pop(0))
            trace_id = request.path.rsplit("/", 1)[-1]
            return json_answer(self.traces.get(trace_id, {"trace": {}, "metrics": {}}))
        if request.path == "/api/v1/query":
            result = self.results.get(request.params["query"], [])
            return json_answer(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            )
        return json_answer({"error": f"no {request.path} here"}, 404)

    # The recorded trace, to break on purpose.

    def spans(self, answer: Any = None) -> list[dict[str, Any]]:
        """The spans of `answer`, a Tempo answer; the recorded trace's by default."""
        answer = answer or self.traces[TRACE_ID]
        return [
            span
            for resource in answer["trace"]["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    def span(self, name: str) -> dict[str, Any]:
        [span] = [span for span in self.spans() if span["name"] == name]
        return span

    def lookup_query(self, answer: Any = None) -> dict[str, Any]:
        """The lookup's SELECT: the one under the die-service's `GET /dice/{name}`."""
        spans = self.spans(answer)
        [lookup] = [s["spanId"] for s in spans if s["name"] == "GET /dice/{name}"]
        [span] = [s for s in spans if s["name"] == "SELECT" and s["parentSpanId"] == lookup]
        return span

    def without(self, span: dict[str, Any], answer: Any = None) -> None:
        answer = answer or self.traces[TRACE_ID]
        for resource in answer["trace"]["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                scope["spans"] = [s for s in scope["spans"] if s is not span]

    def series(self, query: str) -> list[dict[str, Any]]:
        return self.results[query]


@pytest.fixture(scope="module")
def recorded() -> Iterator[RecordedBackends]:
    with serving(RecordedBackends()) as server:  # stopping one takes half a second
        yield server


@pytest.fixture
def backends(recorded: RecordedBackends) -> RecordedBackends:
    recorded.reset()
    return recorded


def stage5_boxes(
    backends: RecordedBackends, roll: bool = True, wait: float = 0.1
) -> dict[str, Result]:
    """Stage 5's boxes, as `verify --stage 5` runs them after stage 3's roll of the d4
    whose trace was recorded, waiting `wait` seconds in all; each by the start of its
    title."""
    settings = Settings(
        frontend_url=closed_url(),
        prometheus_url=backends.url,
        tempo_url=backends.url,
        timeout=2.0,
        wait=wait,
        poll_interval=0.05,
    )
    api = Api(timeout=settings.timeout)
    try:
        ctx, run = Context(settings, api), Run()
        if roll:
            ctx.facts["stage3_roll"] = FreshRequest(
                "/api/roll?die=d4", 200, TRACE_ID, SPAN_ID, 0.0, 0.1
            )
        run_stage5_checks(ctx, run)
    finally:
        api.close()
    assert {r.group for r in run.results} == {GROUP}
    boxes = {}
    for result in run.results:
        [start] = [s for s in (QUERY, SCRAPED, PG, GRAPH, METRICS) if result.title.startswith(s)]
        boxes[start] = result
    assert list(boxes) == [QUERY, SCRAPED, PG, GRAPH, METRICS]
    return boxes


def crossed(backends: RecordedBackends, box: str) -> str:
    """The detail of `box`, which must be the only one crossed."""
    boxes = stage5_boxes(backends)
    assert [title for title, result in boxes.items() if not result.passed] == [box]
    return boxes[box].detail


def test_every_box_ticks_on_a_stage5_stacks_answers(backends: RecordedBackends) -> None:
    boxes = stage5_boxes(backends)
    assert {title: r.detail for title, r in boxes.items() if not r.passed} == {}
    assert boxes[QUERY].detail.startswith("SELECT on postgresql/dice in ")
    assert boxes[QUERY].detail.endswith(
        ": SELECT name, faces, failure_rate, max_delay_seconds FROM dice WHERE name = $1"
    )
    assert boxes[SCRAPED].detail == "scraped by Alloy at postgres-exporter:9187"
    assert boxes[PG].detail.startswith("pg_up 1; ")
    assert 'connection_type="database"' in boxes[GRAPH].detail
    assert " one_die queries, 0 database error(s)" in boxes[METRICS].detail


# The query span


def test_the_lookup_without_its_query_span_is_a_cross(backends: RecordedBackends) -> None:
    """The all_dice SELECT, under the frontend's `GET /dice`, does not stand in for it."""
    backends.without(backends.lookup_query())
    detail = crossed(backends, QUERY)
    assert f"trace {TRACE_ID}, after the wait: no CLIENT span of die-service under its " in detail
    assert "GET /dice/{name}" in detail and "the lookup ran no traced query" in detail


def test_a_query_span_elsewhere_in_the_trace_is_not_the_lookups(
    backends: RecordedBackends,
) -> None:
    """The lookup's SELECT hung under the die-service's other server span."""
    backends.lookup_query()["parentSpanId"] = backends.span("GET /dice")["spanId"]
    assert "no CLIENT span of die-service under its GET /dice/{name}" in crossed(backends, QUERY)


def test_a_query_span_without_its_statement_is_a_cross(backends: RecordedBackends) -> None:
    span = backends.lookup_query()
    span["attributes"] = [a for a in span["attributes"] if a["key"] != "db.statement"]
    assert "with db.statement '': expected a SELECT and its statement" in crossed(backends, QUERY)


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("db.system", "mysql", "no span with db.system='postgresql' under GET /dice/{name}"),
        ("db.name", "postgres", "the SELECT span's db.name is 'postgres', not 'dice'"),
    ],
)
def test_a_query_span_of_another_database_is_a_cross(
    backends: RecordedBackends, key: str, value: str, said: str
) -> None:
    span = backends.lookup_query()
    for attribute in span["attributes"]:
        if attribute["key"] == key:
            attribute["value"] = {"stringValue": value}
    assert said in crossed(backends, QUERY)


def test_the_box_waits_for_the_whole_trace(backends: RecordedBackends) -> None:
    """Tempo has nothing, then the die-service's spans alone, then all but the query,
    then all: the box waits, and ticks."""
    whole = backends.traces[TRACE_ID]
    die_service_only = copy.deepcopy(whole)
    die_service_only["trace"]["resourceSpans"] = [
        resource
        for resource in whole["trace"]["resourceSpans"]
        if {"key": "service.name", "value": {"stringValue": "die-service"}}
        in resource["resource"]["attributes"]
    ]
    no_query = copy.deepcopy(whole)
    backends.without(backends.lookup_query(no_query), no_query)
    backends.later = [{"trace": {}, "metrics": {}}, die_service_only, no_query, no_query]
    assert stage5_boxes(backends, wait=5.0)[QUERY].passed
    assert backends.later == []
    assert backends.requests.count(f"GET /api/v2/traces/{TRACE_ID}") == 5


def test_a_trace_tempo_never_gets_is_a_cross(backends: RecordedBackends) -> None:
    del backends.traces[TRACE_ID]
    assert crossed(backends, QUERY) == f"trace {TRACE_ID} did not reach Tempo within the wait"


def test_without_stage3s_roll_there_is_no_trace_to_follow(backends: RecordedBackends) -> None:
    boxes = stage5_boxes(backends, roll=False)
    assert not boxes[QUERY].passed
    assert boxes[QUERY].detail == "no roll to follow: the frontend's roll of a d4 (Stage 3) failed"
    assert [title for title, r in boxes.items() if not r.passed] == [QUERY]


# postgres_exporter


def test_an_exporter_alloy_does_not_scrape_is_a_cross(backends: RecordedBackends) -> None:
    del backends.results[UP]
    assert (
        crossed(backends, SCRAPED)
        == f'no up{{job="{EXPORTER}"}} == 1 in Prometheus within the wait'
    )


def test_an_exporter_that_cannot_reach_the_database_is_a_cross(
    backends: RecordedBackends,
) -> None:
    [series] = backends.series(PG_UP)
    series["value"][1] = "0"
    detail = crossed(backends, PG)
    assert detail == f"{PG_UP} is 0: postgres_exporter cannot reach PostgreSQL"


def test_no_pg_up_at_all_is_a_cross(backends: RecordedBackends) -> None:
    del backends.results[PG_UP]
    assert crossed(backends, PG) == f"no {PG_UP} in Prometheus within the wait"


def test_an_exporter_that_does_not_see_the_dice_database_is_a_cross(
    backends: RecordedBackends,
) -> None:
    del backends.results[BACKENDS]
    assert (
        crossed(backends, PG)
        == f"pg_up is 1, but no {BACKENDS}: the exporter does not see the database"
    )


# The service graph


def test_no_edge_to_the_database_is_a_cross(backends: RecordedBackends) -> None:
    del backends.results[EDGE]
    assert crossed(backends, GRAPH) == f"no {EDGE} series in Prometheus within the wait"


def test_an_edge_that_is_not_a_databases_is_a_cross(backends: RecordedBackends) -> None:
    """What Alloy writes for a peer it pairs no server span with and does not take for
    a database: a virtual node."""
    [series] = backends.series(EDGE)
    series["metric"]["connection_type"] = "virtual_node"
    detail = crossed(backends, GRAPH)
    assert detail.startswith("the edge is there, but its connection_type is 'virtual_node'")


# The die-service's pool and query metrics


@pytest.mark.parametrize(
    ("name", "labels", "missing"),
    [
        ("die_service_db_connections_max", {}, "die_service_db_connections_max > 0"),
        (
            "die_service_db_connections",
            {"state": "in_use"},
            'die_service_db_connections{state="in_use"}',
        ),
        (
            "die_service_db_pool_wait_seconds_count",
            {},
            "die_service_db_pool_wait_seconds_count > 0",
        ),
        (
            "die_service_db_query_duration_seconds_count",
            {"query": "one_die"},
            'die_service_db_query_duration_seconds_count{query="one_die"} > 0',
        ),
        ("die_service_db_errors_total", {}, "die_service_db_errors_total"),
    ],
)
def test_a_missing_pool_family_is_a_cross_that_names_it(
    backends: RecordedBackends, name: str, labels: dict[str, str], missing: str
) -> None:
    def matches(series: dict[str, Any]) -> bool:
        metric = series["metric"]
        return metric["__name__"] == name and all(metric.get(k) == v for k, v in labels.items())

    result = backends.series(POOL)
    assert any(matches(series) for series in result)
    backends.results[POOL] = [series for series in result if not matches(series)]
    assert crossed(backends, METRICS) == f"within the wait, {POOL} had no {missing}"


def test_no_lookup_counted_yet_is_a_cross(backends: RecordedBackends) -> None:
    """The families are there from the start, at zero: the die-service runs on
    PostgreSQL, but no lookup reached it."""
    for series in backends.series(POOL):
        if series["metric"]["__name__"].endswith("_count"):
            series["value"][1] = "0"
    detail = crossed(backends, METRICS)
    assert "die_service_db_pool_wait_seconds_count > 0" in detail
    assert 'die_service_db_query_duration_seconds_count{query="one_die"} > 0' in detail


def test_a_pool_of_no_connections_is_a_cross(backends: RecordedBackends) -> None:
    for series in backends.series(POOL):
        if series["metric"]["__name__"] == "die_service_db_connections_max":
            series["value"][1] = "0"
    assert crossed(backends, METRICS).endswith(" had no die_service_db_connections_max > 0")


def test_a_die_service_without_a_database_has_no_pool_metrics(
    backends: RecordedBackends,
) -> None:
    backends.results[POOL] = []
    detail = crossed(backends, METRICS)
    missing = detail.removeprefix(f"within the wait, {POOL} had no ").split(", ")
    assert len(missing) == 6 and all(m.startswith("die_service_db_") for m in missing)


# The command line


def test_stage5_runs_after_every_lower_stage() -> None:
    """`--stage 5` is a stage, and its boxes come after stages 2 to 4's; `--stage 4`
    has none of them."""
    assert build_parser().parse_args(["--stage", "5"]).stage == 5
    assert GROUPS[-1] == GROUP

    def groups(stage: int) -> list[str]:
        settings = nothing_running(frontend_url=closed_url(), stage=stage)
        return list(dict.fromkeys(r.group for r in run_checks(settings).results))

    later = ["Stage 2: Across Services", "Stage 3: Three Services", "Stage 4: Async Rolls"]
    assert groups(5)[-4:] == [*later, GROUP]
    assert groups(4)[-3:] == later
