"""How long each drill waits for its signals, computed from the alert windows.

Every number below is a copy of one in the stack's config files; the tests compare
them with the files (tests/drills/test_timing.py), so a changed window cannot leave
a drill giving up too early.

An alert travels: the service's counters -> a scrape (every `SCRAPE`) -> the
rule's expression turns true at an evaluation (every `EVALUATION`; `rate()` needs
two samples, so two scrapes) -> pending for the rule's `for:` -> firing, sent to
Alertmanager, which waits `GROUP_WAIT` before the first notification of a group
(`GROUP_INTERVAL` before a later one, a resolution included) -> the receiver prints
a line, which Alloy ships to Loki (`SHIPPING`). `MARGIN` absorbs the rest (a slow
machine, a poll round).
"""

from __future__ import annotations

__all__ = [
    "DRILL_ALERTS",
    "FAST_BURN",
    "FAST_BURN_FOR",
    "LATENCY_ALERT",
    "LATENCY_FOR",
    "LATENCY_OBJECTIVE",
    "LATENCY_WINDOW",
    "OBJECTIVE_SERIES",
    "SLOW_BURN",
    "error_spike_seconds",
    "latency_seconds",
    "loaded_die_seconds",
    "outage_seconds",
    "pipeline_seconds",
    "resolve_seconds",
    "return_seconds",
]

# stack/prometheus/prometheus.yml
SCRAPE = 5.0
"""The service's scrape interval."""
EVALUATION = 5.0
"""Rule evaluation interval."""

# stack/prometheus/rules/slo.rules.yml
FAST_BURN = "DiceErrorBudgetFastBurn"
FAST_BURN_FACTOR = 14.4
FAST_BURN_LONG = 3600.0
"""The fast burn's long window (1 h), which decides when it fires."""
FAST_BURN_SHORT = 300.0
"""Its short window (5 m), which decides when it stops."""
FAST_BURN_FOR = 60.0
SLOW_BURN = "DiceErrorBudgetSlowBurn"
SLOW_BURN_SHORT = 1800.0
"""The slow burn's short window (30 m)."""
FAIR_BUDGET = 0.001
"""The fair die's error budget: 1 - its 99.9 % SLO."""

# stack/prometheus/rules/latency.rules.yml
LATENCY_ALERT = "DiceRollLatencyHigh"
LATENCY_OBJECTIVE = 1.5
"""Seconds: the p99 of /roll the service promises. The probe reads it from Prometheus
(`OBJECTIVE_SERIES`); this copy is for the timing and for a Prometheus without it."""
OBJECTIVE_SERIES = "handler:http_request_duration_seconds:objective_p99"
LATENCY_WINDOW = 60.0
"""The p99 it watches is over the last minute (quantile_rate1m)."""
LATENCY_FOR = 60.0

# stack/alertmanager/alertmanager.yml
GROUP_WAIT = 10.0
GROUP_INTERVAL = 20.0

SHIPPING = 15.0
"""A line printed by a container to its being readable in Loki (Alloy, then Loki)."""
START = 30.0
"""A stopped service started again to its answering: compose starts the container, the
service starts up (its healthcheck allows 10 s)."""
MARGIN = 60.0

DRILL_ALERTS = (FAST_BURN, SLOW_BURN, LATENCY_ALERT)
"""The alerts drills make fire, which `recovery` follows back to resolved."""


def pipeline_seconds(hold: float) -> float:
    """From the condition's data existing to the receiver's line in Loki."""
    return 2 * SCRAPE + EVALUATION + hold + GROUP_WAIT + SHIPPING + MARGIN


def error_spike_seconds(fair_failure_rate: float) -> float:
    """The fair die's fast burn fires when its error ratio exceeds 14.4 x 0.1 % = 1.44 %
    over 1 h and over 5 m. The 5 m ratio gets there within seconds; the 1 h ratio, when
    the last hour saw traffic at the drill's pace, after 1 h x 1.44 % / failure rate of
    failing rolls: 104 s at 50 % (sooner on a stack younger than an hour). Then the
    rule pends a minute before it fires: about 4.4 min in all."""
    ramp = FAST_BURN_LONG * FAST_BURN_FACTOR * FAIR_BUDGET / fair_failure_rate
    return ramp + pipeline_seconds(FAST_BURN_FOR)


def latency_seconds(slow_share: float) -> float:
    """The p99 over the latency window passes the objective once more than 1 % of the
    window's requests are slow: after window x 1 % / share of slow requests (3 s for a
    fifth over 1 min). Then the rule pends a minute: about 2.7 min in all."""
    ramp = LATENCY_WINDOW * 0.01 / slow_share
    return ramp + pipeline_seconds(LATENCY_FOR)


def loaded_die_seconds(round_seconds: float) -> float:
    """No alert: the histogram skews within a few scrapes, and the generator judges
    its values at the end of each round; two rounds leave room for a round that began
    before the flag took effect."""
    return 2 * round_seconds + MARGIN


def resolve_seconds(alert: str) -> float:
    """An alert resolves once its shortest window holds no bad data: the burn-rate
    alerts' `and` needs both windows, so the short one decides; then Alertmanager
    sends the resolution at the group's next interval."""
    window = {FAST_BURN: FAST_BURN_SHORT, SLOW_BURN: SLOW_BURN_SHORT}.get(alert, LATENCY_WINDOW)
    return window + 2 * SCRAPE + EVALUATION + GROUP_INTERVAL + SHIPPING + MARGIN


def outage_seconds() -> float:
    """No alert: the frontend's errors reach Prometheus within two scrapes (Alloy
    scrapes it every 5 s, like Prometheus the dice-roller), its lines reach Loki and
    its spans Tempo within the shipping time, and the service graph counts a call
    nobody answered once its 10 s wait for the server span is over."""
    return 2 * SCRAPE + SHIPPING + MARGIN


def return_seconds() -> float:
    """The stopped service starts, then the frontend's successful calls reach
    Prometheus within two scrapes."""
    return START + 2 * SCRAPE + MARGIN
