"""The catalogue: what each drill shows the user exists and parses, and the numbers
the probes judge by separate a broken service from a healthy one."""

from __future__ import annotations

import math
from pathlib import Path

from drills.alert_probes import AlertRef, receiver_query
from drills.catalogue import (
    DRILLS,
    ERROR_LINES,
    LOADED_LINES,
    SHIPPED,
    SLOW_LINES,
    STAGE2_DASHBOARD,
    STAGE3_DASHBOARD,
    STAGE5_DASHBOARD,
)
from drills.flagfile import read_flag_file
from drills.probes import SKEW_MIN_ROLLS, SKEW_SIGMAS, Span, flag_event
from drills.slow_probes import SLOW_LOOKUP_LINES, SLOW_QUERY_LINES
from drills.timing import DRILL_ALERTS
from drills.upstream_probes import DIE_SERVICE_HOP, ends_at_caller, ends_at_frontend
from tests.support.flags import SHIPPED_FLAGS
from tests.support.grammars import parse_errors_batch, require_grammars
from verify.context import DASHBOARD_FILE
from verify.dashboard import load_dashboard, panels_of


def _panel_titles(path: Path) -> set[str]:
    return {str(panel.get("title")) for panel in panels_of(load_dashboard(path))}


def test_every_panel_a_drill_names_is_on_its_dashboard() -> None:
    for drill in DRILLS.values():
        titles = _panel_titles(drill.look.dashboard)
        assert drill.look.panels, drill.name
        missing = [title for title in drill.look.panels if title not in titles]
        assert missing == [], f"{drill.name} names panels {drill.look.dashboard} lacks: {missing}"


def test_a_drill_shows_its_stage_s_dashboard_and_one_through_the_frontend_needs_it() -> None:
    dashboards = {1: DASHBOARD_FILE, 2: STAGE2_DASHBOARD, 3: STAGE3_DASHBOARD, 5: STAGE5_DASHBOARD}
    for drill in DRILLS.values():
        through_frontend = drill.traffic == "frontend"
        assert drill.look.dashboard == dashboards[drill.stage], drill.name
        assert ("frontend" in drill.needs) == through_frontend, drill.name
        assert drill.stage == 2 or not through_frontend, drill.name
    assert DRILLS["upstream-down"].stops == "dice-roller"
    assert DRILLS["upstream-down"].flags == {}
    die_service_down = DRILLS["die-service-down"]
    assert (die_service_down.stops, die_service_down.stage) == ("die-service", 3)
    assert die_service_down.flags == {} and die_service_down.traffic == "dice-roller"


def test_every_query_a_drill_shows_or_runs_parses_with_grafana_s_grammars() -> None:
    require_grammars()
    queries = [("logql", drill.look.logql) for drill in DRILLS.values()]
    queries += [("traceql", drill.look.traceql) for drill in DRILLS.values()]
    for lines in (ERROR_LINES, SLOW_LINES, LOADED_LINES):
        queries += [("logql", query) for query in lines.values()]
    queries += [("logql", SLOW_LOOKUP_LINES), ("logql", SLOW_QUERY_LINES)]
    for status in ("firing", "resolved"):
        queries += [("logql", receiver_query(AlertRef(name), status)) for name in DRILL_ALERTS]
    errors = parse_errors_batch(queries)
    bad = [(query, error) for (_, query), error in zip(queries, errors, strict=True) if error]
    assert bad == []


def test_every_flag_a_drill_switches_is_in_the_shipped_file_with_that_variant() -> None:
    """The die-service's flags too: recovery puts every flag of the file back."""
    shipped = read_flag_file(SHIPPED_FLAGS)
    assert {key: shipped.default_variant(key) for key in shipped.flags} == SHIPPED
    for drill in DRILLS.values():
        for key, variant in drill.flags.items():
            assert variant in shipped.variants(key), (drill.name, key, variant)


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


def _span(service: str, kind: str, span_id: str, parent: str = "", **fields: object) -> Span:
    span: Span = {
        "service": service,
        "kind": kind,
        "span_id": span_id,
        "parent_id": parent,
        "name": "GET /api/roll" if kind == "SPAN_KIND_SERVER" else "GET",
        "status": "STATUS_CODE_ERROR",
        "attributes": {},
        "events": [],
    }
    span.update(fields)
    return span


def test_a_trace_ends_at_the_frontend_only_when_nothing_of_the_dice_roller_is_in_it() -> None:
    server = _span(
        "frontend",
        "SPAN_KIND_SERVER",
        "a" * 16,
        attributes={"upstream.name": "dice-roller", "upstream.failure": "unreachable"},
    )
    error = {"exception.type": "httpx.ConnectError", "exception.message": "refused"}
    client = _span(
        "frontend",
        "SPAN_KIND_CLIENT",
        "b" * 16,
        "a" * 16,
        events=[{"name": "exception", "attributes": error}],
    )
    found = ends_at_frontend([server, client])
    assert found is not None
    assert "upstream.failure=unreachable" in found and "httpx.ConnectError: refused" in found

    callee = _span("dice-roller", "SPAN_KIND_SERVER", "c" * 16, "b" * 16)
    assert ends_at_frontend([server, client, callee]) is None
    assert ends_at_frontend([server, {**client, "events": []}]) is None
    assert ends_at_frontend([server, {**client, "status": "STATUS_CODE_UNSET"}]) is None
    timeout = {**server, "attributes": {"upstream.failure": "timeout"}}
    assert ends_at_frontend([timeout, client]) is None
    assert ends_at_frontend([client]) is None


def test_a_trace_ends_at_the_dice_roller_only_when_nothing_of_the_die_service_is_in_it() -> None:
    server = _span(
        "dice-roller",
        "SPAN_KIND_SERVER",
        "a" * 16,
        name="GET /roll",
        attributes={"upstream.name": "die-service", "upstream.failure": "unreachable"},
    )
    error = {"exception.type": "httpx.ConnectError", "exception.message": "refused"}
    client = _span(
        "dice-roller",
        "SPAN_KIND_CLIENT",
        "b" * 16,
        "a" * 16,
        events=[{"name": "exception", "attributes": error}],
    )
    found = ends_at_caller([server, client], DIE_SERVICE_HOP)
    assert found is not None
    assert "'GET /roll' ERROR" in found and "no die-service span" in found
    assert "httpx.ConnectError: refused" in found

    callee = _span("die-service", "SPAN_KIND_SERVER", "c" * 16, "b" * 16)
    assert ends_at_caller([server, client, callee], DIE_SERVICE_HOP) is None
    assert ends_at_caller([server, {**client, "events": []}], DIE_SERVICE_HOP) is None
    # The frontend's outage is not this one: its spans are the frontend's.
    assert ends_at_frontend([server, client]) is None
