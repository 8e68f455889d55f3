"""Generate `stage1-dashboard.json`, the "Dice Roller - Stage 1" Grafana dashboard.

The JSON Grafana loads is long and repetitive; the decisions behind it are few. This
script keeps the decisions readable (one function per panel: its query, unit and
explanation) and writes the JSON that the stack provisions into Grafana.

    python grafana-dashboards/generate_dashboard.py          # rewrite the JSON
    python grafana-dashboards/generate_dashboard.py --check  # exit 1 if it is stale

Edit this file, not the JSON: a test fails when the two disagree.

Query conventions used throughout:

- `$__rate_interval` in every `rate()` of a time series: Grafana sets it to at least
  four scrape intervals, so a rate always has enough samples, at any zoom level.
- `$__range` in the summary panels (pie, bars, trace count): they summarise the whole
  time range picked at the top right, and keep showing it after the traffic stops.
- Data sources by fixed uid (`prometheus`, `loki`, `tempo`), as the stack provisions them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

JSON = dict[str, Any]

DASHBOARD_PATH = Path(__file__).with_name("stage1-dashboard.json")
CONTAINER = "dice-roller-stage1"  # the compose container name; Alloy turns it into a Loki label
SERVICE_NAME = "dice-roller"  # OpenTelemetry service.name of the traces
ROLL = 'handler="/roll"'  # the API route; /metrics scrapes are never counted

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
TEMPO = {"type": "tempo", "uid": "tempo"}
GRAFANA = {"type": "datasource", "uid": "grafana"}  # built-in: panels that query nothing


# --- Targets: one query each ------------------------------------------------------------


def prom(expr: str, legend: str, ref: str = "A", *, instant: bool = False, **extra: Any) -> JSON:
    """A Prometheus query: a range query for graphs, an instant one for single values."""
    return {
        "datasource": PROMETHEUS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        **extra,
    }


def loki(expr: str) -> JSON:
    return {"datasource": LOKI, "refId": "A", "expr": expr, "queryType": "range"}


def per_value_counts(die: str, values: range) -> JSON:
    """Rolls of each value of one die over the time range.

    `dice_roll_value` is a histogram with one bucket per face: bucket `le="3.0"` counts
    the rolls <= 3, so it is cumulative. Drawn as-is, each bar would include all the
    smaller values. `format: heatmap` makes Grafana subtract the bucket below from each
    bucket, which leaves the rolls of exactly that value: 3 = (<= 3) - (<= 2).
    """
    faces = "|".join(f"{value}[.]0" for value in values)  # le="1.0" ... : one per face
    expr = (
        f"sum by (le) (increase(dice_roll_value_bucket"
        f'{{die_type="{die}", le=~"{faces}"}}[$__range]))'
    )
    return prom(expr, "{{le}}", instant=True, format="heatmap")


# --- Panels: the common frame, then one function per panel ------------------------------


def panel(
    kind: str,
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[JSON],
    datasource: JSON = PROMETHEUS,
    *,
    unit: str | None = None,
    options: JSON | None = None,
    defaults: JSON | None = None,
    **extra: Any,
) -> JSON:
    """A panel at grid = (x, y, width, height) in Grafana's 24-column grid."""
    x, y, w, h = grid
    field_defaults: JSON = dict(defaults or {})
    if unit:
        field_defaults["unit"] = unit
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options or {},
        **extra,
    }


