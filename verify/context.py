"""What every check can see: the settings, the HTTP client, and facts found on the way.

Some boxes depend on what an earlier check found: the trace checks inspect the trace
of the request the service checks made, the trace-to-logs checks follow that same
trace into Loki. `Context` carries those findings from one check to the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stackclient import Addresses, Api, Component, Grafana, Loki, Prometheus, Tempo, wait_until

__all__ = ["ROOT", "Context", "FreshRequest", "Settings", "poll"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
"""The repository: the checks read the stack's own files (dashboard, data sources)."""

DASHBOARD_FILE = ROOT / "grafana-dashboards" / "stage1-dashboard.json"
DATASOURCES_DIR = ROOT / "stack" / "grafana" / "provisioning" / "datasources"
TRAFFIC_SCRIPT = ROOT / "traffic-gen" / "generate_traffic.py"

JOB = "dice-roller-stage1"
"""Prometheus job of the service (stack/prometheus/prometheus.yml)."""
CONTAINER = "dice-roller-stage1"
"""Docker container name of the service (docker-compose.yml)."""
SERVICE_NAME = "dice-roller"
"""OpenTelemetry `service.name` of the service's spans."""


@dataclass(frozen=True)
class Settings(Addresses):
    """Where the stack is and how patient to be; see `cli.py` for flags and env vars."""

    stage: int = 1
    """Which stage's boxes to check too (docs/stages.md): 2 adds Across Services, 3 Three
    Services, 4 Async Rolls."""
    grafana_user: str | None = None
    grafana_password: str | None = None
    timeout: float = 10.0
    """Seconds for any single HTTP call."""
    wait: float = 45.0
    """Seconds to wait for fresh data: a new trace in Tempo, new lines in Loki."""
    poll_interval: float = 1.0
    with_traffic: bool = False
    traffic_args: tuple[str, ...] = ()
    dashboard_file: Path = DASHBOARD_FILE
    datasources_dir: Path = DATASOURCES_DIR
    traffic_script: Path = TRAFFIC_SCRIPT


@dataclass
class FreshRequest:
    """A request made by the checks themselves, and what its response said about it."""

    path: str
    status: int
    trace_id: str
    span_id: str
    started: float
    """Unix seconds, just before sending."""
    seconds: float
    """Round trip as the client measured it."""
    trace: Any = None
    """Tempo's answer for `trace_id`, once found (OTLP JSON)."""


@dataclass
class Context:
    settings: Settings
    api: Api
    fresh: FreshRequest | None = None
    grafana_dashboard: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    deadline: float = 0.0
    """`time.monotonic()` after which polls stop waiting for fresh data."""

    def __post_init__(self) -> None:
        self.start_waiting()

    def start_waiting(self) -> None:
        """Start the `--wait` budget now (after the traffic generator, when it runs)."""
        self.deadline = time.monotonic() + self.settings.wait

    @property
    def service(self) -> Component:
        return Component("the dice roller", self.settings.service_url)

    @property
    def frontend(self) -> Component:
        return Component("the frontend", self.settings.frontend_url)

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self.api, self.settings.prometheus_url)

    @property
    def loki(self) -> Loki:
        return Loki(self.api, self.settings.loki_url)

    @property
    def tempo(self) -> Tempo:
        return Tempo(self.api, self.settings.tempo_url)

    @property
    def alloy(self) -> Component:
        return Component("Alloy", self.settings.alloy_url)

    @property
    def grafana(self) -> Grafana:
        return Grafana(self.api, self.settings.grafana_url)


def poll(ctx: Context, attempt: Callable[[], T | None]) -> T | None:
    """Call `attempt` until it returns something, or until the run's waiting time is up.

    For data still on its way (a trace being batched, a log line being shipped, a
    scrape not yet made): an attempt returns None for "not there yet". All polls of
    a run share one budget, `--wait` seconds from the start of the checks, so a stack
    that is up but empty costs that long once, not once per box. An `ApiError` is not
    retried: a component that is down fails at once.
    """
    return wait_until(attempt, ctx.deadline - time.monotonic(), ctx.settings.poll_interval)
