"""A sick stack: each failure crosses its own boxes, with a hint, and nothing else.

Every scenario breaks one thing (a component answering empty, 404, 500, broken JSON
or not at all, through the proxies of tests/support/proxies.py; a span without an
attribute; a container Alloy doesn't see; a line in the service's log that is not
JSON; a component that isn't running) and checks the exact set of crossed boxes: the
broken part's boxes fail with a message saying what was seen, every other box still
runs and passes, and the run as a whole fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import running_prometheus
from tests.support.tools import closed_url
from tests.support.verify_stack import Stack, nothing_running, prometheus_config
from verify.cli import main, run_checks
from verify.context import CONTAINER, JOB
from verify.model import Result, Run

pytestmark = pytest.mark.slow

LOKI_READS = (
    "Logs in Loki",
    "Logs include trace_id",
    "Logs include span_id",
    "JSON parsing works",
    "Logs with the matching trace_id appear",
    'Panel "Recent Logs"',
    'Panel "Error Logs"',
)
FRESH_TRACE = (
    "Traces show up within seconds",
    "Trace includes custom attributes",
    "Trace duration matches",
    "Open a trace in Tempo",
    "Click on a span",
    "It jumps to Loki",
    "Logs with the matching trace_id appear",
)
QUERY_PANELS = tuple(
    f'Panel "{title}"'
    for title in (
        "Request Rate",
        "Success Rate",
        "Error Rate by Die Type",
        "Request Duration",
        "Average Response Time by Die Type",
        "Rolls by Die Type",
        "Roll Value Distribution (Fair)",
        "Roll Value Distribution (Risky)",
        "Recent Logs",
        "Error Logs",
        "Trace Count",
    )
)
WAIT = 10.0
"""The runs' --wait: the boxes of a scenario that must still tick wait for the checks'
own fresh request, whose log lines reach Loki through Alloy's batches of up to 1 s,
and whose spans reach Tempo, on a busy two-core machine. A box that waits for what
never comes costs this long once per run."""
METRICS = (
    "Prometheus scraping stage1",
    "HTTP metrics present",
    "Custom metrics present",
    "Roll value histogram present",
    "Exemplars stored",
)


@dataclass(frozen=True)
class Scenario:
    name: str
    breaks: Callable[[Stack], dict[str, Any]]
    """Breaks the stack; returns Settings overrides."""
    crossed: tuple[str, ...]
    """Title prefixes of exactly the boxes that must fail."""
    says: str
    """Words the first crossed box's detail must contain."""


def _fail(attribute: str, prefix: str, mode: str) -> Callable[[Stack], dict[str, Any]]:
    def breaks(stack: Stack) -> dict[str, Any]:
        getattr(stack, attribute).fail[prefix] = mode
        return {}

    return breaks


def _set(action: Callable[[Stack], object]) -> Callable[[Stack], dict[str, Any]]:
    def breaks(stack: Stack) -> dict[str, Any]:
        action(stack)
        return {}

    return breaks


def _unreachable(field: str) -> Callable[[Stack], dict[str, Any]]:
    return lambda stack: {field: closed_url()}


