"""Part 1, telemetry overhead: the same `/roll` route, delay 0, in eight builds.

`bare`, FastAPI and the dice with no telemetry (`bench.apps`); the real service with
its signals added one at a time from outside (`metrics`, `metrics+logs`,
`traces-unexported`, then `full`, exporting over OTLP: `bench.servers`); the full
service with the shipped flag file and during a drill (`bench.flags`); and the common
recipe (`bench.recipe`: what most tutorials would have us write instead). All are
served by one uvicorn worker and loaded by wrk with the same connection count.
The runs alternate (bare, metrics, ..., recipe, bare, ...) so that a noisy neighbour
or a slow minute hits every build alike, and each ratio is the median of the
per-round ratios.

It also counts what the full build emitted: a span and a log line for every request
answered, or the figure was won by dropping telemetry.
"""

from __future__ import annotations

import itertools
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .apps import BARE
from .flags import flag_environment, flag_files, report_flags
from .receiver import BenchReceiver, bench_receiver
from .recipe import RECIPE
from .report import Report
from .servers import (
    FULL,
    FULL_DRILL,
    FULL_FLAGS,
    METRICS,
    METRICS_LOGS,
    TRACES_UNEXPORTED,
    Memory,
    Server,
    cpu_seconds,
    read_memory,
    start_servers,
)
from .wrk import WrkResult, run_wrk

__all__ = ["BUILDS", "OverheadPlan", "run_overhead"]

PART = "overhead"
ADDS = {
    METRICS: "metrics (with the service's route and middleware)",
    METRICS_LOGS: "logs",
    TRACES_UNEXPORTED: "spans made",
    FULL: "their export",
}
"""What each build of the real service adds to the build before it, `bare` first."""
BUILDS = (BARE, *ADDS, FULL_FLAGS, FULL_DRILL, RECIPE)
TARGET_RATIO = 0.28
"""Full / bare throughput. Every request keeps its server span, so the span alone caps
this near 0.46 here (docs/performance.md); 0.28 asks for the rest to be lean."""
TARGET_CPU_AGAINST_RECIPE = 0.7
"""Full service CPU per request / the common recipe's: the service's three signals,
with exemplars and one line per request, for well under what the tutorials cost."""


@dataclass(frozen=True)
class OverheadPlan:
    rounds: int
    seconds: float
    connections: int = 50
    pause_seconds: float = 1.5  # lets the last batch of spans leave before the next run


def run_overhead(report: Report, plan: OverheadPlan, output_dir: Path) -> None:
    report.section(
        PART,
        f"/roll?die=fair with delay 0; wrk 1 thread, {plan.connections} connections, "
        f"{plan.seconds:g} s per run, {plan.rounds} alternating round(s)",
    )
    with ExitStack() as stack:
        receivers = {build: stack.enter_context(bench_receiver()) for build in BUILDS}
        files = flag_files(output_dir)
        envs = [
            (build, {**_environment(receivers[build]), **flag_environment(build, files)})
            for build in BUILDS
        ]
        started = stack.enter_context(start_servers(envs, output_dir))
        servers = {server.build: server for server in started}

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
                time.sleep(plan.pause_seconds)  # the batch of spans in flight is part of the cost
                runs[build].append(result)
                cpu[build].append((cpu_seconds(pid) - before) / max(result.requests, 1) * 1e6)
        memory: dict[str, Memory] = {
            build: read_memory(servers[build].process.pid) for build in (FULL, FULL_FLAGS)
        }
        _print_results(report, runs, cpu)
        report_flags(report, PART, runs, cpu, memory, files)
        _check_nothing_dropped(report, servers[FULL], receivers[FULL], runs[FULL])


def _environment(receiver: BenchReceiver) -> dict[str, str]:
    return {**receiver.service_env(max_delay_seconds=0), "DICE_LOG_LEVEL": "INFO"}


def _print_results(
    report: Report, runs: dict[str, list[WrkResult]], cpu: dict[str, list[float]]
) -> None:
    """One row per build; the CPU column is steadier than req/s on a busy machine."""
    bare = runs[BARE]
    rows = []
    for build, results in runs.items():
        cpu_per_request = statistics.median(cpu[build])
        rates = [r.requests_per_second for r in results]
        pairs = zip(results, bare, strict=True)
        ratio = statistics.median(r.requests_per_second / b.requests_per_second for r, b in pairs)
        p99 = statistics.median(r.p99 for r in results)
        errors = sum(r.errors for r in results)
        rows.append(
            [
                build,
                statistics.median(rates),
                p99 * 1000,
                ratio,
                cpu_per_request,
                errors,
                _spaced(rates),
            ]
        )
        report.figure(
            PART,
            build,
            {
                "requests_per_second": rates,
                "p99_seconds": [r.p99 for r in results],
                "ratio": ratio,
                "cpu_microseconds_per_request": cpu[build],
            },
        )
    report.table(
        [
            "build",
            "req/s (median)",
            "p99 ms",
            "ratio to bare",
            "CPU µs/req",
            "errors",
            "req/s per round",
        ],
        rows,
    )
    full_ratio = next(row[3] for row in rows if row[0] == FULL)
    assert isinstance(full_ratio, float)
    report.check(PART, "throughput full/bare", full_ratio, ">=", TARGET_RATIO)
    medians = {build: statistics.median(cpu[build]) for build in BUILDS}
    bare_cpu, full_cpu = medians[BARE], medians[FULL]
    report.say(
        f"  CPU per request: full {full_cpu:.0f} µs, bare {bare_cpu:.0f} µs; "
        f"bare/full = {bare_cpu / full_cpu:.2f} (the throughput ratio a free core would give)"
    )
    steps = ", ".join(
        f"{ADDS[build]} {medians[build] - medians[before]:+.0f}"
        for before, build in itertools.pairwise((BARE, *ADDS))
    )
    report.say(f"  What each build adds to the one before, CPU µs per request: {steps}")
    recipe_cpu = medians[RECIPE]
    against_recipe = statistics.median(
        f / r for f, r in zip(cpu[FULL], cpu[RECIPE], strict=True)
    )  # per round, like the throughput ratios
    report.say(
        f"  The common recipe: {recipe_cpu:.0f} µs, +{recipe_cpu - bare_cpu:.0f} µs over bare; "
        f"full service / recipe = {against_recipe:.2f} (CPU per request, per-round median)"
    )
    report.figure(PART, "full_over_recipe_cpu", against_recipe)
    report.check(
        PART, "CPU per request full/recipe", against_recipe, "<=", TARGET_CPU_AGAINST_RECIPE
    )


def _check_nothing_dropped(
    report: Report, server: Server, receiver: BenchReceiver, runs: list[WrkResult]
) -> None:
    """Every request the full build handled has a span and a log line (no sampling).

    The build's own log says how many rolls it handled (warm-up included); the spans
    received must match that count, and both cover at least what wrk saw answered.
    """
    answered = sum(r.requests for r in runs)
    logged = server.count_in_output(b'"Roll completed"')
    spans = receiver.wait_for_spans(logged, timeout=5.0)
    report.say(
        f"  full build: {logged} rolls logged, {spans} spans received "
        f"({answered} answers counted by wrk in the timed runs)"
    )
    report.figure(PART, "full_emitted", {"answered": answered, "logged": logged, "spans": spans})
    dropped = max(logged - spans, 0) + max(answered - logged, 0)
    report.check(PART, "full build: requests without a span or a roll line", dropped, "<=", 0)


def _spaced(rates: list[float]) -> str:
    return " ".join(f"{rate:.0f}" for rate in rates)
