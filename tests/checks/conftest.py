"""One stack for the checks' tests: real service, real Prometheus, fakes for the rest.

- the real dice roller, as a process, exporting its spans over OTLP to a receiver
  (`tests/support/otlp.py`) with a short batch delay;
- a real Prometheus scraping it every second, job `dice-roller-stage1`, with exemplar
  storage, and one recording rule standing in for Tempo's metrics generator: the
  dashboard's "Trace Count" panel reads `traces_spanmetrics_calls_total`, which only
  Tempo writes, so the rule writes it from the server-side request count;
- `FakeLoki` fed the service's own stdout lines, `FakeTempo` fed the spans the
  receiver got, `FakeAlloy`, and `FakeGrafana` serving the repository's dashboard
  and data sources and running panel queries against the real Prometheus.

The stack is shared by the package's tests; every test starts with the fakes reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from checks.context import CONTAINER, DASHBOARD_FILE, DATASOURCES_DIR, JOB, Settings
from checks.dashboard import load_dashboard
from checks.provisioning import provisioned_datasources
from tests.checks.fakes import FakeAlloy, FakeGrafana, FakeLoki, FakeTempo
from tests.support.http_server import serving
from tests.support.otlp import OtlpReceiver, otlp_receiver
from tests.support.prometheus import Prometheus, running_prometheus
from tests.support.service import RunningService, running_service
from tests.support.tools import free_port

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


def prometheus_config(target: str, rules: Path | None) -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    if rules is not None:
        config["rule_files"] = [str(rules)]
    return yaml.safe_dump(config)


def closed_url() -> str:
    """A URL where nothing listens (a port that was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Stack:
    service: RunningService
    receiver: OtlpReceiver
    prometheus: Prometheus
    loki: FakeLoki
    tempo: FakeTempo
    alloy: FakeAlloy
    grafana: FakeGrafana

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing at this stack: short timeouts, quick polls."""
        base = Settings(
            service_url=self.service.url,
            prometheus_url=self.prometheus.url,
            loki_url=self.loki.url,
            tempo_url=self.tempo.url,
            alloy_url=self.alloy.url,
            grafana_url=self.grafana.url,
            timeout=2.0,
            wait=10.0,
            poll_interval=0.1,
        )
        return replace(base, **overrides)

    def argv(self, *extra: str) -> list[str]:
        """The same, as command-line flags."""
        return [
            "--service-url", self.service.url,
            "--prometheus-url", self.prometheus.url,
            "--loki-url", self.loki.url,
            "--tempo-url", self.tempo.url,
            "--alloy-url", self.alloy.url,
            "--grafana-url", self.grafana.url,
            "--timeout", "2",
            "--wait", "10",
            *extra,
        ]  # fmt: skip

    def roll_some(self, count: int = 12) -> None:
        """Recent traffic, as a user has just before verifying: the dashboard's gauges
        and rates look at the last 20 s. Waits for Prometheus to scrape it."""
        dice = ["fair" if index % 2 else "risky" for index in range(count)]
        with (
            httpx.Client(base_url=self.service.url, timeout=10) as client,
            ThreadPoolExecutor(max_workers=count) as pool,
        ):
            list(pool.map(lambda die: client.get("/roll", params={"die": die}), dice))
        before = time.time()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = self.prometheus.query(f'timestamp(up{{job="{JOB}"}})')
            if result and float(result[0]["value"][1]) > before + 0.5:
                return
            time.sleep(0.2)
        raise TimeoutError("Prometheus did not scrape the service after the traffic")


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rules = tmp_path_factory.mktemp("rules") / "stand-in.rules.yml"
    rules.write_text(STAND_IN_RULES, encoding="utf-8")
    dashboard = load_dashboard(DASHBOARD_FILE)
    datasources = provisioned_datasources(DATASOURCES_DIR)
    with otlp_receiver() as receiver:
        env = receiver.service_env(
            OTEL_BSP_SCHEDULE_DELAY="100",
            DICE_MAX_DELAY_SECONDS="0.2",
            # Half the risky rolls fail, so the error panels have data after a few rolls.
            DICE_RISKY_FAILURE_RATE="0.5",
        )
        with running_service(env) as service:
            target = service.url.removeprefix("http://")
            with running_prometheus(prometheus_config(target, rules)) as prometheus:
                prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
                loki = FakeLoki(
                    service.log_lines,
                    {
                        "container_name": CONTAINER,
                        "compose_service": "dice-roller",
                        "stream": "stdout",
                    },
                )
                with (
                    serving(loki),
                    serving(FakeTempo(receiver)) as tempo,
                    serving(FakeAlloy(["/dice-sandbox-loki-1", f"/{CONTAINER}"])) as alloy,
                    serving(FakeGrafana(dashboard, datasources, prometheus.url, loki)) as grafana,
                ):
                    stack = Stack(service, receiver, prometheus, loki, tempo, alloy, grafana)
                    # Two bursts, a scrape apart: counters that rise within the
                    # dashboard's range, so increase() panels show more than zero.
                    stack.roll_some()
                    stack.roll_some()
                    prometheus.wait_for("traces_spanmetrics_calls_total > 0")
                    yield stack


@pytest.fixture
def live(stack: Stack) -> Stack:
    """The shared stack, its fakes behaving again, with fresh traffic."""
    for fake in (stack.loki, stack.tempo, stack.alloy, stack.grafana):
        fake.reset()
    stack.roll_some()
    return stack
