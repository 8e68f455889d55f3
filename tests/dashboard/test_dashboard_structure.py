"""The dashboard's shape: its twelve panels in their four rows, laid out without
overlaps, each querying a data source the stack really provisions."""

from __future__ import annotations

import re
from itertools import combinations

import pytest
from dice_roller.metrics import ROLL_VALUE_BUCKETS

from tests.support.dashboard_model import (
    DATASOURCES_DIR,
    JSON,
    load_dashboard,
    panel_by_title,
    panels,
    provisioned_datasources,
    rows,
)
from tests.support.prometheus import parse_duration, scrape_interval_seconds

# The dashboard's rows and panels, written out apart from generate_dashboard.py so that a
# change there must be made here too: row titles, then (panel title, allowed panel types).
EXPECTED_LAYOUT: list[tuple[str, list[tuple[str, set[str]]]]] = [
    (
        "Overview",
        [
            ("Request Rate", {"timeseries"}),
            ("Success Rate", {"gauge"}),
            ("Error Rate by Die Type", {"timeseries"}),
        ],
    ),
    (
        "Latency",
        [
            ("Request Duration", {"timeseries"}),
            ("Average Response Time by Die Type", {"barchart"}),
        ],
    ),
    (
        "Roll Distribution",
        [
            ("Rolls by Die Type", {"piechart"}),
            ("Roll Value Distribution (Fair)", {"bargauge", "barchart"}),
            ("Roll Value Distribution (Risky)", {"bargauge", "barchart"}),
        ],
    ),
    (
        "Logs and Traces",
        [
            ("Recent Logs", {"logs"}),
            ("Error Logs", {"logs"}),
            ("Trace-to-Logs Correlation Instructions", {"text"}),
            ("Trace Count", {"stat"}),
        ],
    ),
]

GRID_COLUMNS = 24
BUILTIN_GRAFANA = {"type": "datasource", "uid": "grafana"}


@pytest.fixture(scope="module")
def dashboard() -> JSON:
    return load_dashboard()


def test_identity(dashboard: JSON) -> None:
    assert dashboard["title"] == "Dice Roller - Stage 1"
    assert dashboard["uid"] == "dice-roller-stage1"  # fixed: links and bookmarks survive
    assert 39 <= dashboard["schemaVersion"] <= 41


def test_twelve_panels_in_their_four_rows(dashboard: JSON) -> None:
    actual = [
        (title, [(panel["title"], panel["type"]) for panel in row_panels])
        for title, row_panels in rows(dashboard)
    ]
    assert [title for title, _ in actual] == [title for title, _ in EXPECTED_LAYOUT]
    for (row_title, got), (_, expected) in zip(actual, EXPECTED_LAYOUT, strict=True):
        assert [title for title, _ in got] == [title for title, _ in expected], row_title
        for (title, kind), (_, allowed) in zip(got, expected, strict=True):
            assert kind in allowed, f"{title}: type {kind}, expected one of {allowed}"
    assert len(panels(dashboard)) == 12
    assert all(not row.get("collapsed") for row in dashboard["panels"] if row["type"] == "row")


