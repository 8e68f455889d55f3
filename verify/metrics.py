"""Metrics Collection: Prometheus scrapes the service and stores its series and exemplars.

Read through `stackclient.Prometheus` (Prometheus's HTTP API v1).
"""

from __future__ import annotations

import re
import time
from typing import Any

from .context import JOB, Context, poll
from .model import Failed, Run

__all__ = ["run_metrics_checks"]

GROUP = "Metrics Collection"

HINT_TARGET = (
    "Open http://localhost:9090/targets: dice-roller-stage1 should be UP. Not listed? The "
    "job is in stack/prometheus/prometheus.yml; after editing it, `python3 tasks.py compose "
    "reload` applies it "
    "(no restart). DOWN? The service must be running where Prometheus scrapes it: on the "
    "compose network (`docker compose ps`, `docker compose logs dice-roller`), or, without "
    "Docker, started with Prometheus by `python3 tasks.py nativestack`. Scrapes run every 5 s."
)
HINT_SERIES = (
    "No series yet: roll some dice (`python3 tasks.py compose traffic`, or without Docker "
    "`.venv/bin/python traffic-gen/generate_traffic.py`) and wait a scrape (5 s). If the "
    "target is UP but the series are missing, compare http://localhost:8100/metrics with the "
    "query; Prometheus's log (`docker compose logs prometheus`, or the terminal of "
    "`python3 tasks.py nativestack`) shows scrape errors."
)
HINT_EXEMPLARS = (
    "Exemplars need Prometheus's --enable-feature=exemplar-storage (stack/compose.yml) and the "
    "OpenMetrics format (scrape_protocols in stack/prometheus/prometheus.yml), and they are only "
    "recorded for requests that had a trace. Check `curl -H 'Accept: "
    "application/openmetrics-text' localhost:8100/metrics | grep trace_id`."
)

SERIES = (
    ("HTTP metrics present", f'http_requests_total{{job="{JOB}"}}'),
    ("Custom metrics present", "dice_rolls_total"),
    ("Roll value histogram present", "dice_roll_value_bucket"),
)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def run_metrics_checks(ctx: Context, run: Run) -> None:
    up = run.check(
        GROUP,
        f"Prometheus scraping stage1: target {JOB} is UP",
        HINT_TARGET,
        lambda: _target_up(ctx),
    )
    for title, query in SERIES:
        run.check(
            GROUP,
            f"{title}: {query}",
            HINT_SERIES,
            lambda query=query: _has_series(ctx, query, wait=up),  # type: ignore[misc]
        )
    run.check(
        GROUP,
        "Exemplars stored: /api/v1/query_exemplars returns trace ids",
        HINT_EXEMPLARS,
        lambda: _exemplars(ctx, wait=up),
    )


def _target_up(ctx: Context) -> str:
    data = ctx.prometheus.targets()
    targets = [
        target
        for target in (data or {}).get("activeTargets", [])
        if isinstance(target, dict) and target.get("labels", {}).get("job") == JOB
    ]
    if not targets:
        raise Failed(f"no active target with job={JOB!r}")
    down = [target for target in targets if target.get("health") != "up"]
    if down:
        first = down[0]
        raise Failed(
            f"{len(down)} of {len(targets)} target(s) not up: health {first.get('health')!r}, "
            f"last error {first.get('lastError') or 'none'!r} ({first.get('scrapeUrl', '?')})"
        )
    return f"{len(targets)} target(s) up, last scrape {targets[0].get('lastScrape', '?')}"


def _has_series(ctx: Context, query: str, wait: bool) -> str:
    def attempt() -> list[Any] | None:
        return ctx.prometheus.query(query) or None

    result = poll(ctx, attempt) if wait else attempt()
    if not result:
        raise Failed(f"{query} has no series")
    return f"{len(result)} series"


def _exemplars(ctx: Context, wait: bool) -> str:
    def attempt() -> list[str] | None:
        now = time.time()
        data = ctx.prometheus.exemplars(f'{{job="{JOB}"}}', now - 3600, now)
        ids = [
            str(exemplar.get("labels", {}).get("trace_id", ""))
            for series in data
            if isinstance(series, dict)
            for exemplar in series.get("exemplars") or []
            if isinstance(exemplar, dict)
        ]
        return [trace_id for trace_id in ids if _TRACE_ID.match(trace_id)] or None

    trace_ids = poll(ctx, attempt) if wait else attempt()
    if not trace_ids:
        raise Failed(f'no exemplar with a trace_id on any {{job="{JOB}"}} series in the last hour')
    return f"{len(trace_ids)} exemplars, e.g. trace {trace_ids[-1]}"
