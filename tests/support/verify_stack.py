"""How verify's tests see the stack: the session's native stack behind proxies, a fast
Prometheus, a fake Grafana (tests/verify/conftest.py starts them; its docstring says why
each), and settings for verify that point at it, or at nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nativestack.docker_api import STDERR
from nativestack.stack import NativeStack
from stackclient import Api, Loki, wait_until
from tests.support.fake_grafana import FakeGrafana
from tests.support.live_stack import roll
from tests.support.processes import eventually
from tests.support.prometheus import Prometheus
from tests.support.proxies import AlloyProxy, LokiProxy, TempoProxy
from tests.support.tools import closed_url
from verify.context import CONTAINER, JOB, Settings

STAND_IN_RULES = """
groups:
  - name: tempo-metrics-generator-stand-in
    interval: 1s
    rules:
      - record: traces_spanmetrics_calls_total
        expr: >-
          label_replace(label_replace(sum(http_requests_total{handler="/roll"}),
          "service", "dice-roller", "", ""), "span_kind", "SPAN_KIND_SERVER", "", "")
"""
SELECTOR = f'{{container_name="{CONTAINER}"}}'
NEWEST_READ = 500
"""How many of the newest lines of the last hour the Log Collection boxes read
(verify/logs.py): a line further back no longer crosses them."""
ARRIVAL = 60.0
"""Seconds to wait for data to travel through the native stack (usually one or two)."""
TIMEOUT = 10.0
"""The checks' --timeout here: their own default. A `| json` query over the last hour
of the shared stack's lines has taken Loki more than 2 s on this busy two-core machine,
and only the scenarios whose component hangs on purpose pay it in full."""


def prometheus_config(target: str, rules: Path | None) -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    if rules is not None:
        config["rule_files"] = [str(rules)]
    return yaml.safe_dump(config)


@dataclass
class Stack:
    native: NativeStack
    prometheus: Prometheus
    loki: LokiProxy
    tempo: TempoProxy
    alloy: AlloyProxy
    grafana: FakeGrafana
    written: list[str] = field(default_factory=list)
    """Lines `write_log_line` wrote that are still among those the checks read."""
    api: Api = field(default_factory=lambda: Api(timeout=30))
    """For the tests' own questions to the native stack (behind no proxy)."""

    @property
    def service_url(self) -> str:
        return self.native.service_url

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing at this stack: quick polls."""
        base = Settings(
            service_url=self.service_url,
            prometheus_url=self.prometheus.url,
            loki_url=self.loki.url,
            tempo_url=self.tempo.url,
            alloy_url=self.alloy.url,
            grafana_url=self.grafana.url,
            timeout=TIMEOUT,
            wait=10.0,
            poll_interval=0.1,
        )
        return replace(base, **overrides)

    def argv(self, *extra: str) -> list[str]:
        """The same, as command-line flags."""
        return [
            "--service-url", self.service_url,
            "--prometheus-url", self.prometheus.url,
            "--loki-url", self.loki.url,
            "--tempo-url", self.tempo.url,
            "--alloy-url", self.alloy.url,
            "--grafana-url", self.grafana.url,
            "--timeout", str(TIMEOUT),
            "--wait", "10",
            *extra,
        ]  # fmt: skip

    def roll_some(self, count: int = 12) -> list[str]:
        """Recent traffic, as a user has just before verifying: the dashboard's gauges
        and rates look at the last 20 s. Waits for Prometheus to scrape it; returns the
        rolls' trace ids."""
        trace_ids = self.roll(["fair" if index % 2 else "risky" for index in range(count)])
        before = time.time()

        def scraped() -> bool | None:
            result = self.prometheus.query(f'timestamp(up{{job="{JOB}"}})')
            return True if result and float(result[0]["value"][1]) > before + 0.5 else None

        if wait_until(scraped, 30):
            return trace_ids
        raise TimeoutError("Prometheus did not scrape the service after the traffic")

    def roll(self, dice: list[str]) -> list[str]:
        """Roll `dice` at once; the trace id each answer names."""
        return [made.trace_id for made in roll(self.service_url, dice)]

    def loki_lines(self, query: str, limit: int = 100) -> list[str]:
        """The newest lines of the last hour that `query` selects, asked of the real Loki
        (not through the proxy, however it misbehaves)."""
        now = time.time()
        streams = Loki(self.api, self.native.loki_url).streams(query, now - 3600, now + 5, limit)
        return [line for stream in streams for _, line in stream["values"]]

    def write_log_line(self, text: str, stream: int = STDERR) -> str:
        """Have the service's container print `text` (tagged to be found), and wait until
        real Alloy has shipped it to real Loki. Returns the line as printed.

        The checks read it at once, without polling for it: they poll for the service's
        lines, not for one line among them.
        """
        line = f"{text} [{uuid.uuid4().hex[:12]}]"
        self.native.container.log.append(stream, line.encode() + b"\n")
        self.written.append(line)
        eventually(
            lambda: self.loki_lines(f"{SELECTOR} |= {json.dumps(line)}"),
            f"the line {line!r} did not reach Loki",
            ARRIVAL,
        )
        return line

    def bury_written_lines(self) -> None:
        """Roll dice until the lines `write_log_line` wrote are no longer among the
        newest lines the Log Collection boxes read.

        Loki keeps a line for a week and cannot be made to forget it at once, and the
        native stack is the whole session's: a line that is not JSON would cross "JSON
        parsing works" for every later run of the checks against it (tests/nativestack/live's
        included) for as long as it is among the newest `NEWEST_READ` lines of the last
        hour. Real rolls push it out, as they would on a user's stack.
        """

        def pushed_out() -> bool | None:
            newest = set(self.loki_lines(SELECTOR, limit=NEWEST_READ))
            if not any(line in newest for line in self.written):
                return True
            self.roll(["fair"] * 50)
            return None

        what = f"rolls did not push {self.written} out of the newest lines"
        eventually(pushed_out, what, 2 * ARRIVAL, interval=0.5)
        self.written.clear()


def nothing_running(**overrides: Any) -> Settings:
    """Settings whose every component URL is one where nothing listens, asked once with a
    short timeout and no wait: every box that needs a component crosses at once."""
    dead = closed_url()
    base: dict[str, Any] = {
        "service_url": dead,
        "prometheus_url": dead,
        "loki_url": dead,
        "tempo_url": dead,
        "alloy_url": dead,
        "grafana_url": dead,
        "timeout": 1.0,
        "wait": 0.0,
    }
    return Settings(**{**base, **overrides})
