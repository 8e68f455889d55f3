"""The checks' tests: the native stack behind proxies, a fast Prometheus, a fake Grafana.

- The service, Loki, Alloy and Tempo are the session's native stack (the `native`
  fixture of tests/conftest.py, nativestack/): the real service, real Loki 3.7.6 and
  Alloy 1.18.1 on the shipped configs, and the Tempo stand-in. The service's stdout
  travels through real Alloy into real Loki, its spans through Alloy to Tempo.
- The checks reach Loki, Tempo and Alloy through proxies (tests/support/proxies.py)
  that pass the real answers on unless a scenario makes them misbehave or sets a knob.
- Prometheus is this package's own, not `native.prometheus_url`: a real Prometheus
  scraping the native service (its namespace address, reachable from the host) every
  second, job `dice-roller-stage1`, with exemplar storage, and one recording rule
  standing in for Tempo's metrics generator. The dashboard's "Trace Count" panel reads
  `traces_spanmetrics_calls_total`, which only Tempo writes; the native stack's Tempo
  stand-in writes none (docs/native-stack.md), so against the native Prometheus that
  box could never tick. The 1 s scrapes also keep each test's wait for its traffic to
  be scraped short (the shipped config scrapes every 5 s).
- Grafana is `FakeGrafana` (tests/support/fake_grafana.py), since no Grafana can run
  here; it runs its Loki queries against the real Loki (through the proxy), its
  Prometheus queries against this package's Prometheus, and passes its Alertmanager
  data source's requests to the native stack's real Alertmanager.

The native stack is shared with every package of the session, so nothing here may
leave it changed: misbehaviour lives in the proxies, and the one kind of line a scenario
writes into the service's log that would cross a box for later runs of the checks
(a line that is not JSON) is pushed out of what the checks read before the test ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from nativestack.stack import NativeStack
from stackclient import Tempo
from tests.support.fake_grafana import FakeGrafana
from tests.support.http_server import serving
from tests.support.processes import eventually
from tests.support.prometheus import running_prometheus
from tests.support.proxies import AlloyProxy, LokiProxy, TempoProxy
from tests.support.verify_stack import (
    ARRIVAL,
    SELECTOR,
    STAND_IN_RULES,
    Stack,
    prometheus_config,
)
from verify.context import DASHBOARD_FILE, DATASOURCES_DIR, JOB
from verify.dashboard import load_dashboard
from verify.provisioning import provisioned_datasources


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
                ARRIVAL,
            )
            real_tempo = Tempo(stack.api, native.tempo_url)
            eventually(
                lambda: real_tempo.trace(last)["trace"].get("resourceSpans"),
                f"trace {last} did not reach Tempo",
                ARRIVAL,
            )
            yield stack
            stack.api.close()


@pytest.fixture
def live(stack: Stack) -> Iterator[Stack]:
    """The shared stack, behaving again, with fresh traffic; after the test, no line
    it wrote into the service's log is still read by the checks."""
    for server in (stack.loki, stack.tempo, stack.alloy, stack.grafana):
        server.reset()
    stack.roll_some()
    yield stack
    stack.bury_written_lines()