SCENARIOS = [
    # Loki HTTP API v1
    Scenario("loki-empty", _fail("loki", "/loki", "empty"), LOKI_READS, "no lines"),
    Scenario(
        "loki-500", _fail("loki", "/loki", "500"), (*LOKI_READS, "It jumps to Loki"), "HTTP 500"
    ),
    Scenario(
        "loki-malformed",
        _fail("loki", "/loki", "malformed"),
        (*LOKI_READS, "It jumps to Loki"),
        "not JSON",
    ),
    Scenario(
        "loki-line-not-json",
        _set(lambda s: s.write_log_line("Traceback (most recent call last): not a JSON line")),
        ("JSON parsing works",),
        "JSONParserErr",
    ),
    # Tempo HTTP API, as Tempo 3.0.3 answers it (tests/support/proxies.py, TempoProxy)
    Scenario(
        "tempo-trace-never-arrives",
        _fail("tempo", "/api", "empty"),
        (*FRESH_TRACE, "Traces in Tempo"),
        "never arrived in Tempo within the wait",
    ),
    Scenario(
        "tempo-timeout",
        _fail("tempo", "/api", "hang"),
        (*FRESH_TRACE, "Traces in Tempo"),
        "did not answer within",
    ),
    Scenario(
        "span-without-die-result",
        _set(lambda s: s.tempo.drop_attributes.add("die.result")),
        ("Trace includes custom attributes",),
        "lacks die.result",
    ),
    Scenario(
        "span-longer-than-request",
        _set(lambda s: setattr(s.tempo, "stretch_seconds", 5.0)),
        ("Trace duration matches",),
        "longer than the whole round trip",
    ),
    # Alloy
    Scenario(
        "alloy-misses-container",
        _set(lambda s: s.alloy.hidden_containers.add(f"/{CONTAINER}")),
        ("Alloy discovering container",),
        # The project's other container is still there, and named.
        "not among discovery.docker targets (found: dice-sandbox-alert-receiver-1)",
    ),
    Scenario(
        "alloy-components-api-404",
        _fail("alloy", "/api/v0", "404"),
        ("Alloy discovering container",),
        "HTTP 404",
    ),
    Scenario(
        "alloy-down",
        _unreachable("alloy_url"),
        ("Alloy is ready", "Alloy discovering container"),
        "unreachable",
    ),
    # Grafana HTTP API
    Scenario(
        "grafana-loki-unhealthy",
        _set(lambda s: s.grafana.unhealthy.add("loki")),
        ("Data source Loki",),
        "ERROR: Unable to connect with Loki",
    ),
    Scenario(
        "grafana-cannot-reach-alertmanager",
        _set(lambda s: s.grafana.unhealthy.add("alertmanager")),
        ("Data source Alertmanager",),
        "HTTP 502",
    ),
    Scenario(
        "grafana-without-loki-data-source",
        _set(lambda s: s.grafana.missing_datasources.add("loki")),
        ("Data source Loki", 'Panel "Recent Logs"', 'Panel "Error Logs"'),
        "HTTP 500",
    ),
    Scenario(
        "grafana-without-dashboard",
        _set(lambda s: setattr(s.grafana, "with_dashboard", False)),
        (
            "Dashboard appears",
            "All 12 panels",
            *QUERY_PANELS,
            'Panel "Trace-to-Logs Correlation Instructions"',
        ),
        "search found: nothing",
    ),
    Scenario(
        "grafana-panel-query-error",
        _set(lambda s: s.grafana.failing_panels.add("Request Rate")),
        ('Panel "Request Rate"',),
        "parse error",
    ),
    Scenario(
        "grafana-query-api-500",
        _fail("grafana", "/api/ds/query", "500"),
        QUERY_PANELS,
        "HTTP 500",
    ),
    Scenario(
        "grafana-query-api-malformed",
        _fail("grafana", "/api/ds/query", "malformed"),
        QUERY_PANELS,
        "not JSON",
    ),
    # Components down
    Scenario(
        "service-down",
        _unreachable("service_url"),
        ("Root endpoint", "Metrics endpoint", "Fair die roll", "Risky die roll", *FRESH_TRACE),
        "unreachable",
    ),
    Scenario("prometheus-down", _unreachable("prometheus_url"), METRICS, "unreachable"),
]


def crossed(run: Run) -> list[Result]:
    return [result for result in run.results if not result.passed]


def assert_exactly_crossed(run: Run, prefixes: tuple[str, ...]) -> list[Result]:
    failed = crossed(run)
    unexpected = [(r.title, r.detail) for r in failed if not r.title.startswith(prefixes)]
    missing = [p for p in prefixes if not any(r.title.startswith(p) for r in failed)]
    assert not unexpected, f"crossed but should pass: {unexpected}"
    assert not missing, f"should be crossed: {missing}"
    for result in failed:
        assert result.detail.strip() and result.hint.strip()
        assert "Traceback" not in result.detail
    return failed


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_failure_crosses_its_own_boxes(live: Stack, scenario: Scenario) -> None:
    overrides = scenario.breaks(live)
    run = run_checks(live.settings(wait=WAIT, **overrides))
    failed = assert_exactly_crossed(run, scenario.crossed)
    first = next(r for r in failed if r.title.startswith(scenario.crossed[0]))
    assert scenario.says in first.detail
    assert not run.passed
    assert len(run.results) > len(failed)  # the other boxes ran, and passed


def test_a_malformed_trace_answer_crosses_at_once(live: Stack) -> None:
    """Not Tempo's answer at all: the trace's boxes cross on the first answer, unpolled."""
    live.tempo.fail["/api/v2/traces/"] = "malformed"
    run = run_checks(live.settings(wait=10.0))
    failed = assert_exactly_crossed(run, FRESH_TRACE)
    assert "not JSON" in failed[0].detail
    assert len([r for r in live.tempo.requests if r.startswith("GET /api/v2/traces/")]) == 1


def test_a_component_that_hangs_is_asked_once(live: Stack) -> None:
    """After one timeout, the other Tempo boxes fail at once instead of waiting again."""
    live.tempo.fail["/api"] = "hang"
    run = run_checks(live.settings(wait=1.0))
    tempo_boxes = [r for r in crossed(run) if "Tempo did not answer" in r.detail]
    assert len(tempo_boxes) >= 2
    assert len([r for r in live.tempo.requests if r.startswith("GET /api")]) == 1


