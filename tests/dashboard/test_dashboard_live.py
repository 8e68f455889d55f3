"""Every Prometheus panel of the dashboard shows the right data, proved end to end.

One run, shared by the tests of this module, with real parts only:

1. the real service, as a process, rolling with a random delay of up to 0.5 s;
2. a real Prometheus with the project's own config and recording rules, scraping it;
3. the real traffic generator, sending a fixed rate of requests for 30 s (six
   scrapes at the project's 5 s interval, more than one 20 s `$__rate_interval`).

Then each query is taken out of the dashboard JSON, its macros replaced as Grafana
would, evaluated through Prometheus's HTTP API, and compared with what really
happened: the generator's own summary and the service's log lines.

Two moments matter (both are real scrape times, read from Prometheus):

- `busy`: a scrape while traffic flowed, whose whole `$__rate_interval` window is
  full of traffic: the rate-based panels (request rate, success rate, latency) are
  read there, as Grafana shows them during a run;
- `last`: the first scrape after the last request: the counters are final, so the
  panels summing over `$__range` (pie, bars) must match the generator's counts.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.dashboard_model import (
    JSON,
    ROOT,
    load_dashboard,
    panel_by_title,
    panels,
    provisioned_datasources,
)
from tests.support.grafana_macros import QueryContext, dashboard_variables, substitute
from tests.support.prometheus import JOB, Prometheus, parse_duration, running_project_prometheus
from tests.support.service import running_service

pytestmark = pytest.mark.slow

RATE = 30  # requests per second, sent on a fixed schedule (open loop)
DURATION = 30  # seconds of traffic
MAX_DELAY = 0.5
# 0.5 s rather than the usual short test delay: the latency buckets are 50 ms wide,
# so a delay spread over ten buckets gives percentiles worth checking. It costs no
# test time: with a fixed request rate, slower answers only mean more in flight.
RISKY_FAILURE_RATE = 0.1  # the service's default, named here for the expectations
GENERATOR = ROOT / "traffic-gen" / "generate_traffic.py"
TRACE_ID_HEX_DIGITS = 32


@dataclass
class Run:
    """What happened during the run, and the means to ask Prometheus about it."""

    prometheus: Prometheus
    dashboard: JSON
    summary: dict[str, Any]  # the generator's --json summary
    rolls: list[dict[str, Any]]  # the service's log records of roll events
    trace_ids: set[str]  # every trace id the service logged
    started: float  # just before Prometheus started: the dashboard's time range begins here
    busy: float
    last: float
    scrape_interval: timedelta  # as Grafana knows it (the data source's timeInterval)

    def context(self, target: JSON) -> QueryContext:
        """Grafana's macro values for `target` on a dashboard showing the whole run.

        For a range this short, Grafana's step ($__interval) is its minimum, the data
        source's scrape interval."""
        return QueryContext(
            interval=self.scrape_interval,
            time_range=timedelta(seconds=math.ceil(self.last - self.started)),
            scrape_interval=self.scrape_interval,
            instant=bool(target.get("instant")),
            variables=dashboard_variables(self.dashboard),
        )

    def moment(self, target: JSON) -> float:
        """When to read a target: summaries of the range at the end, rates mid-traffic."""
        return self.last if "$__range" in target["expr"] else self.busy

    def evaluate(self, title: str, ref: str = "A") -> list[dict[str, Any]]:
        """The instant result of one target of a panel, as Prometheus returns it."""
        [target] = [
            t for t in panel_by_title(self.dashboard, title)["targets"] if t["refId"] == ref
        ]
        expr = substitute(target["expr"], self.context(target))
        return self.prometheus.query(expr, self.moment(target))

    def rate_window(self) -> tuple[float, float]:
        """The `$__rate_interval` window that ends at `busy`."""
        seconds = QueryContext(self.scrape_interval, scrape_interval=self.scrape_interval)
        return self.busy - seconds.rate_interval.total_seconds(), self.busy

    def rolls_between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [roll for roll in self.rolls if start < roll["at"] <= end]


def _grafana_scrape_interval() -> timedelta:
    [prometheus] = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    interval = prometheus.get("jsonData", {}).get("timeInterval", "15s")  # Grafana's default
    return timedelta(seconds=parse_duration(interval))


