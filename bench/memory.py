"""Part 3, memory: the service's RSS under the concurrency load, and across a soak.

A leak shows as RSS that keeps climbing at a constant load. The soak holds a fixed
load for minutes (200 clients at the real delay: a steady 400 requests per second)
after a warm-up, then compares the resident size at its start and at its end.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .concurrency import MAX_DELAY_SECONDS, MEAN_DELAY_SECONDS, MemorySamples, sample_memory
from .report import Report
from .servers import read_memory, start_full_service
from .wrk import run_wrk

__all__ = ["SoakPlan", "run_memory"]

PART = "memory"
TARGET_PEAK_MB = 150.0
TARGET_GROWTH_MB = 5.0
"""Noise: allocator arenas and caches move by a few MB; a leak keeps growing."""
MB = 2**20


@dataclass(frozen=True)
class SoakPlan:
    clients: int
    warmup_seconds: float
    seconds: float
    interval_seconds: float


def run_memory(
    report: Report, plan: SoakPlan, output_dir: Path, under_load: MemorySamples | None
) -> None:
    rate = plan.clients / MEAN_DELAY_SECONDS
    report.section(
        PART,
        f"RSS of the full service (VmRSS, VmHWM); soak of {plan.seconds:g} s at "
        f"{plan.clients} clients (~{rate:.0f} req/s) after a {plan.warmup_seconds:g} s warm-up",
    )
    with start_full_service(MAX_DELAY_SECONDS, output_dir) as (server, _):
        pid = server.process.pid
        at_start = read_memory(pid).rss_bytes / MB
        run_wrk(server.roll_url, plan.clients, plan.warmup_seconds)
        with sample_memory(pid, plan.interval_seconds) as soak:
            run_wrk(server.roll_url, plan.clients, plan.seconds)

    if under_load is None:  # the concurrency part did not run: the soak is the same load
        under_load = soak
        report.say("  (concurrency part not run: RSS under load taken from the soak)")
    tenth = max(1, len(soak.rss_bytes) // 10)
    begin = statistics.median(soak.rss_bytes[:tenth]) / MB
    end = statistics.median(soak.rss_bytes[-tenth:]) / MB
    report.table(
        ["when", "RSS MB"],
        [
            ["idle, after start-up", at_start],
            [f"under load, {plan.clients} clients: steady", under_load.steady_bytes / MB],
            [f"under load, {plan.clients} clients: peak (VmHWM)", under_load.peak_bytes / MB],
            ["soak: first tenth (median)", begin],
            ["soak: last tenth (median)", end],
            ["soak: peak (VmHWM)", soak.peak_bytes / MB],
        ],
    )
    report.figure(
        PART,
        "rss_mb",
        {
            "idle": at_start,
            "under_load_steady": under_load.steady_bytes / MB,
            "under_load_peak": under_load.peak_bytes / MB,
            "soak_begin": begin,
            "soak_end": end,
            "soak_peak": soak.peak_bytes / MB,
            "soak_samples": [round(b / MB, 1) for b in soak.rss_bytes],
        },
    )
    peak = under_load.peak_bytes / MB
    report.check(PART, "peak RSS under load", peak, "<", TARGET_PEAK_MB, " MB")
    report.check(PART, "RSS growth across the soak", end - begin, "<=", TARGET_GROWTH_MB, " MB")