def test_a_scrape_target_that_is_down(live: Stack) -> None:
    """A real Prometheus whose dice-roller-stage1 target refuses connections."""
    target = closed_url().removeprefix("http://")
    with running_prometheus(prometheus_config(target, rules=None)) as prometheus:
        prometheus.wait_for(f'up{{job="{JOB}"}} == 0')
        run = run_checks(live.settings(wait=WAIT, prometheus_url=prometheus.url))
    failed = assert_exactly_crossed(run, METRICS)
    assert "not up: health 'down'" in failed[0].detail
    assert "refused" in failed[0].detail  # Prometheus's own last error


def test_grafana_login(live: Stack) -> None:
    live.grafana.credentials = ("admin", "s3cret")
    anonymous = run_checks(live.settings(wait=1.0))
    dashboard = [r for r in anonymous.results if r.group == "Dashboard"]
    assert dashboard and not any(r.passed for r in dashboard)
    assert "HTTP 401" in dashboard[0].detail
    logged_in = run_checks(live.settings(grafana_user="admin", grafana_password="s3cret"))
    assert logged_in.passed, [(r.title, r.detail) for r in crossed(logged_in)]


def test_the_text_report_puts_a_hint_under_each_cross(
    live: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    live.alloy.fail["/api/v0/web/components/"] = "empty"
    code = main(live.argv("--wait", str(WAIT)))
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    cross = next(i for i, line in enumerate(lines) if line.startswith("❌"))
    assert "Alloy discovering container" in lines[cross]
    assert "not among discovery.docker targets" in lines[cross + 1]
    assert lines[cross + 2].strip().startswith("fix: Open http://localhost:12345")
    assert sum(line.startswith("❌") for line in lines) == 1
    assert lines[-1].endswith("checks passed (1 failed)")


def test_nothing_running_fails_every_box_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = closed_url()
    urls = ["service", "prometheus", "loki", "tempo", "alloy", "grafana"]
    argv = [arg for name in urls for arg in (f"--{name}-url", dead)]
    code = main([*argv, "--timeout", "1", "--wait", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    import json

    report = json.loads(captured.out)
    checks = [check for group in report["groups"] for check in group["checks"]]
    passed = [check for check in checks if check["passed"]]
    # Only the one box read from the repository's own files can pass, and it says so.
    assert [check["title"] for check in passed] == [
        '"Logs for this span" is configured: Tempo data source → Loki (tracesToLogsV2)'
    ]
    datasources = "stack/grafana/provisioning/datasources/datasources.yaml"
    assert passed[0]["read_from_files"] == [datasources]
    # The summary the text report opens with: who did not answer, how to start them.
    assert set(report["unreachable"]) == {
        "the dice roller", "Prometheus", "Loki", "Tempo", "Alloy", "Grafana",
    }  # fmt: skip
    assert report["answered"] == []
    assert "docker compose up" in report["how_to_start"]
    blocked = [check for check in checks if check["blocked_by"] is not None]
    assert blocked, "the boxes that failed only for a component that did not answer"
    assert {check["blocked_by"] for check in blocked} <= set(report["unreachable"])
    for check in checks:
        if not check["passed"]:
            assert check["hint"]
            assert (
                "unreachable" in check["detail"]
                or "see above" in check["detail"]
                or ("no request to follow" in check["detail"])
            ), check


def test_unreadable_provisioning_files_cross_their_boxes(tmp_path: Path) -> None:
    (tmp_path / "datasources.yaml").write_text("datasources: [unclosed\n", encoding="utf-8")
    settings = nothing_running(datasources_dir=tmp_path, dashboard_file=tmp_path / "missing.json")
    run = run_checks(settings)
    titles = {r.title: r for r in run.results}
    assert not titles["Data sources provisioned"].passed
    assert not titles["Dashboard file readable"].passed
    assert "missing.json" in titles["Dashboard file readable"].detail
    link = next(r for t, r in titles.items() if t.startswith('"Logs for this span"'))
    assert not link.passed and "unexpected" not in link.detail


def test_a_traffic_generator_that_finds_no_service(live: Stack) -> None:
    run = run_checks(live.settings(wait=1.0, service_url=closed_url(), with_traffic=True))
    traffic = [r for r in run.results if r.group == "Traffic Generation"]
    assert len(traffic) == 4 and not any(r.passed for r in traffic)
    assert traffic[0].detail.startswith("exit code 1")
    assert all(r.hint for r in traffic)


def test_a_quiet_traffic_generator_logs_no_user_activity(live: Stack) -> None:
    # The fair die only: the native service's risky die fails half the time
    # (NATIVE_FLAGS), ten risky rolls all failed one run in 2,000, and a run in which
    # every roll fails exits 1, which would cross other boxes.
    args = ("--users", "1", "--rolls", "2", "--risky-share", "0", "--think", "0", "--quiet")
    run = run_checks(live.settings(with_traffic=True, traffic_args=args))
    failed = assert_exactly_crossed(run, ("Script logs user activity",))
    assert "--quiet" in failed[0].detail