def row(title: str, y: int) -> JSON:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def thresholds(*steps: tuple[float | None, str]) -> JSON:
    """Colour steps: the first applies from minus infinity (value None)."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


NEUTRAL = thresholds((None, "green"))
TIMESERIES_LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True}
SINGLE_VALUE = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def request_rate(y: int) -> JSON:
    return panel(
        "timeseries",
        "Request Rate",
        "Requests per second answered by `/roll`, stacked by status class (2xx, 5xx). "
        "The top of the stack is the total load. `rate()` turns the ever-growing counter "
        "`http_requests_total` into a per-second speed, averaged over `$__rate_interval` "
        "(at least four scrapes, so a late scrape never leaves a gap).",
        (0, y, 8, 8),
        [
            prom(
                f"sum by (status) (rate(http_requests_total{{{ROLL}}}[$__rate_interval]))",
                "{{status}}",
            )
        ],
        unit="reqps",
        defaults={
            "min": 0,
            "custom": {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 25},
        },
        options={"legend": TIMESERIES_LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def success_rate(y: int) -> JSON:
    ok = f'sum(rate(http_requests_total{{{ROLL}, status!="5xx"}}[$__rate_interval]))'
    total = f"sum(rate(http_requests_total{{{ROLL}}}[$__rate_interval]))"
    return panel(
        "gauge",
        "Success Rate",
        "Share of `/roll` requests answered without a server error (status below 500), "
        "over the last `$__rate_interval`. The risky die fails one roll in ten by design, "
        "so a healthy service sits between 90 % (only risky rolls) and 100 % (only fair "
        "ones), about 95 % for an even mix: green from 90 %. Orange or red means more "
        "failures than the dice explain. Empty when no request arrived lately.",
        (8, y, 8, 8),
        [prom(f"{ok}\n/\n{total}", "success rate", instant=True)],
        unit="percentunit",
        defaults={
            "min": 0,
            "max": 1,
            "decimals": 1,
            "thresholds": thresholds((None, "red"), (0.85, "orange"), (0.9, "green")),
        },
        options={
            "reduceOptions": SINGLE_VALUE,
            "showThresholdMarkers": True,
            "showThresholdLabels": False,
        },
    )


def error_rate(y: int) -> JSON:
    return panel(
        "timeseries",
        "Error Rate by Die Type",
        "Failed rolls per second, one line per die, from the business counter "
        '`dice_rolls_total{result="error"}`. Only the risky die fails (about one roll in '
        "ten); the fair line stays at zero. The service creates every series at zero on "
        "start, so even the first failure shows up as a rise.",
        (16, y, 8, 8),
        [
            prom(
                'sum by (die_type) (rate(dice_rolls_total{result="error"}[$__rate_interval]))',
                "{{die_type}}",
            )
        ],
        unit="reqps",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
        options={"legend": TIMESERIES_LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def request_duration(y: int) -> JSON:
    def quantile(q: float, ref: str) -> JSON:
        expr = (
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{ROLL}}}[$__rate_interval])))"
        )
        return prom(expr, f"p{round(q * 100)}", ref, exemplar=True)

    return panel(
        "timeseries",
        "Request Duration",
        "How long `/roll` takes: half the requests finish below p50, 95 % below p95, 99 % "
        "below p99. Each roll waits a random delay up to the configured maximum (1 s by "
        "default), so p50 sits near half of it and p99 near all of it. "
        "`histogram_quantile` estimates the percentiles from the buckets of "
        "`http_request_duration_seconds`. The dots are exemplars: real requests, each "
        "carrying its trace id; hover one and follow the link to open its trace in Tempo.",
        (0, y, 12, 8),
        [quantile(0.5, "A"), quantile(0.95, "B"), quantile(0.99, "C")],
        unit="s",
        defaults={"min": 0},
        options={"legend": TIMESERIES_LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def average_by_die(y: int) -> JSON:
    total = "sum by (die_type) (increase(dice_roll_duration_seconds_sum[$__range]))"
    count = "sum by (die_type) (increase(dice_roll_duration_seconds_count[$__range]))"
    return panel(
        "barchart",
        "Average Response Time by Die Type",
        "Mean duration of a roll for each die over the selected time range: total "
        "seconds spent rolling divided by the number of rolls, from the histogram "
        "`dice_roll_duration_seconds` (its `_sum` and `_count`). Failed rolls count too. "
        "Both dice draw the same random delay, so the bars should be about equal: a "
        "difference would point at the code, not at the dice.",
        (12, y, 12, 8),
        [prom(f"{total}\n/\n{count}", "{{die_type}}", instant=True, format="table")],
        unit="s",
        defaults={"min": 0, "color": {"mode": "palette-classic"}, "decimals": 3},
        options={
            "xField": "die_type",
            "orientation": "auto",
            "showValue": "always",
            "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def rolls_by_die(y: int) -> JSON:
    return panel(
        "piechart",
        "Rolls by Die Type",
        "How many rolls each die got over the selected time range, failed ones "
        "included: `increase()` of the counter `dice_rolls_total` over `$__range`, "
        "summed over results.",
        (0, y, 8, 8),
        [
            prom(
                "sum by (die_type) (increase(dice_rolls_total[$__range]))",
                "{{die_type}}",
                instant=True,
            )
        ],
        unit="short",
        defaults={"decimals": 0, "color": {"mode": "palette-classic"}},
        options={
            "pieType": "pie",
            "reduceOptions": SINGLE_VALUE,
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "values": ["value", "percent"],
            },
            "displayLabels": ["name", "percent"],
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def value_distribution(die: str, faces: range, x: int, y: int) -> JSON:
    low, high = faces.start, faces.stop - 1
    return panel(
        "bargauge",
        f"Roll Value Distribution ({die.capitalize()})",
        f"How often each value {low} to {high} came up on the {die} die over the selected "
        "time range. An unbiased die gives bars of about equal height. The histogram "
        "`dice_roll_value` is cumulative (bucket 3 counts every roll up to 3); the query "
        "uses Grafana's heatmap format to subtract neighbouring buckets, so each bar "
        "counts one value. Failed rolls have no value and are not counted.",
        (x, y, 8, 8),
        [per_value_counts(die, faces)],
        unit="short",
        defaults={"min": 0, "decimals": 0, "color": {"mode": "fixed", "fixedColor": "blue"}},
        options={
            "orientation": "vertical",
            "displayMode": "basic",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "reduceOptions": SINGLE_VALUE,
        },
        # Bucket labels are upper bounds written as floats ("3.0"): show the face, "3".
        transformations=[
            {"id": "renameByRegex", "options": {"regex": r"^(\d+)\.0$", "renamePattern": "$1"}}
        ],
    )


def logs_panel(title: str, description: str, expr: str, grid: tuple[int, int, int, int]) -> JSON:
    return panel(
        "logs",
        title,
        description,
        grid,
        [loki(expr)],
        LOKI,
        options={
            "showTime": True,
            "wrapLogMessage": True,
            "prettifyLogMessage": False,
            "enableLogDetails": True,
            "sortOrder": "Descending",
            "dedupStrategy": "none",
        },
    )


LOGS = f'{{container_name="{CONTAINER}"}} | json'


def recent_logs(y: int) -> JSON:
    return logs_panel(
        "Recent Logs",
        f"The service's JSON log lines, newest first: one per request, with its outcome "
        "and how it was asked and answered. Alloy reads the container's output and "
        f'labels it `container_name="{CONTAINER}"`; `| json` turns each line\'s fields '
        "(level, message, die_type, roll_value, route, status, duration_seconds, "
        "trace_id...) into labels you can filter on, e.g. `| status >= 500`. Expand a "
        "line and click **Open trace** to see the trace of that request.",
        LOGS,
        (0, y, 12, 10),
    )


def error_logs(y: int) -> JSON:
    return logs_panel(
        "Error Logs",
        'Only the lines logged at ERROR, such as "Roll failed" when the risky die fails: '
        'the same stream as Recent Logs, filtered on the parsed field `level="ERROR"`. '
        "Each one carries the trace id of the failed request.",
        f'{LOGS} | level="ERROR"',
        (12, y, 12, 10),
    )


CORRELATION_GUIDE = f"""\
### From a trace to its logs
1. **Explore** → data source **Tempo** → query `{{resource.service.name="{SERVICE_NAME}"}}`
   (or click the *Trace Count* number, then its link).