def _run_generator(url: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(GENERATOR),
        *("--url", url, "--rate", str(RATE), "--duration", str(DURATION)),
        *("--seed", "20261128", "--json", "--quiet"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=DURATION + 120, check=False
    )
    assert done.returncode == 0, f"traffic generator failed:\n{done.stderr}"
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _roll_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roll events of the service's log, each with `at`, its time in Unix seconds."""
    rolls = []
    for record in records:
        if record.get("message") in {"Roll completed", "Roll failed"}:
            at = datetime.fromisoformat(record["timestamp"]).timestamp()
            rolls.append({**record, "at": at})
    return rolls


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    env = {
        "DICE_MAX_DELAY_SECONDS": str(MAX_DELAY),
        "DICE_RISKY_FAILURE_RATE": str(RISKY_FAILURE_RATE),
        "DICE_SEED": "7",
        # Spans are still made (the exemplars and log lines carry their ids); none is sent.
        "OTEL_TRACES_EXPORTER": "none",
    }
    with running_service(env) as service:
        started = datetime.now().timestamp()
        target = service.url.removeprefix("http://")
        with running_project_prometheus({JOB: [target]}) as prometheus:
            # Traffic starts only once Prometheus has seen the counters at zero, so the
            # dashboard's increase() over the range counts every roll.
            prometheus.wait_for_scrape_after(JOB, started)
            summary = _run_generator(service.url)
            records = service.log_records()
            rolls = _roll_records(records)
            assert rolls, "the service logged no roll"
            first, final = min(r["at"] for r in rolls), max(r["at"] for r in rolls)
            last = prometheus.wait_for_scrape_after(JOB, final)
            scrape = _grafana_scrape_interval()
            window = QueryContext(scrape, scrape_interval=scrape).rate_interval.total_seconds()
            scrapes = prometheus.scrape_times(JOB, last)
            full = [t for t in scrapes if first <= t - window and t <= final]
            assert full, "traffic too short: no scrape has a rate window full of it"
            yield Run(
                prometheus=prometheus,
                dashboard=load_dashboard(),
                summary=summary,
                rolls=rolls,
                trace_ids={r["trace_id"] for r in records if "trace_id" in r},
                started=started,
                busy=max(full),
                last=last,
                scrape_interval=scrape,
            )


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _by(label: str, result: list[dict[str, Any]]) -> dict[str, float]:
    return {sample["metric"].get(label, ""): _value(sample) for sample in result}


def _only(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return _value(result[0])


# --- Every query ------------------------------------------------------------------------


def test_every_prometheus_query_is_accepted_and_panels_show_data(run: Run) -> None:
    """Each Prometheus query of the dashboard runs; each panel but Trace Count has data.

    Trace Count reads span metrics that Tempo's metrics generator writes into
    Prometheus; no Tempo runs here, so that query can only be shown to be accepted."""
    checked = 0
    for panel in panels(run.dashboard):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != "prometheus":
                continue
            result = run.evaluate(panel["title"], target["refId"])
            checked += 1
            if panel["title"] != "Trace Count":
                assert result, f"{panel['title']} {target['refId']}: no data"
                assert all(math.isfinite(_value(s)) for s in result), (panel["title"], result)
    assert checked >= 10


# --- Overview ---------------------------------------------------------------------------


def test_request_rate_matches_the_requests_really_answered(run: Run) -> None:
    start, end = run.rate_window()
    answered = len(run.rolls_between(start, end)) / (end - start)
    shown = sum(_by("status", run.evaluate("Request Rate")).values())
    assert shown == pytest.approx(answered, rel=0.1), (shown, answered)
    assert shown == pytest.approx(run.summary["achieved_rate"], rel=0.2)


def test_request_rate_splits_into_successes_and_server_errors(run: Run) -> None:
    by_status = _by("status", run.evaluate("Request Rate"))
    assert set(by_status) <= {"2xx", "5xx"} and by_status["2xx"] > by_status.get("5xx", 0)


def test_success_rate_is_what_the_dice_mix_predicts(run: Run) -> None:
    shown = _only(run.evaluate("Success Rate"))
    window = run.rolls_between(*run.rate_window())
    observed = sum(r["level"] != "ERROR" for r in window) / len(window)
    assert shown == pytest.approx(observed, abs=0.02)
    dice = run.summary["dice"]
    risky_share = dice["risky"]["requests"] / (dice["risky"]["requests"] + dice["fair"]["requests"])
    expected = 1 - risky_share * RISKY_FAILURE_RATE
    spread = 4 * math.sqrt(expected * (1 - expected) / len(window))  # binomial, 4 sigma
    assert abs(shown - expected) <= spread + 0.01, (shown, expected, spread)


def test_errors_come_only_from_the_risky_die(run: Run) -> None:
    [target] = panel_by_title(run.dashboard, "Error Rate by Die Type")["targets"]
    expr = substitute(target["expr"], run.context(target))
    step = run.scrape_interval.total_seconds()
    series = run.prometheus.query_range(expr, run.started, run.last, step)
    peaks = {s["metric"]["die_type"]: max(float(v) for _, v in s["values"]) for s in series}
    assert peaks.get("fair", 0.0) == 0.0
    assert peaks["risky"] > 0
    failed = Counter(r["die_type"] for r in run.rolls if r["level"] == "ERROR")
    assert set(failed) == {"risky"}


# --- Latency ----------------------------------------------------------------------------


def test_latency_percentiles_follow_the_configured_delay(run: Run) -> None:
    """A uniform delay of 0 to 0.5 s puts p50 near 0.25 s and p95, p99 near 0.5 s."""
    p50, p95, p99 = (_only(run.evaluate("Request Duration", ref)) for ref in "ABC")
    assert p50 < p95 <= p99
    assert 0.15 <= p50 <= 0.35
    assert 0.40 <= p95 <= 0.60
    assert 0.42 <= p99 <= 0.70
    client = run.summary["latency_seconds"]  # what the generator measured, whole run
    assert p50 == pytest.approx(client["p50"], abs=0.08)
    assert p95 == pytest.approx(client["p95"], abs=0.08)


def test_exemplars_carry_trace_ids_the_service_produced(run: Run) -> None:
    """The dots on Request Duration: each links a bucket to the trace of a real request."""
    panel = panel_by_title(run.dashboard, "Request Duration")
    for target in panel["targets"]:
        assert target["exemplar"]
        expr = substitute(target["expr"], run.context(target))
        found = run.prometheus.exemplars(expr, run.started, run.last)
        exemplars = [(s["seriesLabels"], e) for s in found for e in s["exemplars"]]
        assert exemplars, f"{target['refId']}: no exemplars"
        for series_labels, exemplar in exemplars:
            trace_id = exemplar["labels"]["trace_id"]
            assert len(trace_id) == TRACE_ID_HEX_DIGITS and int(trace_id, 16) != 0
            assert trace_id in run.trace_ids, f"exemplar trace id {trace_id} was never logged"
            # An exemplar is a real observation of its bucket: at most its upper bound.
            assert 0 <= float(exemplar["value"]) <= float(series_labels["le"])


def test_average_roll_time_is_the_same_for_both_dice(run: Run) -> None:
    shown = _by("die_type", run.evaluate("Average Response Time by Die Type"))
    assert set(shown) == {"fair", "risky"}
    for die, seconds in shown.items():
        assert 0.18 <= seconds <= 0.33, (die, seconds)  # mean of a 0-0.5 s uniform delay
        client = run.summary["dice"][die]["latency_seconds"]["mean"]
        assert seconds == pytest.approx(client, abs=0.05)


# --- Roll distribution ------------------------------------------------------------------


def test_rolls_by_die_count_every_roll(run: Run) -> None:
    shown = _by("die_type", run.evaluate("Rolls by Die Type"))
    sent = {die: info["requests"] for die, info in run.summary["dice"].items()}
    assert shown == pytest.approx(sent, abs=0.5)
    logged = Counter(r["die_type"] for r in run.rolls)
    assert shown == pytest.approx(dict(logged), abs=0.5)


def _per_value(result: list[dict[str, Any]]) -> dict[int, float]:
    """What Grafana's heatmap format draws: each bucket minus the bucket below it."""
    cumulative = sorted((float(s["metric"]["le"]), _value(s)) for s in result)
    bars: dict[int, float] = {}
    below = 0.0
    for bound, count in cumulative:
        bars[int(bound)] = count - below
        below = count
    return bars


@pytest.mark.parametrize(
    ("die", "title", "faces"),
    [
        ("fair", "Roll Value Distribution (Fair)", range(1, 7)),
        ("risky", "Roll Value Distribution (Risky)", range(2, 8)),
    ],
)
def test_value_distribution_counts_each_value(run: Run, die: str, title: str, faces: range) -> None:
    bars = _per_value(run.evaluate(title))
    assert list(bars) == list(faces)
    rolled = run.summary["dice"][die]["values"]
    assert bars == pytest.approx({int(face): n for face, n in rolled.items()}, abs=0.5)
    assert run.summary["dice"][die]["unexpected_values"] == {}


@pytest.mark.parametrize(("die", "low", "high"), [("fair", 1, 6), ("risky", 2, 7)])
def test_no_value_outside_the_die_reaches_prometheus(
    run: Run, die: str, low: int, high: int
) -> None:
    """The panels keep only the die's faces; the raw buckets prove nothing was hidden."""
    buckets = _by(
        "le", run.prometheus.query(f'dice_roll_value_bucket{{die_type="{die}"}}', run.last)
    )
    below_low = buckets.get(f"{low - 1}.0", 0.0)  # the fair die has no bucket below 1
    assert below_low == 0
    assert buckets[f"{high}.0"] == buckets["+Inf"] > 0


def test_the_service_logs_carry_real_trace_ids(run: Run) -> None:
    assert all(len(r["trace_id"]) == TRACE_ID_HEX_DIGITS for r in run.rolls)
    assert len({r["trace_id"] for r in run.rolls}) == len(run.rolls)  # one trace per request
