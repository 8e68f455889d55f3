"""Prometheus: the scrape config, the rules, and their unit tests, checked by promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.compose import ROOT_COMPOSE, STACK_COMPOSE, load_project, mounts, ports
from tests.support.prometheus import (
    CONFIG,
    OPENMETRICS_FIRST,
    PROMETHEUS_DIR,
    RULES_DIR,
    load_config,
    prometheus_binary,
    write_local_config,
)

RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
"""promtool's unit tests of the rules."""
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted(RULE_TESTS_DIR.glob("*.test.yml"))

# Protocol names Prometheus 3.14 accepts (config/config.go, ScrapeProtocol constants).
SCRAPE_PROTOCOLS = {
    "PrometheusProto",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
}


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def dice_roller_job() -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        job for job in load_config()["scrape_configs"] if job["job_name"] == "dice-roller-stage1"
    ]
    assert len(jobs) == 1, "expected one scrape job named dice-roller-stage1"
    return jobs[0]


def test_the_dice_roller_is_scraped_often_with_openmetrics_first() -> None:
    job = dice_roller_job()
    assert job["static_configs"] == [{"targets": ["dice-roller:8000"]}]
    assert job["scrape_interval"] == "5s"
    protocols = job["scrape_protocols"]
    assert protocols[0] == OPENMETRICS_FIRST, "exemplars only travel in OpenMetrics"
    unknown = set(protocols) - SCRAPE_PROTOCOLS
    assert not unknown, f"unknown scrape protocols {unknown}"


def test_the_scrape_target_is_the_dice_roller_container() -> None:
    """The target's host is the compose service, its port the one the service listens on."""
    service = load_project(ROOT_COMPOSE).services["dice-roller"]
    host, port = dice_roller_job()["static_configs"][0]["targets"][0].split(":")
    assert host == service.name
    assert port == service.spec["environment"]["DICE_PORT"]


def test_compose_enables_exemplars_remote_write_and_reload() -> None:
    prometheus = load_project(STACK_COMPOSE).services["prometheus"]
    command = prometheus.spec["command"]
    for flag in (
        "--enable-feature=exemplar-storage",
        "--web.enable-remote-write-receiver",
        "--web.enable-lifecycle",
        "--config.file=/etc/prometheus/prometheus.yml",
    ):
        assert flag in command


def test_alerts_link_back_to_the_published_port() -> None:
    """An alert's generatorURL is built from --web.external-url: without it, the link in
    the receiver's line would name the container's own hostname."""
    prometheus = load_project(STACK_COMPOSE).services["prometheus"]
    [url] = [
        arg.removeprefix("--web.external-url=")
        for arg in prometheus.spec["command"]
        if arg.startswith("--web.external-url=")
    ]
    [published] = [p.host_port for p in ports(prometheus) if p.container_port == "9090"]
    assert url == f"http://localhost:{published}"


def test_rule_globs_resolve_inside_the_container() -> None:
    """rule_files are relative to the config file: the rules folder must be mounted there."""
    prometheus = load_project(STACK_COMPOSE).services["prometheus"]
    targets = {m.source: m.target for m in mounts(prometheus) if m.bind}
    config_dir = Path(targets["./prometheus/prometheus.yml"]).parent
    for pattern in load_config()["rule_files"]:
        folder = Path(pattern).parent
        assert targets[f"./prometheus/{folder}"] == str(config_dir / folder)
        assert list(CONFIG.parent.glob(pattern)), f"{pattern} matches no file in the repository"


