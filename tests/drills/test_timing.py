"""The numbers the drills' time limits are computed from are the stack's own: a changed
window, hold or timer in a config file fails here before a drill gives up too early."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from drills import timing
from drills.catalogue import FAILURE_RATES, SLOW_SHARE
from tests.support.paths import ROOT
from tests.support.prometheus import JOB, load_config, parse_duration

RULES = ROOT / "stack" / "prometheus" / "rules"
ALERTMANAGER = ROOT / "stack" / "alertmanager" / "alertmanager.yml"
DOCS = ROOT / "docs" / "drills.md"


def _rules(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alerts(name: str) -> list[dict[str, Any]]:
    found = [r for p in RULES.glob("*.yml") for r in _rules(p) if r.get("alert") == name]
    assert found, f"no alert {name} in {RULES}"
    return found


def _windows(expr: str) -> set[float]:
    """The ranges of the recorded ratios an expression reads (`..._ratio_rate1h` -> 3600)."""
    return {parse_duration(w) for w in re.findall(r"ratio_rate(\d+[smh])", expr)}


def test_scrape_and_evaluation_intervals() -> None:
    config = load_config()
    [job] = [s for s in config["scrape_configs"] if s["job_name"] == JOB]
    assert parse_duration(job["scrape_interval"]) == timing.SCRAPE
    assert parse_duration(config["global"]["evaluation_interval"]) == timing.EVALUATION


def test_the_fair_die_s_fast_burn() -> None:
    [fair] = [r for r in _alerts(timing.FAST_BURN) if 'die_type="fair"' in r["expr"]]
    assert _windows(fair["expr"]) == {timing.FAST_BURN_LONG, timing.FAST_BURN_SHORT}
    threshold = f"({timing.FAST_BURN_FACTOR:g} * {timing.FAIR_BUDGET:g})"
    assert fair["expr"].count(threshold) == 2, fair["expr"]
    assert parse_duration(fair.get("for", "0s")) == timing.FAST_BURN_FOR
    assert fair["labels"]["slo"] == f"{100 * (1 - timing.FAIR_BUDGET):g}%"


def test_the_slow_burn_s_short_window() -> None:
    for rule in _alerts(timing.SLOW_BURN):
        assert min(_windows(rule["expr"])) == timing.SLOW_BURN_SHORT


def test_the_latency_alert_its_objective_window_and_hold() -> None:
    [alert] = _alerts(timing.LATENCY_ALERT)
    assert parse_duration(alert["for"]) == timing.LATENCY_FOR
    # The p99 it reads is recorded over a range (`[1m]`): that range is the window.
    [series] = re.findall(r"handler:http_request_duration_seconds:quantile_rate\w+", alert["expr"])
    assert 'quantile="0.99"' in alert["expr"]
    [p99] = [
        rule
        for path in RULES.glob("*.yml")
        for rule in _rules(path)
        if rule.get("record") == series and rule.get("labels", {}).get("quantile") == "0.99"
    ]
    [window] = re.findall(r"\[(\w+)\]", p99["expr"])
    assert parse_duration(window) == timing.LATENCY_WINDOW
    assert timing.OBJECTIVE_SERIES in alert["expr"]
    [objective] = [
        rule
        for path in RULES.glob("*.yml")
        for rule in _rules(path)
        if rule.get("record") == timing.OBJECTIVE_SERIES
    ]
    assert objective["expr"] == f"vector({timing.LATENCY_OBJECTIVE:g})"


def test_alertmanager_s_timers() -> None:
    route = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))["route"]
    assert parse_duration(route["group_wait"]) == timing.GROUP_WAIT
    assert parse_duration(route["group_interval"]) == timing.GROUP_INTERVAL


def test_each_drill_waits_longer_than_its_slowest_step() -> None:
    """The give-up times are the steps added up, with a margin: the error spike's covers
    the 1 h window's ramp and the hold; recovery's, the short window it waits out."""
    assert timing.error_spike_seconds(0.5) > 104 + timing.FAST_BURN_FOR + timing.GROUP_WAIT
    assert timing.latency_seconds(0.2) > 3 + timing.LATENCY_FOR + timing.GROUP_WAIT
    assert timing.resolve_seconds(timing.FAST_BURN) > timing.FAST_BURN_SHORT
    assert timing.resolve_seconds(timing.SLOW_BURN) > timing.SLOW_BURN_SHORT
    assert timing.resolve_seconds(timing.LATENCY_ALERT) > timing.LATENCY_WINDOW


def test_the_waits_docs_drills_md_quotes_are_the_computed_ones() -> None:
    """docs/drills.md quotes each wait in minutes: a changed window must change them there."""
    spike = timing.error_spike_seconds(FAILURE_RATES["half"]["fair"]) / 60
    latency = timing.latency_seconds(SLOW_SHARE) / 60
    fast = timing.resolve_seconds(timing.FAST_BURN) / 60
    slow = timing.resolve_seconds(timing.SLOW_BURN) / 60
    assert [f"{minutes:.1f}" for minutes in (spike, latency, fast, slow)] == [
        "4.4",
        "2.7",
        "6.8",
        "31.8",
    ]
    docs = " ".join(DOCS.read_text(encoding="utf-8").split())
    for quoted in (
        f"the drill waits up to about {spike:.1f} minutes",
        f"the same trip: about {latency:.1f} minutes",
        f"about {fast:.0f} minutes for the fast burn, {slow:.0f} for the slow burn",
        f"`recovery` then waits about {slow:.0f} minutes",
        f"so it waits about {slow:.0f} minutes",
        f"which makes that wait about {fast:.0f} minutes",
    ):
        assert quoted in docs
    outage = f"waits up to {timing.outage_seconds():.0f} s for the outage, then up to "
    outage += f"{timing.return_seconds():.0f} s for the return"
    assert docs.count(outage) == 2, "upstream-down and die-service-down quote their waits"
