"""Alerts reach someone, for real: a rule fires in a real Prometheus, the native stack's
real Alertmanager (the pinned release, on the shipped alertmanager.yml) notifies the
alert-receiver, whose line travels through real Alloy into real Loki; then the alert
resolves and the receiver says so.

The rule that fires is a test's own, in a second Prometheus of the same pinned build that
sends its alerts where the shipped prometheus.yml sends them: the shipped rules fire only
when the service misbehaves for minutes, and the drills exercise those. That the shipped
Prometheus of the native stack finds Alertmanager and loads the shipped rules is checked
on its own, below.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nativestack.pins import pin
from tests.support.live_stack import WAIT, LiveStack
from tests.support.paths import ROOT
from tests.support.processes import eventually
from tests.support.prometheus import load_config, running_prometheus

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

ALERTMANAGER_CONFIG = ROOT / "stack" / "alertmanager" / "alertmanager.yml"
RECEIVER = '{compose_service="alert-receiver", stream="stdout"}'
NOT_ENDED = "0001-01-01T00:00:00Z"


def test_alertmanager_runs_the_pinned_release_on_the_shipped_route(live: LiveStack) -> None:
    status = live.alertmanager.status()
    assert status["versionInfo"]["version"] == pin("alertmanager").tag.removeprefix("v")
    loaded = yaml.safe_load(status["config"]["original"])
    shipped = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for key in ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval"):
        assert loaded["route"][key] == shipped["route"][key], key
    [webhook] = loaded["receivers"][0]["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert status["cluster"]["status"] == "disabled", "one instance, no gossip"


def test_alertmanager_without_its_web_ui_says_so(live: LiveStack) -> None:
    page = httpx.get(f"{live.native.alertmanager_url}/", timeout=10)
    assert page.status_code == 200
    assert "without its web UI" in page.text


def test_prometheus_sends_to_the_alertmanager_by_its_compose_name(live: LiveStack) -> None:
    def active() -> list[str]:
        data = live.prometheus("", "/api/v1/alertmanagers")
        return [entry["url"] for entry in data["activeAlertmanagers"]]

    assert eventually(active, "Prometheus found no Alertmanager", WAIT) == [
        "http://alertmanager:9093/api/v2/alerts"
    ]


def test_prometheus_loads_the_alerts_with_their_pending_times(live: LiveStack) -> None:
    groups = live.prometheus("", "/api/v1/rules", type="alert")["groups"]
    durations = {rule["name"]: rule["duration"] for g in groups for rule in g["rules"]}
    assert durations == {
        "DiceErrorBudgetFastBurn": 60,
        "DiceErrorBudgetSlowBurn": 0,
        "DiceRollLatencyHigh": 60,
    }


def _rule_file(path: Path, run: str, firing: bool) -> None:
    """A rule that fires at once, or (same name and labels) never: a reload flips it."""
    rule = {
        "alert": "DiceSandboxTestAlert",
        "expr": "vector(1)" if firing else "vector(1) < 0",
        "labels": {"severity": "test", "die_type": "fair", "run": run},
        "annotations": {"summary": f"A test alert, run {run}."},
    }
    document = {"groups": [{"name": "test", "interval": "1s", "rules": [rule]}]}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def _alerting_to(live: LiveStack) -> dict[str, Any]:
    """The shipped `alerting:` block, its compose host names replaced by the native
    stack's addresses (this Prometheus runs on the host, outside the namespaces)."""
    alerting: dict[str, Any] = load_config()["alerting"]
    for manager in alerting["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [
                f"{live.native.network.addresses[host]}:{port}"
                for host, port in (target.split(":") for target in static["targets"])
            ]
    return alerting


def test_an_alert_reaches_the_receiver_and_loki_then_resolves(
    live: LiveStack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:12]
    rules = tmp_path / "test.rules.yml"
    _rule_file(rules, run, firing=True)
    config = {
        "global": {"evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": _alerting_to(live),
    }

    def printed(status: str) -> dict[str, Any] | None:
        ours = [
            line
            for line in live.native.receiver_lines()
            if line["labels"].get("run") == run and line["status"] == status
        ]
        return ours[0] if ours else None

    def in_loki(line: dict[str, Any]) -> bool:
        query = f'{RECEIVER} |= "{run}" | json | status="{line["status"]}"'
        found = [json.loads(text) for s in live.loki(query) for _, text in s["values"]]
        return line in found

    with running_prometheus(yaml.safe_dump(config)) as prometheus:
        firing = eventually(lambda: printed("firing"), "no firing line from the receiver", WAIT)
        assert firing["alertname"] == "DiceSandboxTestAlert"
        assert (firing["severity"], firing["die_type"]) == ("test", "fair")
        assert firing["summary"] == f"A test alert, run {run}."
        assert firing["endsAt"] == NOT_ENDED
        eventually(lambda: in_loki(firing), "the firing line never reached Loki", WAIT)

        _rule_file(rules, run, firing=False)
        prometheus.process.send_signal(signal.SIGHUP)  # reload the rules
        resolved = eventually(
            lambda: printed("resolved"), "no resolved line from the receiver", WAIT
        )
        assert resolved["fingerprint"] == firing["fingerprint"], "the same alert"
        assert resolved["startsAt"] == firing["startsAt"]
        assert resolved["endsAt"] not in (NOT_ENDED, firing["endsAt"])
        eventually(lambda: in_loki(resolved), "the resolved line never reached Loki", WAIT)

    streams = live.loki(f'{RECEIVER} |= "{run}"')
    assert {s["stream"]["container_name"] for s in streams} == {"dice-sandbox-alert-receiver-1"}
