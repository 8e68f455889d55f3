"""The Prometheus probes against a real Prometheus (the pinned build) on the project's
config and rules, scraping the real service, and the alert probes against a real
Prometheus evaluating alerts of the drills' names."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from drills.alert_probes import (
    AlertRef,
    alert_pending,
    firing_alerts,
    prometheus_firing,
    prometheus_resolved,
    rule_hold_seconds,
)
from drills.context import DrillContext
from drills.probes import error_ratio, latency_objective, p99_above, value_skew
from drills.settings import DrillSettings
from drills.timing import DRILL_ALERTS, LATENCY_OBJECTIVE
from stackclient import Api
from tests.support.prometheus import JOB, Prometheus, running_project_prometheus, running_prometheus
from tests.support.service import running_service

ROLLS = 120
"""Rolls of each die: enough for every probe to judge (20 for a ratio, 30 for a skew)."""


@dataclass
class Scraped:
    prometheus: Prometheus
    started: float


@pytest.fixture(scope="module")
def scraped() -> Iterator[Scraped]:
    """The service, with half the risky rolls failing and rolls of up to 2.5 s (a p99
    past the 1.5 s objective), rolled `ROLLS` times per die and scraped since."""
    env = {"DICE_RISKY_FAILURE_RATE": "0.5", "DICE_MAX_DELAY_SECONDS": "2.5"}
    with (
        running_service(env) as service,
        running_project_prometheus({JOB: [f"127.0.0.1:{service.port}"]}) as prometheus,
    ):
        prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
        started = time.time()

        def roll(die: str) -> int:
            url = f"{service.url}/roll"
            return httpx.get(url, params={"die": die}, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=60) as pool:
            statuses = list(pool.map(roll, ["fair", "risky"] * ROLLS))
        assert set(statuses) == {200, 500}
        prometheus.wait_for_scrape_after(JOB, time.time())
        yield Scraped(prometheus, started)


def _ctx(prometheus: Prometheus, started: float) -> Iterator[DrillContext]:
    api = Api(timeout=10)
    try:
        yield DrillContext(DrillSettings(prometheus_url=prometheus.url), api, started=started)
    finally:
        api.close()


@pytest.fixture
def ctx(scraped: Scraped) -> Iterator[DrillContext]:
    yield from _ctx(scraped.prometheus, scraped.started - 5)


def test_the_error_ratio_responds_for_the_die_that_fails_and_not_for_the_other(
    ctx: DrillContext,
) -> None:
    risky = error_ratio(ctx, {"risky": 0.3})
    assert risky.responded, risky.detail
    assert f"of {ROLLS} rolls failed" in risky.detail.replace(f"{ROLLS + 1}", f"{ROLLS}")
    fair = error_ratio(ctx, {"fair": 0.25})
    assert not fair.responded
    assert fair.detail.startswith("fair 0% of") and "(waiting for 25%)" in fair.detail


def test_a_fair_die_s_value_histogram_does_not_read_as_skewed(ctx: DrillContext) -> None:
    reading = value_skew(ctx)
    assert not reading.responded
    assert "fair: 6 on" in reading.detail and "risky: 7 on" in reading.detail
    assert "(a fair die: about 17%)" in reading.detail


def test_p99_is_judged_against_the_objective_prometheus_records(ctx: DrillContext) -> None:
    objective = latency_objective(ctx, fallback=99.0)
    assert objective == LATENCY_OBJECTIVE, "the latency rules record the objective as a series"
    reading = p99_above(ctx, fallback_objective=99.0)
    assert reading.responded, reading.detail
    assert f"(objective {LATENCY_OBJECTIVE:g} s)" in reading.detail


def test_nothing_responds_before_any_roll_of_the_drill(scraped: Scraped) -> None:
    for ctx in _ctx(scraped.prometheus, time.time()):
        assert not error_ratio(ctx, {"risky": 0.3}).responded
        assert not value_skew(ctx).responded
        assert not p99_above(ctx, LATENCY_OBJECTIVE).responded


RULES = """\
groups:
  - name: drill-alerts
    rules:
      - alert: DiceErrorBudgetFastBurn
        expr: vector(1)
        for: 10m
        labels: {die_type: fair}
      - alert: DiceRollLatencyHigh
        expr: vector(1)
      - alert: SomethingElse
        expr: vector(1)
"""


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus holding one alert pending (its `for:` not over) and one firing
    (no `for:`), both with names the drills follow."""
    rules = Path(tmp_path_factory.mktemp("rules")) / "alerts.yml"
    rules.write_text(RULES, encoding="utf-8")
    config = textwrap.dedent(
        f"""\
        global:
          evaluation_interval: 1s
        rule_files: [{rules}]
        """
    )
    with running_prometheus(config) as prometheus:
        prometheus.wait_for('ALERTS{alertname="DiceRollLatencyHigh", alertstate="firing"}')
        prometheus.wait_for('ALERTS{alertname="DiceErrorBudgetFastBurn", alertstate="pending"}')
        yield prometheus


@pytest.fixture
def alert_ctx(alerting: Prometheus) -> Iterator[DrillContext]:
    yield from _ctx(alerting, time.time())


FAST = AlertRef("DiceErrorBudgetFastBurn", {"die_type": "fair"})
LATENCY = AlertRef("DiceRollLatencyHigh")


def test_a_pending_alert_reads_pending_and_not_firing(alert_ctx: DrillContext) -> None:
    assert alert_pending(alert_ctx, FAST).detail == f"{FAST} is pending in Prometheus"
    assert not prometheus_firing(alert_ctx, FAST).responded
    assert rule_hold_seconds(alert_ctx, FAST.name) == 600


def test_an_alert_without_for_is_said_to_skip_pending(alert_ctx: DrillContext) -> None:
    pending = alert_pending(alert_ctx, LATENCY)
    assert pending.responded
    assert "went straight to firing (its rule has no `for:`" in pending.detail
    assert prometheus_firing(alert_ctx, LATENCY).responded
    assert not prometheus_resolved(alert_ctx, LATENCY).responded


def test_labels_tell_namesakes_apart(alert_ctx: DrillContext) -> None:
    risky = AlertRef("DiceErrorBudgetFastBurn", {"die_type": "risky"})
    assert not alert_pending(alert_ctx, risky).responded
    assert prometheus_resolved(alert_ctx, risky).responded


def test_firing_alerts_are_the_drills_alerts_prometheus_holds(alert_ctx: DrillContext) -> None:
    assert firing_alerts(alert_ctx, DRILL_ALERTS) == [FAST, LATENCY]
    assert firing_alerts(alert_ctx, ("DiceRollLatencyHigh",)) == [LATENCY]
