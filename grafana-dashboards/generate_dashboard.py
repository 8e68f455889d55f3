"""Generate the Grafana dashboards of the sandbox, one JSON file per stage.

- `stage1-dashboard.json`, "Dice Roller - Stage 1": the dice-roller alone;
- `stage2-dashboard.json`, "Dice Roller - Stage 2": the frontend in front of it, the
  call between the two, the service graph, and one request followed across both;
- `stage3-dashboard.json`, "Dice Roller - Stage 3": the die-service behind the
  dice-roller, the eight dice it owns, the roller's call to it and how that call fails,
  and one roll followed across the three services;
- `stage4-dashboard.json`, "Dice Roller - Stage 4": the batches of `/roll-async`, their
  size, the rolls in flight, a batch's latency against a single roll's, the rolls and
  failures of batches, and the batch's trace and log line;
- `stage5-dashboard.json`, "Dice Roller - Stage 5": the dice in PostgreSQL, the
  database as the die-service sees it and as it sees itself, the die-service → dice
  edge of the service graph, and the lines that say the database did not answer;
- `host-dashboard.json`, "Host and Containers": stage 5's node_exporter (the host's
  CPU, memory, network and load) and cAdvisor (each container's CPU, memory and network).

The JSON Grafana loads is long and repetitive; the decisions behind it are few. This
script keeps the decisions readable (one function per panel: its query, unit and
explanation) and writes the JSON that the stack provisions into Grafana.

    python grafana-dashboards/generate_dashboard.py          # rewrite the JSON files
    python grafana-dashboards/generate_dashboard.py --check  # exit 1 if one is stale

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

JSON = dict[str, Any]

DASHBOARD_PATH = Path(__file__).with_name("stage1-dashboard.json")
STAGE2_DASHBOARD_PATH = Path(__file__).with_name("stage2-dashboard.json")
STAGE3_DASHBOARD_PATH = Path(__file__).with_name("stage3-dashboard.json")
STAGE4_DASHBOARD_PATH = Path(__file__).with_name("stage4-dashboard.json")
STAGE5_DASHBOARD_PATH = Path(__file__).with_name("stage5-dashboard.json")
HOST_DASHBOARD_PATH = Path(__file__).with_name("host-dashboard.json")
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


def traceql(query: str, *, limit: int) -> JSON:
    """A TraceQL search: its matching traces as a table, the newest `limit` of them."""
    return {
        "datasource": TEMPO,
        "refId": "A",
        "queryType": "traceql",
        "query": query,
        "limit": limit,
        "tableType": "traces",
    }


def service_map() -> JSON:
    """Tempo's service graph: Grafana reads the `traces_service_graph_*` series from the
    Prometheus data source named in the Tempo data source's `serviceMap`."""
    return {"datasource": TEMPO, "refId": "A", "queryType": "serviceMap"}


def quantiles(
    histogram: str,
    selector: str,
    qs: Sequence[float],
    by: Sequence[str] = (),
    *,
    exemplars: bool = True,
) -> list[JSON]:
    """One `histogram_quantile` per quantile (refs A, B, ...): a line per quantile, and
    per value of the `by` labels, legend "p99" or "p99 {{label}}". An empty `selector`
    takes every series of the histogram. Exemplars on, unless the histogram has none."""
    grouping = ", ".join(("le", *by))
    labels = "".join(f" {{{{{label}}}}}" for label in by)
    buckets = f"{histogram}_bucket{{{selector}}}" if selector else f"{histogram}_bucket"
    return [
        prom(
            f"histogram_quantile({q}, sum by ({grouping}) (rate({buckets}[$__rate_interval])))",
            f"p{round(q * 100)}{labels}",
            "ABCDEFGH"[number],
            exemplar=exemplars,
        )
        for number, q in enumerate(qs)
    ]


def requests_by_status(selector: str) -> JSON:
    """Requests per second by status class (2xx, 4xx, 5xx), from the shared HTTP counter."""
    return prom(
        f"sum by (status) (rate(http_requests_total{{{selector}}}[$__rate_interval]))",
        "{{status}}",
    )


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
    overrides: list[JSON] | None = None,
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
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
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
STACKED = {"min": 0, "custom": {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 25}}


