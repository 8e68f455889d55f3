"""The numbers the drills' time limits are computed from are the stack's own: a changed
window, hold or timer in a config file fails here before a drill gives up too early."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from drills import timing
from tests.support.paths import ROOT
from tests.support.prometheus import JOB, load_config, parse_duration

RULES = ROOT / "stack" / "prometheus" / "rules"
ALERTMANAGER = ROOT / "stack" / "alertmanager" / "alertmanager.yml"


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
    assert "quantile_rate1m" in alert["expr"] and timing.LATENCY_WINDOW == 60
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
