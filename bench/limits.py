"""Part 7, the server's limits: what bounding every input costs the dice-roller.

Two builds of the real service, side by side, delay 0, spans exported to a bench
receiver each:

- `full`, the service as it runs: `sandbox_telemetry.server.serve()`, uvicorn on
  httptools with the limits (`BoundedHttpToolsProtocol`: a whole request head within
  64 KiB and 10 s, at most 1,024 connections; forwarded headers believed from no one);
- `unbounded`, the same app served as it was before those limits: uvicorn's defaults
  (httptools, no head timeout or size, no connection limit, `X-Forwarded-For` believed
  from 127.0.0.1), assembled by the bench (`serve_unbounded`, run by `bench.serve`).

wrk loads both with the same connections in alternating rounds, so a noisy minute
hits both alike; each ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from dice_roller.app import create_app
from dice_roller.settings import Settings
from sandbox_telemetry.logs import configure_logging
from sandbox_telemetry.server import GRACEFUL_SHUTDOWN_SECONDS

from .receiver import bench_receiver
from .report import Report
from .servers import FULL, cpu_seconds, start_servers
from .wrk import WrkResult, run_wrk

__all__ = ["UNBOUNDED", "LimitsPlan", "run_limits", "serve_unbounded"]

PART = "limits"
UNBOUNDED = "unbounded"
"""The build served with uvicorn's defaults, as the service was before its limits."""
BUILDS = (UNBOUNDED, FULL)
TARGET_THROUGHPUT_RATIO = 0.95
"""Throughput with the limits / without: bounding every input costs under 5%."""


@dataclass(frozen=True)
class LimitsPlan:
    rounds: int
    seconds: float
    connections: int = 50
    pause_seconds: float = 1.0  # lets the last batch of spans leave before the next run


def serve_unbounded(settings: Settings, port: int) -> None:
    """The real service as `serve()` ran it before the limits: uvicorn's defaults."""
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )


def run_limits(report: Report, plan: LimitsPlan, output_dir: Path) -> None:
    report.section(
        PART,
        f"/roll?die=fair with delay 0, with the server's limits (full) and without "
        f"(unbounded); wrk 1 thread, {plan.connections} connections, {plan.seconds:g} s "
        f"per run, {plan.rounds} alternating round(s)",
    )
    with ExitStack() as stack:
        receivers = {build: stack.enter_context(bench_receiver()) for build in BUILDS}
        envs = [(build, receivers[build].service_env(max_delay_seconds=0)) for build in BUILDS]
        servers = {s.build: s for s in stack.enter_context(start_servers(envs, output_dir))}
        for server in servers.values():  # warm up: imports, caches, first connections
            run_wrk(server.roll_url, plan.connections, 1)
        time.sleep(plan.pause_seconds)

        runs: dict[str, list[WrkResult]] = {build: [] for build in BUILDS}
        cpu: dict[str, list[float]] = {build: [] for build in BUILDS}  # µs per request
        for _ in range(plan.rounds):
            for build in BUILDS:
                pid = servers[build].process.pid
                before = cpu_seconds(pid)
                result = run_wrk(servers[build].roll_url, plan.connections, plan.seconds)
                time.sleep(plan.pause_seconds)
                runs[build].append(result)
                cpu[build].append((cpu_seconds(pid) - before) / max(result.requests, 1) * 1e6)
    _print_results(report, runs, cpu)


def _print_results(
    report: Report, runs: dict[str, list[WrkResult]], cpu: dict[str, list[float]]
) -> None:
    rows = []
    for build in BUILDS:
        results = runs[build]
        rates = [r.requests_per_second for r in results]
        rows.append(
            [
                build,
                statistics.median(rates),
                statistics.median(r.p50 for r in results) * 1000,
                statistics.median(r.p99 for r in results) * 1000,
                statistics.median(cpu[build]),
                sum(r.errors for r in results),
                " ".join(f"{rate:.0f}" for rate in rates),
            ]
        )
        report.figure(
            PART,
            build,
            {
                "requests_per_second": rates,
                "p50_seconds": [r.p50 for r in results],
                "p99_seconds": [r.p99 for r in results],
                "cpu_microseconds_per_request": cpu[build],
            },
        )
    report.table(
        ["build", "req/s (median)", "p50 ms", "p99 ms", "CPU µs/req", "errors", "req/s per round"],
        rows,
    )
    pairs = list(zip(runs[FULL], runs[UNBOUNDED], strict=True))
    throughput = statistics.median(f.requests_per_second / u.requests_per_second for f, u in pairs)
    p50 = statistics.median(f.p50 / u.p50 for f, u in pairs)
    cpu_ratio = statistics.median(f / u for f, u in zip(cpu[FULL], cpu[UNBOUNDED], strict=True))
    report.say(
        f"  with the limits / without (per-round medians): throughput {throughput:.3f}, "
        f"p50 {p50:.3f}, CPU per request {cpu_ratio:.3f}"
    )
    report.figure(
        PART, "ratios", {"throughput": throughput, "p50": p50, "cpu_per_request": cpu_ratio}
    )
    report.check(PART, "throughput with limits/without", throughput, ">=", TARGET_THROUGHPUT_RATIO)
