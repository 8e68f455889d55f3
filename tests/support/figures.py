"""What the reliability tests measure of a running server and report: the series its
`/metrics` exposes, its log lines that are not JSON, its memory and open files; and
`report`, which prints the figures (and keeps them for docs/reliability.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service import RunningService

__all__ = ["SeriesKey", "broken_log_lines", "metric_series", "open_fds", "report", "rss_bytes"]

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def metric_series(service: RunningService) -> dict[str, set[SeriesKey]]:
    """Every series `/metrics` exposes, grouped by family: what Prometheus would store."""
    text = httpx.get(service.url + "/metrics", timeout=10).text
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))) for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def broken_log_lines(service: RunningService) -> tuple[int, list[str]]:
    """(complete stdout lines, those that are not one JSON object each).

    A line still being written has no newline yet; it is left for the next look.
    """
    data = service.output_path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    lines = [line for line in complete.split(b"\n") if line.strip()]
    broken = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                broken.append(line.decode("utf-8", "replace"))
        except ValueError:
            broken.append(line.decode("utf-8", "replace"))
    return len(lines), broken


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux only, like our machines)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def report(name: str, **figures: object) -> None:
    """Say what a test tried and what came of it, for `pytest -rA` and the figures table.

    With RELIABILITY_FIGURES=path, each report is also appended there as a JSON line,
    which is how docs/reliability.md gets its numbers from real runs.
    """
    print(f"[reliability] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps({"test": name, **figures}, default=str) + "\n")