def timeseries(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[JSON],
    *,
    unit: str,
    defaults: JSON,
    datasource: JSON = PROMETHEUS,
    overrides: list[JSON] | None = None,
) -> JSON:
    """A graph over time, its legend below, its tooltip listing every line."""
    return panel(
        "timeseries",
        title,
        description,
        grid,
        targets,
        datasource,
        unit=unit,
        defaults=defaults,
        overrides=overrides,
        options={"legend": TIMESERIES_LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
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


# --- Stage 1: the dice-roller alone -----------------------------------------------------


def request_rate(y: int) -> JSON:
    return timeseries(
        "Request Rate",
        "Requests per second answered by `/roll`, stacked by status class (2xx, 5xx). "
        "The top of the stack is the total load. `rate()` turns the ever-growing counter "
        "`http_requests_total` into a per-second speed, averaged over `$__rate_interval` "
        "(at least four scrapes, so a late scrape never leaves a gap).",
        (0, y, 8, 8),
        [requests_by_status(ROLL)],
        unit="reqps",
        defaults=STACKED,
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
    return timeseries(
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
    )


def request_duration(y: int) -> JSON:
    return timeseries(
        "Request Duration",
        "How long `/roll` takes: half the requests finish below p50, 95 % below p95, 99 % "
        "below p99. Each roll waits a random delay up to the configured maximum (1 s by "
        "default), so p50 sits near half of it and p99 near all of it. "
        "`histogram_quantile` estimates the percentiles from the buckets of "
        "`http_request_duration_seconds`. The dots are exemplars: real requests, each "
        "carrying its trace id; hover one and follow the link to open its trace in Tempo.",
        (0, y, 12, 8),
        quantiles("http_request_duration_seconds", ROLL, (0.5, 0.95, 0.99)),
        unit="s",
        defaults={"min": 0},
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


# --- Stage 2: the frontend in front of the dice-roller ----------------------------------
#
# One click on the page is one trace through three services: the browser's fetch
# (`frontend-web`), the frontend's request and its call (`frontend`), the roll
# (`dice-roller`). Both Python services expose the same HTTP families, so every
# Prometheus query here names its scrape job: Alloy names it after the compose service.

FRONTEND = 'job="frontend"'
API_ROLL = f'{FRONTEND}, handler="/api/roll"'  # the page's roll API; "/" is the page itself
UPSTREAM = f'{FRONTEND}, upstream="dice-roller"'
FRONTEND_SERVICE = "frontend"  # OpenTelemetry service.name of the frontend's spans
FRONTEND_CONTAINER = "frontend"
SLOW_SECONDS = 1  # a roll waits up to 1 s on the dice-roller: longer is slow
# Both services' lines; the textbox below narrows them to one trace. Empty, the line
# filter `|= ""` keeps every line.
TRACE_LOGS = f'{{container_name=~"{FRONTEND_CONTAINER}|{CONTAINER}"}} |= "$trace_id" | json'
SLOW_TRACES = (
    f'{{resource.service.name="{FRONTEND_SERVICE}" && kind=server && duration > {SLOW_SECONDS}s}}'
    f' && {{resource.service.name="{SERVICE_NAME}"}}'
)
TRACE_ID_VARIABLE: JSON = {
    "type": "textbox",
    "name": "trace_id",
    "label": "Trace ID",
    "description": "A trace id (32 hex digits) to show the logs of; empty shows all lines.",
    "query": "",
    "current": {"selected": False, "text": "", "value": ""},
    "options": [{"selected": True, "text": "", "value": ""}],
    "hide": 0,
}


def frontend_request_rate(y: int) -> JSON:
    return timeseries(
        "Frontend Request Rate",
        "Roll requests per second that the frontend answered on `/api/roll`, stacked by "
        "status class: the top of the stack is the page's load on the dice-roller. 5xx "
        "are rolls the dice-roller did not give (the frontend answers 502, 503 or 504), "
        "4xx are requests for a die that does not exist. From the frontend's "
        '`http_requests_total{job="frontend"}`; the page itself (`/`) is not counted.',
        (0, y, 8, 8),
        [requests_by_status(API_ROLL)],
        unit="reqps",
        defaults=STACKED,
    )


def frontend_error_ratio(y: int) -> JSON:
    errors = f'sum(rate(http_requests_total{{{API_ROLL}, status="5xx"}}[$__rate_interval]))'
    total = f"sum(rate(http_requests_total{{{API_ROLL}}}[$__rate_interval]))"
    return timeseries(
        "Frontend Error Ratio",
        "Share of `/api/roll` requests the frontend answered with a server error (5xx), "
        "over `$__rate_interval`. The risky die fails one roll in ten on the dice-roller, "
        "and the frontend passes each failure on as a 502, so an even mix sits near 5 % "
        "and only risky rolls near 10 % (the dashed line). Above it, something else "
        "fails: timeouts, an unreachable dice-roller (see the upstream panels below). "
        "`or vector(0)` shows 0 % rather than nothing before the first error.",
        (8, y, 8, 8),
        [prom(f"({errors} or vector(0))\n/\n{total}", "error ratio")],
        unit="percentunit",
        defaults={
            "min": 0,
            "max": 1,
            "decimals": 1,
            "thresholds": thresholds((None, "green"), (0.1, "red")),
            "custom": {"thresholdsStyle": {"mode": "dashed"}},
        },
    )


def frontend_request_duration(y: int) -> JSON:
    return timeseries(
        "Frontend Request Duration",
        "How long a roll takes as the page sees it: the frontend's whole `/api/roll` "
        "request, the call to the dice-roller included. Half the requests finish below "
        "p50, 95 % below p95, 99 % below p99, estimated by `histogram_quantile` from the "
        "buckets of `http_request_duration_seconds`. The dots are exemplars: hover one and "
        "follow its link to open that request's trace in Tempo, all three services in it.",
        (16, y, 8, 8),
        quantiles("http_request_duration_seconds", API_ROLL, (0.5, 0.95, 0.99)),
        unit="s",
        defaults={"min": 0},
    )


def upstream_duration(y: int) -> JSON:
    return timeseries(
        "Upstream Duration by Outcome",
        "How long the frontend waited for the dice-roller, p50 and p99, one pair of lines "
        "per outcome: `success`, or why no roll came back (`timeout`, `unreachable`, "
        "`error_status`, `bad_answer`). From `frontend_upstream_request_duration_seconds`. "
        "The gap between this and Frontend Request Duration is the frontend's own time. "
        "Timeouts sit at the frontend's limit (3 s by default); an outcome that never "
        "happened draws no line. The dots are exemplars, each a trace.",
        (0, y, 12, 8),
        quantiles(
            "frontend_upstream_request_duration_seconds", UPSTREAM, (0.5, 0.99), by=("outcome",)
        ),
        unit="s",
        defaults={"min": 0},
    )


def upstream_errors(y: int) -> JSON:
    return timeseries(
        "Upstream Errors by Reason",
        "Calls to the dice-roller per second that gave no roll, stacked by reason: "
        "`error_status` (it answered an error, as the risky die does one roll in ten), "
        "`timeout` (no answer in time), `unreachable` (no connection) and `bad_answer` "
        "(200 without a roll). From `frontend_upstream_errors_total`; every reason exists "
        "at zero from the frontend's start, so the first error shows as a rise.",
        (12, y, 12, 8),
        [
            prom(
                f"sum by (reason) (rate(frontend_upstream_errors_total{{{UPSTREAM}}}"
                "[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
        defaults={**STACKED, "color": {"mode": "palette-classic"}},
    )


STAGE2_CALLS = "`frontend-web` (the browser) calls the `frontend`, which calls the `dice-roller`."


def service_graph(y: int, calls: str = STAGE2_CALLS) -> JSON:
    """The service graph; `calls` says in words which services call which at the stage."""
    return panel(
        "nodeGraph",
        "Service Graph",
        f"Who calls whom, drawn from the traces: {calls} Alloy pairs each client span with the "
        "server span it caused and counts the edge in `traces_service_graph_request_total` "
        "and `..._failed_total`; Grafana's Tempo data source reads them from Prometheus "
        "(its `serviceMap` setting). Each node shows its request rate and mean time, its "
        "ring the share of failed calls (red). Click a node for its traces.",
        (0, y, 12, 12),
        [service_map()],
        TEMPO,
        options={"nodes": {}, "edges": {}},
    )


def service_graph_rates(y: int) -> JSON:
    edge = "{{client}} → {{server}}"
    return timeseries(
        "Calls Between Services",
        "The service graph's edges over time: calls per second from each client to each "
        "server, and below them the failed ones (the server span ended in error). From "
        "`traces_service_graph_request_total` and `traces_service_graph_request_failed_total`, "
        "which Alloy writes into Prometheus from the traces every 5 s.",
        (12, y, 12, 12),
        [
            prom(
                "sum by (client, server) "
                "(rate(traces_service_graph_request_total[$__rate_interval]))",
                edge,
            ),
            prom(
                "sum by (client, server) "
                "(rate(traces_service_graph_request_failed_total[$__rate_interval]))",
                f"{edge} failed",
                "B",
            ),
        ],
        unit="reqps",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def slow_traces(y: int) -> JSON:
    return panel(
        "table",
        "Slow Cross-Service Traces",
        f"The latest traces in which the frontend's request took over {SLOW_SECONDS} s "
        "and the roll reached the dice-roller, found by the TraceQL search "
        f"`{SLOW_TRACES}`. Click a trace id to open its waterfall: the browser's fetch, "
        "the frontend's request and call, the dice-roller's roll, and where the time "
        "went. Copy the id into the Trace ID box at the top to see its log lines below.",
        (0, y, 24, 8),
        [traceql(SLOW_TRACES, limit=20)],
        TEMPO,
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    )


def trace_logs(y: int) -> JSON:
    return logs_panel(
        "Logs of One Trace",
        "The JSON log lines of both services, the frontend's and the dice-roller's, newest "
        "first. Type a trace id in the **Trace ID** box at the top (from the table above, "
        "an exemplar, or the page's trace link): only the lines of that trace remain, one "
        "per service it crossed, each with its `trace_id` and `span_id`. Empty, the box "
        "keeps every recent line of both. Expand a line and click **Open trace** for its "
        "trace in Tempo.",
        TRACE_LOGS,
        (0, y, 24, 12),
    )


# --- Stage 3: the die-service behind the dice-roller ------------------------------------
#
# The die-service owns the dice; the dice-roller asks it what a die is on every roll.
# A roll's trace gains a second hop (frontend → dice-roller → die-service). The dice's
# families are the dice-roller's alone, the lookups the die-service's: only the HTTP
# histogram, which every service exposes, needs its job named.

DIE_SERVICE = "die-service"  # its compose service (the Prometheus job) and service.name
DIE_SERVICE_CONTAINER = "die-service"
LOOKUP = f'job="{DIE_SERVICE}", handler="/dice/{{name}}"'  # the route of one die's lookup
STAGE3_CALLS = (
    "`frontend-web` (the browser) calls the `frontend`, which calls the `dice-roller`, "
    "which asks the `die-service` what the die is on every roll. The thin `frontend` → "
    "`die-service` edge is the page fetching the list of dice (kept ten seconds)."
)
STAGE3_TRACE_LOGS = (
    f'{{container_name=~"{FRONTEND_CONTAINER}|{CONTAINER}|{DIE_SERVICE_CONTAINER}"}}'
    ' |= "$trace_id" | json'
)
ROLLS_WITH_LOOKUP = (
    f'{{resource.service.name="{SERVICE_NAME}" && kind=server}}'
    f' && {{resource.service.name="{DIE_SERVICE}"}}'
)
# The dice-roller's server spans of the rolls the die-service left without a die: the
# roller names the failure on its span (`upstream.failure`: timeout, unreachable...).
FAILED_LOOKUPS = f'{{resource.service.name="{SERVICE_NAME}" && span.upstream.failure != nil}}'


def rolls_by_die_rate(y: int) -> JSON:
    return timeseries(
        "Rolls by Die",
        "Rolls per second, stacked by die: the eight dice the die-service has, fair and "
        "risky as at stage 1, d4 to d20 new. The top of the stack is the dice-roller's "
        "whole load, failed rolls included. From `dice_rolls_total`, summed over results. "
        "fair and risky exist at zero from the start; a die the die-service added gets its "
        "line from its first roll on.",
        (0, y, 8, 8),
        [
            prom(
                "sum by (die_type) (rate(dice_rolls_total[$__rate_interval]))",
                "{{die_type}}",
            )
        ],
        unit="reqps",
        defaults={**STACKED, "color": {"mode": "palette-classic"}},
    )


def roll_duration_by_die(y: int) -> JSON:
    return timeseries(
        "Roll Duration p99 by Die",
        "How long a roll takes, one line per die: 99 % of its rolls finish below it. Each "
        "die waits a random delay up to the maximum the die-service gives it (fair 1 s and "
        "risky 1 s, as at stage 1; d4 0.2 s, d6 0.5 s, d8 0.6 s, d10 0.8 s, d12 1 s, d20 "
        "1.4 s), so each line sits near its die's maximum, the d20's highest. The lookup is "
        "included but "
        "takes milliseconds (see Die-Service Lookup Duration): the wait is the "
        "dice-roller's own. `histogram_quantile` over the buckets of "
        "`dice_roll_duration_seconds`; the dots are exemplars, each a roll's trace.",
        (8, y, 8, 8),
        quantiles("dice_roll_duration_seconds", "", (0.99,), by=("die_type",)),
        unit="s",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def error_ratio_by_die(y: int) -> JSON:
    rolls = "sum by (die_type) (rate(dice_rolls_total[$__rate_interval]))"
    errors = 'sum by (die_type) (rate(dice_rolls_total{result="error"}[$__rate_interval]))'
    return timeseries(
        "Error Ratio by Die",
        "Share of each die's rolls that failed, over `$__rate_interval`: "
        '`dice_rolls_total{result="error"}` divided by all of that die\'s rolls. Each die '
        "fails at the rate the die-service gives it: d4 0 %, d6 0.5 %, d8 1 %, d10 2 %, "
        "d12 3 %, d20 5 %; fair 0 % and risky 10 % unless the flag file says otherwise, as "
        "at stage 1. A new die's error series starts at its first failure, so `or 0 * ...` "
        "draws 0 % for a die that has not failed yet rather than no line. Rolls the "
        "die-service left without a die are not here: see Die-Service Failures by Reason.",
        (16, y, 8, 8),
        [prom(f"({errors}\nor\n0 * {rolls})\n/\n{rolls}", "{{die_type}}")],
        unit="percentunit",
        defaults={"min": 0, "decimals": 1, "color": {"mode": "palette-classic"}},
    )


def lookups_by_outcome(y: int) -> JSON:
    return timeseries(
        "Die Lookups by Outcome",
        "Lookups per second the die-service answered on `GET /dice/{name}`, stacked by "
        "outcome: `found`, or `unknown` when no die has that name (the dice-roller then "
        "answers 422). Nothing is cached: one lookup per roll, so `found` follows Rolls by "
        "Die. From the die-service's `die_service_lookups_total`. An unknown name is "
        'counted as `die="other"`: a label taking any name a client sends would mint a '
        "series per name.",
        (0, y, 8, 8),
        [
            prom(
                "sum by (outcome) (rate(die_service_lookups_total[$__rate_interval]))",
                "{{outcome}}",
            )
        ],
        unit="reqps",
        defaults={**STACKED, "color": {"mode": "palette-classic"}},
    )


def lookup_duration(y: int) -> JSON:
    return timeseries(
        "Die-Service Lookup Duration",
        "How long the die-service takes to answer `GET /dice/{name}`, p50 and p99, as it "
        "measures itself: `http_request_duration_seconds` with "
        f"`{LOOKUP}`. Every service exposes this histogram; the job picks the die-service's "
        "scrape. The dice are in memory, so a lookup takes milliseconds, a sliver of a roll "
        "(compare Roll Duration p99 by Die). The dots are exemplars, each a lookup's trace.",
        (8, y, 8, 8),
        quantiles("http_request_duration_seconds", LOOKUP, (0.5, 0.99)),
        unit="s",
        defaults={"min": 0},
    )


def die_service_failures(y: int) -> JSON:
    return timeseries(
        "Die-Service Failures by Reason",
        "Rolls per second that got no die from the die-service, as the dice-roller saw "
        "them, stacked by reason: `unreachable` (no connection: it is down, the roller "
        "answers 503), `timeout` (no answer within `DICE_DIE_SERVICE_TIMEOUT_SECONDS`, "
        "504), `error_status` (it answered an error, 502) and `bad_answer` (200 without a "
        "die, 502). From the dice-roller's `dice_die_service_errors_total`; every reason "
        "exists at zero from the start. The service graph cannot count these: it pairs a "
        "client span with the server span it caused, and a call that never reached the "
        "die-service has no server span. Click a point for these rolls' traces in Tempo.",
        (16, y, 8, 8),
        [
            prom(
                "sum by (reason) (rate(dice_die_service_errors_total[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
        defaults={
            **STACKED,
            "color": {"mode": "palette-classic"},
            "links": [
                {
                    "title": "Search the rolls the die-service failed in Tempo",
                    "url": explore_link(TEMPO, FAILED_LOOKUPS),
                }
            ],
        },
    )


def rolls_with_lookup(y: int) -> JSON:
    return panel(
        "table",
        "Rolls That Asked the Die-Service",
        "The latest traces in which a roll of the dice-roller reached the die-service, "
        "from the page or straight at the dice-roller, found by the TraceQL search "
        f"`{ROLLS_WITH_LOOKUP}`. Click a trace id to open its waterfall: under the "
        "dice-roller's `GET /roll`, its `GET` call, and under that the die-service's "
        "`GET /dice/{name}` with `die.name` and `die.lookup`. The call takes milliseconds; "
        "the roll's wait is the dice-roller's own. Copy the id into the Trace ID box at "
        "the top to see its log lines below.",
        (0, y, 24, 8),
        [traceql(ROLLS_WITH_LOOKUP, limit=20)],
        TEMPO,
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    )


def stage3_trace_logs(y: int) -> JSON:
    return logs_panel(
        "Logs of One Trace",
        "The JSON log lines of the three services, the frontend's, the dice-roller's and "
        "the die-service's, newest first. Type a trace id in the **Trace ID** box at the "
        "top (from the table above, an exemplar, or the page's trace link): only the lines "
        'of that trace remain, one per service it crossed: the die-service\'s "Die found", '
        'the dice-roller\'s "Roll completed" (or "Die unavailable" when the lookup '
        "failed), and the frontend's when the roll came from the page. Empty, the box keeps "
        "every recent line of the three. Expand a line and click **Open trace** for its "
        "trace in Tempo.",
        STAGE3_TRACE_LOGS,
        (0, y, 24, 12),
    )


# --- Stage 4: many dice at once ---------------------------------------------------------
#
# Stage 3's services; the dice-roller's `/roll-async` rolls N dice of one die at once
# (asyncio.gather), each roll a `roll <die>` span under the request's server span. Its
# families (`dice_batch_size`, `dice_rolls_in_flight`) are the dice-roller's alone, and
# its routes (`/roll-async`, `/roll`) too: no query needs a job. What the metrics cannot
# tell apart, a batch's roll from a single one, its log line "Batch rolled" can.

ROLL_ASYNC = 'handler="/roll-async"'  # the batch route; the frontend's is /api/roll-async
BATCH_AND_SINGLE = 'handler=~"/roll-async|/roll"'
BATCH_ROLLED = "Batch rolled"  # the dice-roller's one line per batch
BATCH_LOGS = (
    f'{{container_name="{CONTAINER}"}} |= "{BATCH_ROLLED}" | json | message="{BATCH_ROLLED}"'
)
# Only the three fields it needs: a label per field of the line would make each line a
# series of its own before the sum.
FAILED_IN_BATCHES = (
    f'sum by (die_type) (sum_over_time({{container_name="{CONTAINER}"}} |= "{BATCH_ROLLED}"'
    f' | json message, die_type, failed | message="{BATCH_ROLLED}" | unwrap failed [$__auto]))'
)
BATCHES = f'{{resource.service.name="{SERVICE_NAME}" && kind=server && name="GET /roll-async"}}'
IN_BATCHES = "in batches"  # the dashed line over the stack of Rolls by Die


def batches_per_second(y: int) -> JSON:
    return timeseries(
        "Batches per Second",
        "Batches per second the dice-roller answered on `/roll-async`, stacked by status "
        "class: 2xx (at least one roll of the batch succeeded), 5xx (every roll failed, "
        "500, or the die-service failed, 502 to 504), 4xx (an unknown die, or `times` "
        'not 1 to 20). One click on "Roll them all" is one batch, however many dice. '
        'From the dice-roller\'s `http_requests_total{handler="/roll-async"}`: the route '
        "is the dice-roller's alone (the page's is `/api/roll-async`), so no job is named.",
        (0, y, 8, 8),
        [requests_by_status(ROLL_ASYNC)],
        unit="reqps",
        defaults=STACKED,
    )


def batch_size(y: int) -> JSON:
    size = "dice_batch_size"
    mean = f"sum(rate({size}_sum[$__rate_interval]))\n/\nsum(rate({size}_count[$__rate_interval]))"
    return timeseries(
        "Batch Size",
        "How many dice a batch rolled (`times`), from the histogram `dice_batch_size`, "
        "observed once per batch once its die is known: p50 and p99 over "
        "`$__rate_interval`, and the mean (dice rolled in batches divided by batches, "
        "`_sum` / `_count`). Its buckets are 1, 2, 5, 10 and 20: `histogram_quantile` "
        "knows only the bucket a batch fell in and interpolates inside it, so steady "
        "batches of 5 read as p50 3.5 and p99 near 5; the mean is exact. The dots are "
        "exemplars, each a batch's trace.",
        (8, y, 8, 8),
        [*quantiles(size, "", (0.5, 0.99)), prom(mean, "mean", "C")],
        unit="short",
        defaults={"min": 0, "max": 20, "decimals": 1, "color": {"mode": "palette-classic"}},
    )


def rolls_in_flight(y: int) -> JSON:
    return timeseries(
        "Rolls in Flight",
        "The most rolls of batches under way at once: `max_over_time` of the gauge "
        "`dice_rolls_in_flight` over `$__rate_interval`. Each roll of a batch adds one "
        "as it starts and takes it back as it ends, so a batch of 5 lifts the gauge to 5 "
        "until its rolls end, then it falls back to 0. Prometheus reads the gauge at each "
        "scrape (every 5 s) and a batch lasts about one roll (up to 1.4 s for a d20): "
        "only a scrape that lands during a batch sees it, and `max_over_time` keeps that "
        'peak on the graph for the whole window. Click "Roll them all" a few times, or '
        "run traffic, to see it rise. Single rolls (`/roll`) are not counted.",
        (16, y, 8, 8),
        [prom("max(max_over_time(dice_rolls_in_flight[$__rate_interval]))", "most in flight")],
        unit="short",
        defaults={"min": 0, "decimals": 0},
    )


def batch_against_single(y: int) -> JSON:
    return timeseries(
        "Batch vs Single Roll Duration",
        "How long a request takes, p50 and p99, for a batch (`/roll-async`) and for a "
        "single roll (`/roll`), from `http_request_duration_seconds`. The rolls of a batch "
        "wait at the same time (`asyncio.gather`), so a batch lasts as long as its "
        "slowest roll, not the sum of its rolls: a batch of 5 d20s takes about one d20 "
        "roll, not five. Its p50 sits above the single roll's (the slowest of five "
        "random waits is longer than a typical one), its p99 near the die's longest "
        "wait, as the single roll's does. The dots are exemplars; click a point for the "
        "batches in Tempo, their `roll` spans side by side.",
        (0, y, 12, 8),
        quantiles("http_request_duration_seconds", BATCH_AND_SINGLE, (0.5, 0.99), by=("handler",)),
        unit="s",
        defaults={
            "min": 0,
            "color": {"mode": "palette-classic"},
            "links": [
                {"title": "Search the batches in Tempo", "url": explore_link(TEMPO, BATCHES)}
            ],
        },
    )


def rolls_batched_and_single(y: int) -> JSON:
    return timeseries(
        "Rolls by Die",
        "Rolls per second, stacked by die, from `dice_rolls_total`: a roll of a batch and "
        "a single roll count alike there, so by die the two cannot be told apart. The "
        f"dashed line, *{IN_BATCHES}*, is the dice rolled in batches per second, every "
        "die together: `dice_batch_size_sum` grows by N with each batch of N. Between it "
        "and the top of the stack: the single rolls (`/roll`).",
        (12, y, 6, 8),
        [
            prom("sum by (die_type) (rate(dice_rolls_total[$__rate_interval]))", "{{die_type}}"),
            prom("sum(rate(dice_batch_size_sum[$__rate_interval]))", IN_BATCHES, "B"),
        ],
        unit="reqps",
        defaults={**STACKED, "color": {"mode": "palette-classic"}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": IN_BATCHES},
                "properties": [
                    {"id": "custom.stacking", "value": {"mode": "none", "group": "A"}},
                    {"id": "custom.fillOpacity", "value": 0},
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
                ],
            }
        ],
    )


def failed_in_batches(y: int) -> JSON:
    return timeseries(
        "Failed Rolls in Batches",
        f'Rolls of batches that failed, by die, counted from the batches\' "{BATCH_ROLLED}" '
        "lines: each says how many of its rolls failed (`failed`), and Loki adds them up "
        "per step of the graph (`sum_over_time` of `| unwrap failed` over `$__auto`, the "
        "line's `message`, `die_type` and `failed` its only fields read), so "
        "a bar is the failed rolls of that step. The metrics cannot tell these from "
        '`dice_rolls_total{result="error"}`, which counts single rolls too. A batch '
        "fails as a whole (500, logged at ERROR) only when every one of its rolls failed.",
        (18, y, 6, 8),
        [{**loki(FAILED_IN_BATCHES), "legendFormat": "{{die_type}}"}],
        unit="short",
        defaults={
            "min": 0,
            "decimals": 0,
            "color": {"mode": "palette-classic"},
            "custom": {
                "drawStyle": "bars",
                "fillOpacity": 50,
                "stacking": {"mode": "normal", "group": "A"},
            },
        },
        datasource=LOKI,
    )


def batch_traces(y: int) -> JSON:
    return panel(
        "table",
        "Batches in Tempo",
        f"The latest batches, found by the TraceQL search `{BATCHES}`. Click a trace id "
        "to open its waterfall: under the dice-roller's `GET /roll-async`, its `GET` call "
        "to the die-service (once for the whole batch), then one `roll d20` span per die, "
        "side by side, overlapping: they wait at the same time, and the request ends with "
        "the slowest. Each roll's span has `die.result` and `die.value`, the request's "
        "`batch.size` and `batch.failed`.",
        (0, y, 24, 8),
        [traceql(BATCHES, limit=20)],
        TEMPO,
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    )


def batch_logs(y: int) -> JSON:
    return logs_panel(
        "Batch Rolled Logs",
        f'The dice-roller\'s "{BATCH_ROLLED}" lines, newest first: one per batch, with its '
        "die (`die_type`), how many dice (`times`), how many failed (`failed`), the values "
        "rolled (`roll_values`), the feature flags away from their defaults "
        "(`feature_flags`), and the batch's `trace_id`; at ERROR when every roll failed. "
        "Expand a line and click **Open trace** for its trace in Tempo: the rolls side by "
        "side.",
        BATCH_LOGS,
        (0, y, 24, 10),
    )


# --- Stage 5: the dice in PostgreSQL ----------------------------------------------------
#
# Stage 3's three services, the die-service's dice now rows of a PostgreSQL table, read
# through a pool of connections. Two views of one database: the die-service's
# (`die_service_db_*`, its pool and its queries) and the database's own
# (postgres_exporter's `pg_*`, only families Debian's 0.11.1 and compose's v0.20.1
# both have). The traces add a third: Alloy's service graph draws the database as a
# node, named after the `db.name` of the die-service's query spans.

DATABASE = "dice"  # POSTGRES_DB: the database's name, its `datname`, its service-graph node
DICE_DATABASE = f'datname="{DATABASE}"'  # the exporter reports every database of the server
DATABASE_EDGE = f'client="{DIE_SERVICE}", server="{DATABASE}", connection_type="database"'
POSTGRES_CONTAINER = "postgres"
UNAVAILABLE = "Database unavailable"  # the die-service's ERROR line when the database fails
DATABASE_UNAVAILABLE_LOGS = (
    f'{{container_name="{DIE_SERVICE_CONTAINER}"}} |= "{UNAVAILABLE}" | json'
    f' | message="{UNAVAILABLE}"'
)
POSTGRES_LOGS = f'{{container_name="{POSTGRES_CONTAINER}"}}'
# The die-service's server spans of the lookups the database failed: it names the
# failure on its span (`database.failure`: unreachable, timeout, error).
FAILED_DATABASE_LOOKUPS = (
    f'{{resource.service.name="{DIE_SERVICE}" && span.database.failure != nil}}'
)
DOWN_OR_UP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "Down", "color": "red", "index": 0},
            "1": {"text": "Up", "color": "green", "index": 1},
        },
    }
]


def query_duration(y: int) -> JSON:
    return timeseries(
        "Query Duration by Query",
        "How long the die-service's queries take in PostgreSQL, p50 and p99, one pair of "
        "lines per query: `one_die` (every lookup, so every roll) and `all_dice` (the "
        "page's list of dice). Timed from sending the query to its rows, the pool's wait "
        "apart (see Pool Wait p99). A healthy database answers in a millisecond or less; "
        "a slow one shows here first, up to the die-service's limit "
        "(`DIE_SERVICE_DATABASE_TIMEOUT_SECONDS`, 0.4 s), past which the lookup fails "
        "with `timeout`. From `die_service_db_query_duration_seconds`; the dots are "
        "exemplars, each a query's trace.",
        (0, y, 6, 8),
        quantiles("die_service_db_query_duration_seconds", "", (0.5, 0.99), by=("query",)),
        unit="s",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def pool_connections(y: int) -> JSON:
    return timeseries(
        "Pool Connections",
        "The die-service's pool of connections to PostgreSQL: those open, by state, "
        "`in_use` (a query on it now) or `idle` (kept for the next lookup), and `max`, "
        "the most the pool opens (`DIE_SERVICE_DATABASE_POOL_SIZE`). Connections are "
        "opened on demand and closed after a minute idle. `in_use` at `max` means "
        "lookups queue for a connection: Pool Wait p99 rises. From "
        "`die_service_db_connections` and `die_service_db_connections_max`, read at each "
        "scrape.",
        (6, y, 6, 8),
        [
            prom("sum by (state) (die_service_db_connections)", "{{state}}"),
            prom("max(die_service_db_connections_max)", "max", "B"),
        ],
        unit="short",
        defaults={"min": 0, "decimals": 0, "color": {"mode": "palette-classic"}},
    )


def pool_wait(y: int) -> JSON:
    return timeseries(
        "Pool Wait p99",
        "How long a lookup waited for a connection from the pool: 99 % waited less. Near "
        "zero while the pool has an idle connection; opening a new one shows here too "
        "(a few milliseconds). High while Pool Connections is at its max: more lookups "
        "at once than connections. A wait past the die-service's limit (0.4 s) fails "
        "the lookup with `timeout`. From `die_service_db_pool_wait_seconds`.",
        (12, y, 6, 8),
        quantiles("die_service_db_pool_wait_seconds", "", (0.99,), exemplars=False),
        unit="s",
        defaults={"min": 0},
    )


def database_errors(y: int) -> JSON:
    return timeseries(
        "Database Errors by Reason",
        "Lookups per second the database failed, as the die-service saw them, stacked "
        "by reason: `unreachable` (no connection: PostgreSQL is down or refuses), "
        "`timeout` (no connection or no answer within 0.4 s) and `error` (the query "
        "failed, or a row is not a die). Each one is a 503 from the die-service, which "
        "the dice-roller passes on as a 502. From `die_service_db_errors_total`; every "
        "reason exists at zero from the start. Click a point for the die-service's "
        "failed lookups in Tempo (`database.failure` on their span).",
        (18, y, 6, 8),
        [
            prom(
                "sum by (reason) (rate(die_service_db_errors_total[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
        defaults={
            **STACKED,
            "color": {"mode": "palette-classic"},
            "links": [
                {
                    "title": "Search the lookups the database failed in Tempo",
                    "url": explore_link(TEMPO, FAILED_DATABASE_LOOKUPS),
                }
            ],
        },
    )


def postgres_up(y: int) -> JSON:
    return panel(
        "stat",
        "PostgreSQL Up",
        "Whether postgres_exporter could connect to PostgreSQL at its last scrape: `pg_up` "
        "is 1 (Up) or 0 (Down). The exporter itself keeps answering while the database "
        "is down, so this says whether the database is there, not the exporter. Down "
        "here and `unreachable` in Database Errors by Reason go together.",
        (0, y, 6, 8),
        [prom("min(pg_up)", "pg_up", instant=True)],
        unit="none",
        defaults={
            "decimals": 0,
            "mappings": DOWN_OR_UP,
            "thresholds": thresholds((None, "red"), (1, "green")),
        },
        options={
            "reduceOptions": SINGLE_VALUE,
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "center",
        },
    )


def backends(y: int) -> JSON:
    return timeseries(
        "Backends",
        f"Connections to the `{DATABASE}` database as PostgreSQL counts them, one server "
        "process each (`pg_stat_database_numbackends`), beside the die-service's pool "
        "(all its open connections, `die_service_db_connections`). The difference is the "
        "other clients: postgres_exporter's own connection, a `psql` someone opened. "
        "Backends far above the pool point at a client holding connections.",
        (6, y, 6, 8),
        [
            prom(f"sum(pg_stat_database_numbackends{{{DICE_DATABASE}}})", "backends"),
            prom("sum(die_service_db_connections)", "die-service pool", "B"),
        ],
        unit="short",
        defaults={"min": 0, "decimals": 0, "color": {"mode": "palette-classic"}},
    )


def transactions(y: int) -> JSON:
    return timeseries(
        "Transactions",
        f"Transactions per second in the `{DATABASE}` database: committed, and rolled "
        "back. Every query the die-service runs is a transaction of its own, so commits "
        "follow the lookups (Die Lookups by Outcome at stage 3), plus the exporter's "
        "scrapes. Rollbacks should stay near zero: a rise is queries failing in the "
        "database. From postgres_exporter's `pg_stat_database_xact_commit` and "
        "`pg_stat_database_xact_rollback`.",
        (12, y, 6, 8),
        [
            prom(
                f"sum(rate(pg_stat_database_xact_commit{{{DICE_DATABASE}}}[$__rate_interval]))",
                "commits",
            ),
            prom(
                f"sum(rate(pg_stat_database_xact_rollback{{{DICE_DATABASE}}}[$__rate_interval]))",
                "rollbacks",
                "B",
            ),
        ],
        unit="ops",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def cache_hit_ratio(y: int) -> JSON:
    hits = f"sum(rate(pg_stat_database_blks_hit{{{DICE_DATABASE}}}[$__rate_interval]))"
    reads = f"sum(rate(pg_stat_database_blks_read{{{DICE_DATABASE}}}[$__rate_interval]))"
    return timeseries(
        "Cache Hit Ratio",
        f"Share of the blocks the `{DATABASE}` database needed that PostgreSQL found in "
        "its own memory (shared buffers), over `$__rate_interval`: hits divided by hits "
        "plus reads from disk (or the OS cache), from `pg_stat_database_blks_hit` and "
        "`pg_stat_database_blks_read`. The dice table is a few rows: after the first "
        "lookups it sits in memory, and the ratio near 100 %. Below the dashed 99 % line, "
        "queries wait for the disk.",
        (18, y, 6, 8),
        [prom(f"{hits}\n/\n({hits} + {reads})", "cache hit ratio")],
        unit="percentunit",
        defaults={
            "max": 1,
            "decimals": 1,
            "thresholds": thresholds((None, "red"), (0.99, "green")),
            "custom": {"thresholdsStyle": {"mode": "dashed"}},
        },
    )


def database_calls(y: int) -> JSON:
    calls = f"sum(rate(traces_service_graph_request_total{{{DATABASE_EDGE}}}[$__rate_interval]))"
    failed = (
        f"sum(rate(traces_service_graph_request_failed_total{{{DATABASE_EDGE}}}[$__rate_interval]))"
    )
    return timeseries(
        f"Calls {DIE_SERVICE} → {DATABASE}",
        f"The `{DIE_SERVICE}` → `{DATABASE}` edge of the service graph: queries per "
        "second, and below them the failed ones (their span ended in error). A database "
        "has no spans of its own, so Alloy draws it from the die-service's query spans "
        f"alone: each `SELECT` span's `db.name` (`{DATABASE}`) names the node, and "
        "`connection_type` is `database`. From `traces_service_graph_request_total` and "
        "`..._failed_total`; `or 0 * ...` draws 0 before the first failure rather than "
        "no line. A lookup that found no connection ran no query: those are only in "
        "Database Errors by Reason.",
        (0, y, 12, 8),
        [
            prom(calls, "calls"),
            prom(f"{failed}\nor\n0 * {calls}", "failed", "B"),
        ],
        unit="reqps",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def database_call_duration(y: int) -> JSON:
    return timeseries(
        f"Call Duration {DIE_SERVICE} → {DATABASE}",
        f"How long the `{DIE_SERVICE}` → `{DATABASE}` calls take, p50 and p99, as the "
        "service graph measures them: the duration of each query span, from "
        "`traces_service_graph_request_client_seconds`. The spans' view of Query "
        "Duration by Query, which the die-service measures itself: the two should agree.",
        (12, y, 12, 8),
        quantiles(
            "traces_service_graph_request_client_seconds",
            DATABASE_EDGE,
            (0.5, 0.99),
            exemplars=False,
        ),
        unit="s",
        defaults={"min": 0},
    )


def database_unavailable_logs(y: int) -> JSON:
    return logs_panel(
        "Database Unavailable",
        f'The die-service\'s "{UNAVAILABLE}" lines, newest first: one per lookup the '
        "database failed, logged at ERROR with its `reason` (`unreachable`, `timeout`, "
        "`error`), a `detail` in words, and the lookup's `trace_id`. Empty while the "
        "database answers. Expand a line and click **Open trace** for its trace in "
        "Tempo: the dice-roller's 502, the die-service's 503 with `database.failure`, and no "
        "query span when no connection could be had.",
        DATABASE_UNAVAILABLE_LOGS,
        (0, y, 12, 10),
    )


def postgres_logs(y: int) -> JSON:
    return logs_panel(
        "PostgreSQL Server Log",
        "PostgreSQL's own log, newest first: its start (`database system is ready to "
        "accept connections`), its shutdown (`received fast shutdown request`), failed "
        "logins and queries it refused. Plain text, not JSON: the server's own format. "
        f"Alloy reads it from the `{POSTGRES_CONTAINER}` container like the services' "
        "lines. Put it beside Database Unavailable: the die-service's side of an outage, "
        "and the database's.",
        POSTGRES_LOGS,
        (12, y, 12, 10),
    )


# --- Host and containers: node_exporter and cAdvisor (stage 5) -------------------------

NODE_EXPORTER = "node-exporter"  # its compose service, the Prometheus job Alloy gives it
CADVISOR = "cadvisor"
CONTAINERS = 'name!=""'  # cAdvisor's Docker containers: `name` is the container's name
HOST_NETWORK = 'device!="lo"'  # every interface but loopback
CADVISOR_PANELS = ("Container CPU", "Container Memory", "Container Network")
"""The panels that read cAdvisor alone: compose only, since the native stack has no
Docker containers for it to watch (docs/native-stack.md)."""
COMPOSE_ONLY = (
    " cAdvisor runs with compose only: the native stack has no Docker containers, so "
    "there this panel stays empty."
)


def host_cpu(y: int) -> JSON:
    return timeseries(
        "Host CPU Busy",
        "Share of the host's CPU time spent on anything but idling, over "
        "`$__rate_interval`, all cores together: 1 minus the idle share of "
        "node_exporter's `node_cpu_seconds_total`. It reads the host's /proc (mounted "
        "read-only into its container), so this is the whole machine, the stack and "
        "everything else on it. Past the dashed 80 % line, the services compete for CPU "
        "and their latencies rise with it.",
        (0, y, 6, 8),
        [
            prom(
                '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval]))',
                "busy",
            )
        ],
        unit="percentunit",
        defaults={
            "min": 0,
            "max": 1,
            "decimals": 1,
            "thresholds": thresholds((None, "green"), (0.8, "red")),
            "custom": {"thresholdsStyle": {"mode": "dashed"}},
        },
    )


def host_memory(y: int) -> JSON:
    return timeseries(
        "Host Memory",
        "The host's memory: used (total minus available) and available, as the kernel "
        "estimates what it can hand out without swapping (`MemAvailable` in /proc/meminfo, "
        "node_exporter's `node_memory_MemAvailable_bytes`). Page cache counts as "
        "available. When available nears zero the kernel starts killing processes: the "
        "containers' memory limits are there to make it one of them, not the machine.",
        (6, y, 6, 8),
        [
            prom(
                "sum(node_memory_MemTotal_bytes) - sum(node_memory_MemAvailable_bytes)",
                "used",
            ),
            prom("sum(node_memory_MemAvailable_bytes)", "available", "B"),
        ],
        unit="bytes",
        defaults={**STACKED, "color": {"mode": "palette-classic"}},
    )


def host_network(y: int) -> JSON:
    return timeseries(
        "Host Network",
        "Bytes per second received and sent on every interface but loopback, over "
        "`$__rate_interval` (node_exporter's `node_network_receive_bytes_total` and "
        "`node_network_transmit_bytes_total`). These are node_exporter's own network "
        "namespace's interfaces: in compose its container's (host networking would put "
        "its port on every interface of the host), natively its namespace's. Its "
        "scrapes are most of what it sees.",
        (12, y, 6, 8),
        [
            prom(
                f"sum(rate(node_network_receive_bytes_total{{{HOST_NETWORK}}}[$__rate_interval]))",
                "received",
            ),
            prom(
                f"sum(rate(node_network_transmit_bytes_total{{{HOST_NETWORK}}}[$__rate_interval]))",
                "sent",
                "B",
            ),
        ],
        unit="Bps",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def host_load(y: int) -> JSON:
    return timeseries(
        "Host Load",
        "The host's load average over 1, 5 and 15 minutes (node_exporter's `node_load1`, "
        "`node_load5`, `node_load15`): processes running or waiting for a CPU (or for "
        "the disk), averaged. Above the number of cores, work queues up; a 1-minute "
        "line above the 15-minute one means the load is rising.",
        (18, y, 6, 8),
        [
            prom("max(node_load1)", "1 min"),
            prom("max(node_load5)", "5 min", "B"),
            prom("max(node_load15)", "15 min", "C"),
        ],
        unit="short",
        defaults={"min": 0, "decimals": 2, "color": {"mode": "palette-classic"}},
    )


def container_cpu(y: int) -> JSON:
    return timeseries(
        "Container CPU",
        "CPU each container uses, in cores (1 = one core busy all the time), over "
        "`$__rate_interval`, by container name: cAdvisor's "
        "`container_cpu_usage_seconds_total` from each container's cgroup. Each "
        "container's limit is its `cpus` in the compose files (SECURITY.md): a line flat "
        "at its limit is a container being throttled." + COMPOSE_ONLY,
        (0, y, 8, 8),
        [
            prom(
                f"sum by (name) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}"
                "[$__rate_interval]))",
                "{{name}}",
            )
        ],
        unit="short",
        defaults={"min": 0, "decimals": 2, "color": {"mode": "palette-classic"}},
    )


def container_memory(y: int) -> JSON:
    return timeseries(
        "Container Memory",
        "Memory each container holds that the kernel could not simply drop, by container "
        "name: cAdvisor's `container_memory_working_set_bytes` (usage minus inactive "
        "file pages), the figure the kernel compares with the container's memory limit "
        "before killing it. The limits are in the compose files (SECURITY.md); tmpfs "
        "mounts count here too." + COMPOSE_ONLY,
        (8, y, 8, 8),
        [prom(f"sum by (name) (container_memory_working_set_bytes{{{CONTAINERS}}})", "{{name}}")],
        unit="bytes",
        defaults={"min": 0, "color": {"mode": "palette-classic"}},
    )


def container_network(y: int) -> JSON:
    return timeseries(
        "Container Network",
        "Bytes per second each container receives (above the axis) and sends (below), "
        "over `$__rate_interval`, by container name: cAdvisor's "
        "`container_network_receive_bytes_total` and "
        "`container_network_transmit_bytes_total`. Prometheus, Loki and Tempo receive "
        "the most: every scrape, log line and span ends up there." + COMPOSE_ONLY,
        (16, y, 8, 8),
        [
            prom(
                f"sum by (name) (rate(container_network_receive_bytes_total{{{CONTAINERS}}}"
                "[$__rate_interval]))",
                "{{name}} received",
            ),
            prom(
                f"-sum by (name) (rate(container_network_transmit_bytes_total{{{CONTAINERS}}}"
                "[$__rate_interval]))",
                "{{name}} sent",
                "B",
            ),
        ],
        unit="Bps",
        defaults={"color": {"mode": "palette-classic"}},
    )


# --- The dashboards ---------------------------------------------------------------------


ANNOTATIONS = {
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
}


def dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    layout: list[JSON],
    *,
    links: list[JSON] | None = None,
    variables: list[JSON] | None = None,
) -> JSON:
    """The frame every dashboard shares, around `layout`: its rows and panels, top to
    bottom, numbered in that order."""
    panels = [{"id": number, **item} for number, item in enumerate(layout, start=1)]
    return {
        "uid": uid,  # fixed: links and bookmarks survive
        "title": title,
        "description": description,
        "tags": tags,
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,  # shared crosshair: hovering one graph marks the same time in all
        "time": {"from": "now-15m", "to": "now"},
        "refresh": "10s",
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": links or [],
        "templating": {"list": variables or []},
        "annotations": ANNOTATIONS,
        "panels": panels,
    }


def build_dashboard() -> JSON:
    """Stage 1: four rows, twelve panels, laid out top to bottom."""
    return dashboard(
        "dice-roller-stage1",
        "Dice Roller - Stage 1",
        "Metrics, logs and traces of the dice-roller service (stage 1).",
        ["dice-roller", "stage1", "observability-sandbox"],
        [
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
        ],
    )


STAGE1_LINK = {
    "type": "link",
    "title": "Dice Roller - Stage 1",
    "tooltip": "The dice-roller on its own",
    "url": "/d/dice-roller-stage1",
    "icon": "dashboard",
    "keepTime": True,
    "includeVars": False,
    "asDropdown": False,
    "targetBlank": False,
    "tags": [],
}


def build_stage2_dashboard() -> JSON:
    """Stage 2: four rows, nine panels, and the `trace_id` box of the logs panel."""
    return dashboard(
        "dice-roller-stage2",
        "Dice Roller - Stage 2",
        "The frontend in front of the dice-roller (stage 2): the frontend's requests, its "
        "calls to the dice-roller, the service graph, and one roll followed across both.",
        ["dice-roller", "frontend", "stage2", "observability-sandbox"],
        [
            row("Frontend", 0),
            frontend_request_rate(1),
            frontend_error_ratio(1),
            frontend_request_duration(1),
            row("Frontend → Dice-Roller", 9),
            upstream_duration(10),
            upstream_errors(10),
            row("Between the Services", 18),
            service_graph(19),
            service_graph_rates(19),
            row("Traces and Logs", 31),
            slow_traces(32),
            trace_logs(40),
        ],
        links=[STAGE1_LINK],
        variables=[TRACE_ID_VARIABLE],
    )


STAGE2_LINK = {
    **STAGE1_LINK,
    "title": "Dice Roller - Stage 2",
    "tooltip": "The frontend in front of the dice-roller",
    "url": "/d/dice-roller-stage2",
}


def build_stage3_dashboard() -> JSON:
    """Stage 3: four rows, ten panels, and the `trace_id` box of the logs panel."""
    return dashboard(
        "dice-roller-stage3",
        "Dice Roller - Stage 3",
        "The die-service behind the dice-roller (stage 3): the eight dice it owns, the "
        "roller's lookup on every roll and how it fails, the service graph, and one roll "
        "followed across the three services.",
        ["dice-roller", "frontend", "die-service", "stage3", "observability-sandbox"],
        [
            row("Dice", 0),
            rolls_by_die_rate(1),
            roll_duration_by_die(1),
            error_ratio_by_die(1),
            row("Dice-Roller → Die-Service", 9),
            lookups_by_outcome(10),
            lookup_duration(10),
            die_service_failures(10),
            row("Between the Services", 18),
            service_graph(19, STAGE3_CALLS),
            service_graph_rates(19),
            row("Traces and Logs", 31),
            rolls_with_lookup(32),
            stage3_trace_logs(40),
        ],
        links=[STAGE1_LINK, STAGE2_LINK],
        variables=[TRACE_ID_VARIABLE],
    )


STAGE3_LINK = {
    **STAGE1_LINK,
    "title": "Dice Roller - Stage 3",
    "tooltip": "The die-service behind the dice-roller",
    "url": "/d/dice-roller-stage3",
}


def build_stage4_dashboard() -> JSON:
    """Stage 4: three rows, eight panels."""
    return dashboard(
        "dice-roller-stage4",
        "Dice Roller - Stage 4",
        "Many dice at once (stage 4): the dice-roller's batches on `/roll-async`, their "
        "size, the rolls in flight, a batch's latency against a single roll's, the rolls "
        "and failures of batches, and a batch's trace, its rolls side by side, and its "
        "log line.",
        ["dice-roller", "frontend", "die-service", "stage4", "observability-sandbox"],
        [
            row("Batches", 0),
            batches_per_second(1),
            batch_size(1),
            rolls_in_flight(1),
            row("A Batch Against Single Rolls", 9),
            batch_against_single(10),
            rolls_batched_and_single(10),
            failed_in_batches(10),
            row("Traces and Logs", 18),
            batch_traces(19),
            batch_logs(27),
        ],
        links=[STAGE1_LINK, STAGE2_LINK, STAGE3_LINK],
    )


def build_stage5_dashboard() -> JSON:
    """Stage 5: four rows, twelve panels."""
    return dashboard(
        "dice-roller-stage5",
        "Dice Roller - Stage 5",
        "The dice in PostgreSQL (stage 5): the database as the die-service sees it (its "
        "queries, its pool, its errors), the database itself (postgres_exporter), the "
        "die-service → dice edge of the service graph, and the lines of an outage.",
        ["dice-roller", "frontend", "die-service", "postgres", "stage5", "observability-sandbox"],
        [
            row("Die-Service → Database", 0),
            query_duration(1),
            pool_connections(1),
            pool_wait(1),
            database_errors(1),
            row("PostgreSQL", 9),
            postgres_up(10),
            backends(10),
            transactions(10),
            cache_hit_ratio(10),
            row("In the Traces", 18),
            database_calls(19),
            database_call_duration(19),
            row("Logs", 27),
            database_unavailable_logs(28),
            postgres_logs(28),
        ],
        links=[STAGE1_LINK, STAGE2_LINK, STAGE3_LINK],
    )


STAGE5_LINK = {
    **STAGE1_LINK,
    "title": "Dice Roller - Stage 5",
    "tooltip": "The dice in PostgreSQL",
    "url": "/d/dice-roller-stage5",
}


def build_host_dashboard() -> JSON:
    """Stage 5's host and containers: two rows, seven panels."""
    return dashboard(
        "dice-roller-host",
        "Host and Containers",
        "The machine under the stack (stage 5): the host's CPU, memory, network and load "
        "from node_exporter, and each container's CPU, memory and network from cAdvisor, "
        "beside the services' own dashboards. cAdvisor runs with compose only: natively "
        "its row stays empty (docs/native-stack.md).",
        ["host", "containers", "node-exporter", "cadvisor", "stage5", "observability-sandbox"],
        [
            row("Host (node_exporter)", 0),
            host_cpu(1),
            host_memory(1),
            host_network(1),
            host_load(1),
            row("Containers (cAdvisor, compose only)", 9),
            container_cpu(10),
            container_memory(10),
            container_network(10),
        ],
        links=[STAGE5_LINK],
    )


def _text(board: JSON) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def render() -> str:
    """The dashboard as the exact text committed in `stage1-dashboard.json`."""
    return _text(build_dashboard())


def render_stage2() -> str:
    """The dashboard as the exact text committed in `stage2-dashboard.json`."""
    return _text(build_stage2_dashboard())


def render_stage3() -> str:
    """The dashboard as the exact text committed in `stage3-dashboard.json`."""
    return _text(build_stage3_dashboard())


def render_stage4() -> str:
    """The dashboard as the exact text committed in `stage4-dashboard.json`."""
    return _text(build_stage4_dashboard())


def render_stage5() -> str:
    """The dashboard as the exact text committed in `stage5-dashboard.json`."""
    return _text(build_stage5_dashboard())


def render_host() -> str:
    """The dashboard as the exact text committed in `host-dashboard.json`."""
    return _text(build_host_dashboard())


def outputs() -> list[tuple[Path, str]]:
    """Each file this script writes, with its text (paths read now: tests redirect them)."""
    return [
        (DASHBOARD_PATH, render()),
        (STAGE2_DASHBOARD_PATH, render_stage2()),
        (STAGE3_DASHBOARD_PATH, render_stage3()),
        (STAGE4_DASHBOARD_PATH, render_stage4()),
        (STAGE5_DASHBOARD_PATH, render_stage5()),
        (HOST_DASHBOARD_PATH, render_host()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="don't write; exit 1 if a JSON is out of date"
    )
    args = parser.parse_args(argv)
    stale = 0
    for path, text in outputs():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            print(f"{path.name} is up to date")
        elif args.check:
            print(f"{path.name} is out of date: run {Path(__file__).name}")
            stale += 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
