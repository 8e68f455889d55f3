"""Webhook payloads as Alertmanager 0.35 sends them (notify/webhook `Message`, version 4)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

GENERATOR_URL = "http://localhost:9090/graph?g0.expr=...&g0.tab=1"
"""Where Prometheus says an alert came from: its graph, at its --web.external-url."""
NOT_ENDED = "0001-01-01T00:00:00Z"
"""`endsAt` of an alert that is still firing: Go's zero time."""


def alert(
    alertname: str = "DiceErrorBudgetFastBurn",
    status: str = "firing",
    die_type: str | None = "fair",
    fingerprint: str = "4d8a6c1b3e2f9a07",
    ends_at: str = NOT_ENDED,
) -> JSON:
    labels = {
        "alertname": alertname,
        "job": "dice-roller-stage1",
        "severity": "page",
        "slo": "99.9%",
    }
    if die_type is not None:
        labels["die_type"] = die_type
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": "The fair die burns its error budget 14.4 times too fast.",
            "description": "50% of fair rolls failed over the last hour (budget 0.1 %).",
        },
        "startsAt": "2026-12-03T08:11:25.106Z",
        "endsAt": ends_at,
        "generatorURL": GENERATOR_URL,
        "fingerprint": fingerprint,
    }


def payload(*alerts: JSON) -> JSON:
    """A notification of one group holding `alerts`."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = alerts[0]["labels"] if alerts else {}
    return {
        "receiver": "alert-receiver",
        "status": "firing" if firing else "resolved",
        "alerts": list(alerts),
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://localhost:9093",
        "version": "4",
        "groupKey": '{}:{alertname="DiceErrorBudgetFastBurn"}',
        "truncatedAlerts": 0,
    }
