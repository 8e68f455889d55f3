"""The checks' tests: the native stack behind proxies, a fast Prometheus, a fake Grafana.

- The service, Loki, Alloy and Tempo are the session's native stack (the `native`
  fixture of tests/conftest.py, nativestack/): the real service, real Loki 3.7.6 and
  Alloy 1.18.1 on the shipped configs, and the Tempo stand-in. The service's stdout
  travels through real Alloy into real Loki, its spans through Alloy to Tempo.
- The checks reach Loki, Tempo and Alloy through proxies (tests/verify/proxies.py)
  that pass the real answers on unless a scenario sets a fault or a knob.
- Prometheus is this package's own, not `native.prometheus_url`: a real Prometheus
  scraping the native service (its namespace address, reachable from the host) every
  second, job `dice-roller-stage1`, with exemplar storage, and one recording rule
  standing in for Tempo's metrics generator. The dashboard's "Trace Count" panel reads
  `traces_spanmetrics_calls_total`, which only Tempo writes; the native stack's Tempo
  stand-in writes none (docs/native-stack.md), so against the native Prometheus that
  box could never tick. The 1 s scrapes also keep each test's wait for its traffic to
  be scraped short (the shipped config scrapes every 5 s).
- Grafana is `FakeGrafana` (tests/verify/fake_grafana.py), since no Grafana can run
  here; it runs its Loki queries against the real Loki (through the proxy), its
  Prometheus queries against this package's Prometheus, and passes its Alertmanager
  data source's requests to the native stack's real Alertmanager.

The native stack is shared with every package of the session, so nothing here may
leave it changed: faults live in the proxies, and the one kind of line a scenario
writes into the service's log that would cross a box for later runs of the checks
(a line that is not JSON) is pushed out of what the checks read before the test ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from nativestack.docker_api import STDERR
from nativestack.stack import NativeStack
from tests.support.http_server import serving
from tests.support.processes import eventually as wait_for
from tests.support.prometheus import Prometheus, running_prometheus
from tests.support.tools import free_port
from verify.context import CONTAINER, DASHBOARD_FILE, DATASOURCES_DIR, JOB, Settings
from verify.dashboard import load_dashboard
from verify.provisioning import provisioned_datasources
from verify.service import parse_traceresponse

from .fake_grafana import FakeGrafana
from .proxies import AlloyProxy, LokiProxy, TempoProxy

T = TypeVar("T")

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


def closed_url() -> str:
    """A URL where nothing listens (a port that was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


def eventually(probe: Callable[[], T | None], what: str, timeout: float = ARRIVAL) -> T:
    """`tests.support.processes.eventually` with this package's patience."""
    return wait_for(probe, what, timeout)


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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = self.prometheus.query(f'timestamp(up{{job="{JOB}"}})')
            if result and float(result[0]["value"][1]) > before + 0.5:
                return trace_ids
            time.sleep(0.2)
        raise TimeoutError("Prometheus did not scrape the service after the traffic")

    def roll(self, dice: list[str]) -> list[str]:
        """Roll `dice` at once; the trace id each answer names."""
        with (
            httpx.Client(base_url=self.service_url, timeout=10) as client,
            ThreadPoolExecutor(max_workers=min(len(dice), 16)) as pool,
        ):
            answers = list(pool.map(lambda die: client.get("/roll", params={"die": die}), dice))
        ids = [parse_traceresponse(answer.headers.get("traceresponse")) for answer in answers]
        return [found[0] for found in ids if found is not None]

    def loki_lines(self, query: str, limit: int = 100) -> list[str]:
        """The newest lines of the last hour that `query` selects, asked of the real Loki
        (not through the proxy, whatever fault it has)."""
        now = time.time()
        response = httpx.get(
            f"{self.native.loki_url}/loki/api/v1/query_range",
            params={
                "query": query,
                "start": str(int((now - 3600) * 1e9)),
                "end": str(int((now + 5) * 1e9)),
                "limit": str(limit),
                "direction": "backward",
            },
            timeout=30,
        )
        assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
        return [
            line for stream in response.json()["data"]["result"] for _, line in stream["values"]
        ]

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

        def still_read() -> bool:
            newest = set(self.loki_lines(SELECTOR, limit=NEWEST_READ))
            return any(line in newest for line in self.written)

        deadline = time.monotonic() + 2 * ARRIVAL
        while still_read():
            if time.monotonic() > deadline:
                pytest.fail(f"rolls did not push {self.written} out of the newest lines")
            self.roll(["fair"] * 50)
            time.sleep(0.5)
        self.written.clear()


@pytest.fixture(scope="package")
def stack(native: NativeStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rules = tmp_path_factory.mktemp("rules") / "stand-in.rules.yml"
    rules.write_text(STAND_IN_RULES, encoding="utf-8")
    dashboard = load_dashboard(DASHBOARD_FILE)
    datasources = provisioned_datasources(DATASOURCES_DIR)
    target = native.service_url.removeprefix("http://")
    with running_prometheus(prometheus_config(target, rules)) as prometheus:
        prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
        with (
            serving(LokiProxy(native.loki_url)) as loki,
            serving(TempoProxy(native.tempo_url)) as tempo,
            serving(AlloyProxy(native.alloy_url)) as alloy,
            serving(
                FakeGrafana(
                    dashboard, datasources, prometheus.url, loki.url, native.alertmanager_url
                )
            ) as grafana,
        ):
            stack = Stack(native, prometheus, loki, tempo, alloy, grafana)
            # Two bursts, a scrape apart: counters that rise within the
            # dashboard's range, so increase() panels show more than zero.
            stack.roll_some()
            [*_, last] = stack.roll_some()
            prometheus.wait_for("traces_spanmetrics_calls_total > 0")
            # Data already there, as on a stack that has been running: the scenarios'
            # short waits then only cover their own fresh request.
            eventually(
                lambda: stack.loki_lines(f"{SELECTOR} |= {json.dumps(last)}"),
                f"no line of trace {last} in Loki",
            )
            eventually(
                lambda: (
                    httpx.get(f"{native.tempo_url}/api/v2/traces/{last}", timeout=10)
                    .json()["trace"]
                    .get("resourceSpans")
                ),
                f"trace {last} did not reach Tempo",
            )
            yield stack


@pytest.fixture
def live(stack: Stack) -> Iterator[Stack]:
    """The shared stack, behaving again, with fresh traffic; after the test, no line
    it wrote into the service's log is still read by the checks."""
    for server in (stack.loki, stack.tempo, stack.alloy, stack.grafana):
        server.reset()
    stack.roll_some()
    yield stack
    stack.bury_written_lines()