def test_ids_are_unique(dashboard: JSON) -> None:
    ids = [item["id"] for item in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _cells(item: JSON) -> set[tuple[int, int]]:
    grid = item["gridPos"]
    return {
        (x, y)
        for x in range(grid["x"], grid["x"] + grid["w"])
        for y in range(grid["y"], grid["y"] + grid["h"])
    }


def test_grid_positions_fit_and_do_not_overlap(dashboard: JSON) -> None:
    items = dashboard["panels"]
    for item in items:
        grid = item["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0, item["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, item["title"]
    for first, second in combinations(items, 2):
        overlap = _cells(first) & _cells(second)
        assert not overlap, f"{first['title']!r} overlaps {second['title']!r}"


def test_each_panel_sits_below_its_row(dashboard: JSON) -> None:
    row_tops = [item["gridPos"]["y"] for item in dashboard["panels"] if item["type"] == "row"]
    bounds = list(zip(row_tops, [*row_tops[1:], 10**6], strict=True))
    for (title, row_panels), (top, next_top) in zip(rows(dashboard), bounds, strict=True):
        for panel in row_panels:
            grid = panel["gridPos"]
            assert top < grid["y"] and grid["y"] + grid["h"] <= next_top, (title, panel["title"])


def test_every_panel_explains_itself(dashboard: JSON) -> None:
    for panel in panels(dashboard):
        assert len(panel.get("description", "")) >= 60, f"{panel['title']}: no real description"


def test_every_metric_panel_has_a_unit(dashboard: JSON) -> None:
    for panel in panels(dashboard):
        if panel["type"] in {"text", "logs"}:
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"


def test_data_sources_are_the_ones_the_stack_provisions(dashboard: JSON) -> None:
    assert DATASOURCES_DIR.is_dir(), f"{DATASOURCES_DIR} is missing"
    provisioned = {source["uid"]: source["type"] for source in provisioned_datasources()}
    for panel in panels(dashboard):
        source = panel["datasource"]
        if panel["type"] == "text":
            assert source == BUILTIN_GRAFANA
            continue
        assert provisioned.get(source["uid"]) == source["type"], (
            f"{panel['title']}: data source {source} is not provisioned ({provisioned})"
        )
        for target in panel["targets"]:
            assert target["datasource"] == source, f"{panel['title']} {target['refId']}"


def test_exemplars_lead_to_tempo(dashboard: JSON) -> None:
    """Exemplar dots need both halves: the panel asks for them, and the Prometheus data
    source knows which exemplar label holds a trace id (the service writes `trace_id`)."""
    duration = panel_by_title(dashboard, "Request Duration")
    assert duration["targets"] and all(t.get("exemplar") for t in duration["targets"])
    sources = provisioned_datasources()
    tempo_uids = {s["uid"] for s in sources if s["type"] == "tempo"}
    prometheus = [s for s in sources if s["uid"] == duration["datasource"]["uid"]]
    assert prometheus, "the Prometheus data source is not provisioned"
    destinations = prometheus[0].get("jsonData", {}).get("exemplarTraceIdDestinations", [])
    assert any(
        d.get("name") == "trace_id" and d.get("datasourceUid") in tempo_uids for d in destinations
    ), destinations


def _colour_at(panel: JSON, value: float) -> str:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colour = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return str(colour)


def test_success_rate_colours_fit_the_risky_die(dashboard: JSON) -> None:
    """The risky die fails 10 % by design: 90-100 % is healthy, less is not."""
    gauge = panel_by_title(dashboard, "Success Rate")
    assert gauge["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert _colour_at(gauge, 1.0) == "green"
    assert _colour_at(gauge, 0.95) == "green"
    assert _colour_at(gauge, 0.90) == "green"
    assert _colour_at(gauge, 0.87) != "green"
    assert _colour_at(gauge, 0.5) == "red"


def test_graphs_use_rate_interval_and_summaries_the_range(dashboard: JSON) -> None:
    """No hard-coded windows: graphs follow the zoom, summaries the dashboard's range."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" not in target or panel["datasource"]["type"] != "prometheus":
                continue
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', target["expr"])  # ignore strings
            windows = set(re.findall(r"\[([^\]]+)\]", code))
            allowed = (
                {"$__range", "$__rate_interval"} if target["instant"] else {"$__rate_interval"}
            )
            assert windows and windows <= allowed, (panel["title"], windows)


@pytest.mark.parametrize(
    ("title", "faces"),
    [
        ("Roll Value Distribution (Fair)", range(1, 7)),
        ("Roll Value Distribution (Risky)", range(2, 8)),
    ],
)
def test_value_distributions_show_one_bar_per_face(
    dashboard: JSON, title: str, faces: range
) -> None:
    """Cumulative buckets become per-value counts through Grafana's heatmap format, and
    the `le` matcher keeps exactly the faces of the die."""
    [target] = panel_by_title(dashboard, title)["targets"]
    assert target["format"] == "heatmap"
    assert target["legendFormat"] == "{{le}}"
    assert "sum by (le)" in target["expr"]
    [pattern] = re.findall(r'le=~"([^"]+)"', target["expr"])
    buckets = [str(bound) for bound in ROLL_VALUE_BUCKETS] + ["+Inf"]  # as the service exports
    kept = [bucket for bucket in buckets if re.fullmatch(pattern, bucket)]
    assert kept == [f"{face}.0" for face in faces]


def test_grafana_knows_the_real_scrape_interval() -> None:
    """`$__rate_interval` is four scrape intervals as the *data source* states them: if
    Grafana assumed its 15 s default while Prometheus scrapes every 5 s, every rate
    would average over a minute instead of 20 s."""
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    stated = prometheus.get("jsonData", {}).get("timeInterval", "15s")
    assert parse_duration(stated) == scrape_interval_seconds()
