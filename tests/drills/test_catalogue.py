"""The catalogue: what each drill shows the user exists and parses, and the numbers
the probes judge by separate a broken service from a healthy one."""

from __future__ import annotations

import math

from checks.context import DASHBOARD_FILE
from checks.dashboard import load_dashboard, panels_of
from drills.alert_probes import AlertRef, receiver_query
from drills.catalogue import DRILLS, ERROR_LINES, LOADED_LINES, SLOW_LINES
from drills.probes import SKEW_MIN_ROLLS, SKEW_SIGMAS, Span, flag_event
from drills.timing import DRILL_ALERTS
from tests.support.grammars import parse_errors_batch, require_grammars


def _panel_titles() -> set[str]:
    return {str(panel.get("title")) for panel in panels_of(load_dashboard(DASHBOARD_FILE))}


def test_every_panel_a_drill_names_is_on_the_dashboard() -> None:
    titles = _panel_titles()
    for drill in DRILLS.values():
        assert drill.look.panels, drill.name
        missing = [title for title in drill.look.panels if title not in titles]
        assert missing == [], f"{drill.name} names panels the dashboard lacks: {missing}"


def test_every_query_a_drill_shows_or_runs_parses_with_grafana_s_grammars() -> None:
    require_grammars()
    queries = [("logql", drill.look.logql) for drill in DRILLS.values()]
    queries += [("traceql", drill.look.traceql) for drill in DRILLS.values()]
    for lines in (ERROR_LINES, SLOW_LINES, LOADED_LINES):
        queries += [("logql", query) for query in lines.values()]
    for status in ("firing", "resolved"):
        queries += [("logql", receiver_query(AlertRef(name), status)) for name in DRILL_ALERTS]
    errors = parse_errors_batch(queries)
    bad = [(query, error) for (_, query), error in zip(queries, errors, strict=True) if error]
    assert bad == []


def test_every_alert_a_drill_names_is_one_recovery_follows() -> None:
    for drill in DRILLS.values():
        for alert in drill.look.alerts:
            assert alert.split("{")[0] in DRILL_ALERTS, (drill.name, alert)


def test_a_skew_the_probe_calls_real_is_beyond_chance_and_the_loaded_die_passes_it() -> None:
    """Four standard errors: a fair die passes it about 3 times in 100 000 tries; the
    `loaded` variant (half the rolls on the top face: 58 %) sits more than six above
    a fair die's share from 30 rolls, so it passes soon after."""
    fair = 1 / 6
    loaded = 0.5 + 0.5 / 6
    sigmas = (loaded - fair) / math.sqrt(fair * (1 - fair) / SKEW_MIN_ROLLS)
    assert sigmas > SKEW_SIGMAS + 2
    assert math.erfc(SKEW_SIGMAS / math.sqrt(2)) / 2 < 1e-4


def test_a_span_carries_a_flag_only_through_its_evaluation_event() -> None:
    span: Span = {
        "events": [
            {"name": "exception", "attributes": {"feature_flag.key": "fair-failure-rate"}},
            {
                "name": "feature_flag.evaluation",
                "attributes": {
                    "feature_flag.key": "risky-failure-rate",
                    "feature_flag.result.variant": "half",
                },
            },
        ]
    }
    assert flag_event(span, "fair-failure-rate") is None
    event = flag_event(span, "risky-failure-rate")
    assert event is not None and event["attributes"]["feature_flag.result.variant"] == "half"