def test_promtool_accepts_the_config_and_finds_the_rules(tmp_path: Path) -> None:
    promtool = prometheus_binary("promtool")
    path = write_local_config(tmp_path)
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    for rule_file in RULE_FILES:
        assert str(rule_file) in result.stdout, f"{rule_file.name} was not loaded"
    direct = run([promtool, "check", "config", str(CONFIG)])
    assert direct.returncode == 0, direct.stdout + direct.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rules(rule_file: Path) -> None:
    promtool = prometheus_binary("promtool")
    result = run([promtool, "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    promtool = prometheus_binary("promtool")
    result = run([promtool, "test", "rules", test_file.name], cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def load_rules(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_is_exercised_by_a_unit_test() -> None:
    """Each rule file is loaded by a unit test file; each recording rule is evaluated and
    each alert is checked by at least one test case."""
    loaded: set[Path] = set()
    evaluated: set[str] = set()
    alerted: set[str] = set()
    for test_file in RULE_TESTS:
        document = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        loaded |= {(test_file.parent / f).resolve() for f in document["rule_files"]}
        for case in document["tests"]:
            evaluated |= {t["expr"] for t in case.get("promql_expr_test", [])}
            alerted |= {t["alertname"] for t in case.get("alert_rule_test", [])}
    assert set(RULE_FILES) <= loaded
    for rule_file in RULE_FILES:
        for rule in load_rules(rule_file):
            if "record" in rule:
                assert any(rule["record"] in expr for expr in evaluated), (
                    f"recording rule {rule['record']} is never evaluated in a unit test"
                )
            else:
                assert rule["alert"] in alerted, f"alert {rule['alert']} has no unit test"


def test_every_alert_of_each_die_has_a_test_that_fires_it() -> None:
    """An alert tested only for silence could be an alert that never fires. An alert
    of one die is seen firing for that die; one about the whole service (no die)
    without a die_type label."""
    fired: set[tuple[str, str | None]] = set()
    for test_file in RULE_TESTS:
        document = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    fired.add((check["alertname"], alert["exp_labels"].get("die_type")))
    expected: set[tuple[str, str | None]] = set()
    for rule_file in RULE_FILES:
        for rule in load_rules(rule_file):
            if "alert" in rule:
                die = re.search(r'die_type="(\w+)"', rule["expr"])
                expected.add((rule["alert"], die.group(1) if die else None))
    # The one exception, explained in slo.rules.yml: a 90 % SLO can't burn 14.4 times
    # too fast, so that alert is tested to stay silent even at 100 % errors.
    expected.discard(("DiceErrorBudgetFastBurn", "risky"))
    assert expected <= fired, f"alerts never seen firing: {expected - fired}"


def test_alerts_go_to_the_alertmanager_service() -> None:
    """The one Alertmanager target is the compose service, at the port it listens on."""
    [manager] = load_config()["alerting"]["alertmanagers"]
    [static] = manager["static_configs"]
    [target] = static["targets"]
    host, port = target.split(":")
    service = load_project(STACK_COMPOSE).services[host]
    assert service.spec["image"].startswith("prom/alertmanager:")
    assert port in {p.container_port for p in ports(service)}
    assert not any("--web.listen-address" in arg for arg in service.spec["command"]), (
        "Alertmanager listens on its default :9093 unless told otherwise"
    )


def latency_rules() -> list[dict[str, Any]]:
    return load_rules(RULES_DIR / "latency.rules.yml")


def test_the_latency_objective_is_a_bucket_bound_no_healthy_roll_reaches() -> None:
    """latency.rules.yml's reasoning, held to the code: the objective is a bound of the
    service's latency buckets (so a p99 estimate cannot cross it by interpolation),
    above the longest delay a healthy roll waits, and below 1.5 s more than the
    shortest one (a drill adding 1.5 s to every roll must cross it)."""
    from dice_roller.settings import Settings
    from sandbox_telemetry import LATENCY_BUCKETS

    [objective_rule] = [r for r in latency_rules() if "record" in r]
    match = re.fullmatch(r"vector\(([\d.]+)\)", objective_rule["expr"].strip())
    assert match, f"the objective should be one number: {objective_rule['expr']}"
    objective = float(match.group(1))
    assert objective in LATENCY_BUCKETS
    longest_delay = Settings.model_fields["max_delay_seconds"].default
    assert longest_delay < objective <= 1.5


def test_the_latency_alert_compares_p99_of_roll_with_the_objective_series() -> None:
    """The number is written once: the alert names the objective's series, no literal."""
    [objective_rule] = [r for r in latency_rules() if "record" in r]
    [alert] = [r for r in latency_rules() if r.get("alert") == "DiceRollLatencyHigh"]
    expr = alert["expr"]
    assert objective_rule["record"] in expr
    assert 'handler="/roll"' in expr and 'quantile="0.99"' in expr
    assert not re.search(r"[<>]=?\s*[\d.]+\s*$", expr.strip()), "compare with the series"
    assert objective_rule["labels"]["handler"] == "/roll"
