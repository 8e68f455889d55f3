"""Part 2, concurrency with the real delay: clients waiting on rolls of 0-1 s.

Each of `c` clients sends its next request as soon as its answer arrives, so with a
mean delay of 0.5 s the ideal rate is c / 0.5 requests per second. The service only
sleeps during that delay, so it should reach the ideal until its CPU runs out; the
knee is the first concurrency whose rate falls below 90% of ideal.

The service's memory is sampled during every run (part 3 reports it).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .report import Report
from .servers import Memory, Server, read_memory, start_full_service
from .wrk import WrkResult, run_wrk

__all__ = ["ConcurrencyPlan", "MemorySamples", "run_concurrency", "sample_memory"]

PART = "concurrency"
MAX_DELAY_SECONDS = 1.0
MEAN_DELAY_SECONDS = MAX_DELAY_SECONDS / 2
KNEE_FRACTION = 0.90
TARGET_FRACTION_AT_200 = 0.95
TARGET_P99_MARGIN_SECONDS = 0.050
TARGET_KNEE = 500


@dataclass(frozen=True)
class ConcurrencyPlan:
    seconds: float  # per level
    levels: tuple[int, ...]  # the first is the one judged against the targets
    pause_seconds: float = 2.0


@dataclass
class MemorySamples:
    """RSS samples of one process, every `interval` seconds while the block runs."""

    rss_bytes: list[int] = field(default_factory=list)
    peak_bytes: int = 0

    @property
    def steady_bytes(self) -> int:
        """The median of the second half: the level a loaded service settles at."""
        half = self.rss_bytes[len(self.rss_bytes) // 2 :] or self.rss_bytes
        return int(statistics.median(half)) if half else 0


@contextmanager
def sample_memory(pid: int, interval: float = 0.25) -> Iterator[MemorySamples]:
    samples = MemorySamples()
    stop = threading.Event()

    def sample() -> None:
        while True:
            memory: Memory = read_memory(pid)
            samples.rss_bytes.append(memory.rss_bytes)
            samples.peak_bytes = memory.peak_bytes
            if stop.wait(interval):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        samples.peak_bytes = read_memory(pid).peak_bytes


def run_concurrency(report: Report, plan: ConcurrencyPlan, output_dir: Path) -> MemorySamples:
    """Run every level (stopping at the knee); returns the memory seen at the first level."""
    report.section(
        PART,
        f"the full service with its real 0-{MAX_DELAY_SECONDS:g} s delay; wrk 1 thread, "
        f"no think time, {plan.seconds:g} s per level",
    )
    with start_full_service(MAX_DELAY_SECONDS, output_dir) as (server, _):
        return _run_levels(report, plan, server)


def _run_levels(report: Report, plan: ConcurrencyPlan, server: Server) -> MemorySamples:
    rows = []
    first: WrkResult | None = None
    first_memory = MemorySamples()
    knee: int | None = None
    held = 0  # the highest concurrency that still reached 90% of the ideal rate
    for index, clients in enumerate(plan.levels):
        with sample_memory(server.process.pid) as memory:
            result = run_wrk(server.roll_url, clients, plan.seconds)
        if index == 0:
            first, first_memory = result, memory
        ideal = clients / MEAN_DELAY_SECONDS
        fraction = result.requests_per_second / ideal
        rows.append(_row(clients, ideal, fraction, result, memory))
        report.figure(
            PART,
            f"clients_{clients}",
            {
                "requests_per_second": result.requests_per_second,
                "ideal": ideal,
                "fraction_of_ideal": fraction,
                "p50_seconds": result.p50,
                "p99_seconds": result.p99,
                "errors": result.errors,
                "rss_peak_bytes": memory.peak_bytes,
                "rss_steady_bytes": memory.steady_bytes,
            },
        )
        if fraction < KNEE_FRACTION:
            knee = clients
            break
        held = clients
        time.sleep(plan.pause_seconds)
    report.table(
        ["clients", "ideal req/s", "req/s", "of ideal", "p50 ms", "p99 ms", "errors", "RSS MB"],
        rows,
    )
    report.say(
        f"  the delay itself: uniform 0-{MAX_DELAY_SECONDS:g} s, so p50 = "
        f"{MEAN_DELAY_SECONDS * 1000:.0f} ms and p99 = {0.99 * MAX_DELAY_SECONDS * 1000:.0f} ms"
    )
    assert first is not None, "a plan has at least one level"
    clients = plan.levels[0]
    report.check(
        PART,
        f"rate/ideal at {clients} clients",
        first.requests_per_second / (clients / MEAN_DELAY_SECONDS),
        ">=",
        TARGET_FRACTION_AT_200,
    )
    report.check(
        PART,
        f"p99 above the delay's maximum at {clients} clients",
        (first.p99 - MAX_DELAY_SECONDS) * 1000,
        "<=",
        TARGET_P99_MARGIN_SECONDS * 1000,
        " ms",
    )
    if knee is None:
        report.say(f"  no knee: every level up to {held} clients reached {KNEE_FRACTION:.0%}")
    else:
        report.say(
            f"  knee: {KNEE_FRACTION:.0%} of ideal held at {held} clients, not at {knee} clients"
        )
    report.figure(PART, "knee", {"held": held, "fell": knee})
    report.check(PART, "clients held at 90% of ideal (knee)", float(held), ">=", TARGET_KNEE)
    return first_memory


def _row(
    clients: int, ideal: float, fraction: float, result: WrkResult, memory: MemorySamples
) -> list[object]:
    return [
        clients,
        ideal,
        result.requests_per_second,
        f"{fraction:.1%}",
        result.p50 * 1000,
        result.p99 * 1000,
        result.errors,
        f"{memory.steady_bytes / 2**20:.0f} (peak {memory.peak_bytes / 2**20:.0f})",
    ]