2. Open a trace and click its span.
3. Click **Logs for this span**: Loki opens with the lines carrying that `trace_id`.

### From a log line to its trace
1. In *Recent Logs* or *Error Logs*, click a line to expand it.
2. Under the line's fields, the `TraceID` link **Open trace** opens the trace in Tempo,
   beside the logs.

### From a latency point to its trace (exemplars)
1. In *Request Duration*, the dots are exemplars: single requests measured by the histogram.
2. Hover a dot and click **Query with Tempo**: the trace of exactly that request opens.

Every signal carries the same trace id: logs as `trace_id`, metric exemplars as
`trace_id`, and each HTTP response in its `traceresponse` header
(`curl -i "http://localhost:8100/roll?die=risky"`).
"""


def correlation_instructions(y: int) -> JSON:
    return panel(
        "text",
        "Trace-to-Logs Correlation Instructions",
        "How to move between traces, logs and metrics for one request.",
        (0, y, 16, 10),
        [],
        GRAFANA,
        options={"mode": "markdown", "content": CORRELATION_GUIDE},
    )


def explore_link(datasource: JSON, query: str) -> str:
    """A link to Explore with `query` ready; `${__from}`/`${__to}` keep the dashboard's range."""
    pane = {
        "datasource": datasource["uid"],
        "queries": [
            {"refId": "A", "datasource": datasource, "queryType": "traceql", "query": query}
        ],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    panes = json.dumps({"traces": pane}, separators=(",", ":"))
    return f"/explore?schemaVersion=1&orgId=1&panes={quote(panes, safe='${}')}"


TRACE_SEARCH = f'{{resource.service.name="{SERVICE_NAME}"}}'
SERVER_SPANS = f'service="{SERVICE_NAME}", span_kind="SPAN_KIND_SERVER"'


def trace_count(y: int) -> JSON:
    return panel(
        "stat",
        "Trace Count",
        "Traces Tempo received from the service over the selected time range. Each "
        "request is one trace with one server span, so this counts server spans in "
        "`traces_spanmetrics_calls_total`, the counter Tempo's metrics generator derives "
        "from the spans it ingests and writes into Prometheus. A TraceQL search would "
        "list traces but stops at its result limit, so it can't count them. `increase()` "
        "extrapolates, hence an approximate count. Click the number to search the traces "
        f"themselves in Tempo with TraceQL `{TRACE_SEARCH}`.",
        (16, y, 8, 10),
        [
            prom(
                f"sum(increase(traces_spanmetrics_calls_total{{{SERVER_SPANS}}}[$__range]))",
                "traces",
                instant=True,
            )
        ],
        unit="short",
        defaults={
            "decimals": 0,
            "thresholds": NEUTRAL,
            "links": [
                {
                    "title": "Search these traces in Tempo",
                    "url": explore_link(TEMPO, TRACE_SEARCH),
                }
            ],
        },
        options={
            "reduceOptions": SINGLE_VALUE,
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "center",
        },
    )


# --- The dashboard ----------------------------------------------------------------------


def build_dashboard() -> JSON:
    """The whole dashboard: four rows, twelve panels, laid out top to bottom."""
    layout: list[JSON] = [
        row("Overview", 0),
        request_rate(1),
        success_rate(1),
        error_rate(1),
        row("Latency", 9),
        request_duration(10),
        average_by_die(10),
        row("Roll Distribution", 18),
        rolls_by_die(19),
        value_distribution("fair", range(1, 7), 8, 19),
        value_distribution("risky", range(2, 8), 16, 19),
        row("Logs and Traces", 27),
        recent_logs(28),
        error_logs(28),
        correlation_instructions(38),
        trace_count(38),
    ]
    panels = [{"id": number, **item} for number, item in enumerate(layout, start=1)]
    return {
        "uid": "dice-roller-stage1",
        "title": "Dice Roller - Stage 1",
        "description": "Metrics, logs and traces of the dice-roller service (stage 1).",
        "tags": ["dice-roller", "stage1", "observability-sandbox"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,  # shared crosshair: hovering one graph marks the same time in all
        "time": {"from": "now-15m", "to": "now"},
        "refresh": "10s",
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "templating": {"list": []},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    """The dashboard as the exact text committed in `stage1-dashboard.json`."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="don't write; exit 1 if the JSON is out of date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DASHBOARD_PATH.read_text(encoding="utf-8") if DASHBOARD_PATH.exists() else ""
        if current != text:
            print(f"{DASHBOARD_PATH.name} is out of date: run {Path(__file__).name}")
            return 1
        print(f"{DASHBOARD_PATH.name} is up to date")
        return 0
    DASHBOARD_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DASHBOARD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
