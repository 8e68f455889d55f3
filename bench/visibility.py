"""Part 4, time to visible: how soon a request shows in the metrics and in the traces.

Metrics are counted while the request runs, so a scrape right after the answer must
already show it: the check is that the request's trace id is there as an exemplar.
Spans wait in the BatchSpanProcessor's queue until the next batch, due every second
(`OTEL_BSP_SCHEDULE_DELAY`, 1000 ms by default here), so a span should reach the
collector within about a second of the answer. Requests are spread at random moments
so that they fall anywhere in the batch cycle.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from stackclient import wait_until

from .report import Report
from .servers import start_full_service

__all__ = ["VisibilityPlan", "run_visibility"]

PART = "visibility"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TARGET_SPAN_SECONDS = 1.2
"""About a second: the 1 s batch schedule plus the export itself."""


@dataclass(frozen=True)
class VisibilityPlan:
    requests: int
    max_gap_seconds: float = 1.0


def run_visibility(report: Report, plan: VisibilityPlan, output_dir: Path) -> None:
    report.section(
        PART,
        f"{plan.requests} requests at random moments to the full service (delay 0, "
        "default batch schedule); a /metrics scrape right after each answer",
    )
    rng = random.Random(7)
    answered: dict[str, float] = {}
    in_scrape = {"dice": 0, "http": 0}
    scrape_seconds = []
    with start_full_service(0, output_dir) as (server, receiver), httpx.Client() as client:
        receiver.track_arrivals = True
        for _ in range(plan.requests):
            time.sleep(rng.uniform(0, plan.max_gap_seconds))
            response = client.get(server.roll_url)
            answered_at = time.time()
            trace_id = response.headers["traceresponse"].split("-")[1]
            answered[trace_id] = answered_at
            started = time.perf_counter()
            scrape = client.get(server.url + "/metrics", headers={"Accept": OPENMETRICS})
            scrape_seconds.append(time.perf_counter() - started)
            for family in in_scrape:
                in_scrape[family] += _exemplar_in(scrape.text, family, trace_id)

        def all_arrived() -> bool | None:
            return all(receiver.arrival_of(t) is not None for t in answered) or None

        wait_until(all_arrived, 5.0, interval=0.01)
        arrivals = {t: receiver.arrival_of(t) for t in answered}

    delays = [arrived - answered[t] for t, arrived in arrivals.items() if arrived is not None]
    missing = sum(1 for arrived in arrivals.values() if arrived is None)
    n = len(answered)
    report.table(
        ["signal", "visible", "median", "p90", "max"],
        [
            [
                "span at the receiver",
                f"{len(delays)}/{n}",
                f"{statistics.median(delays):.3f} s" if delays else "-",
                f"{_quantile(delays, 0.9):.3f} s" if delays else "-",
                f"{max(delays):.3f} s" if delays else "-",
            ],
            [
                "exemplar in dice_* metrics",
                f"{in_scrape['dice']}/{n}",
                "first scrape",
                "",
                f"scrape {statistics.median(scrape_seconds) * 1000:.1f} ms",
            ],
            [
                "exemplar in http_* metrics",
                f"{in_scrape['http']}/{n}",
                "first scrape",
                "",
                "",
            ],
        ],
    )
    report.figure(
        PART,
        "spans",
        {"delays_seconds": delays, "missing": missing, "metrics_first_scrape": in_scrape},
    )
    worst = max(delays) if delays and not missing else float("inf")
    report.check(PART, "span at the receiver, worst", worst, "<=", TARGET_SPAN_SECONDS, " s")
    report.check(
        PART, "requests in the first scrape", min(in_scrape.values()) / max(n, 1), ">=", 1.0
    )


def _exemplar_in(exposition: str, family: str, trace_id: str) -> int:
    """1 when a sample of a `family`_* metric carries `trace_id` as its exemplar."""
    needle = f'trace_id="{trace_id}"'
    return int(
        any(line.startswith(family + "_") and needle in line for line in exposition.splitlines())
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
