"""Probes of an alert's journey: Prometheus evaluates it (pending, then firing), sends it
to Alertmanager, which notifies the `alert-receiver`, whose lines land in Loki.

APIs followed:

- Prometheus `GET /api/v1/alerts`: `{"data": {"alerts": [{"labels", "state":
  "pending"|"firing", "activeAt", "value"}]}}`; an alert that stopped is absent.
  `GET /api/v1/rules?type=alert`: each rule's `duration` (its `for:`), in seconds.
- Alertmanager API v2 `GET /api/v2/alerts?filter=alertname="X"`: the alerts it holds
  that have not ended, each with `labels` and `status.state` (active, suppressed,
  unprocessed); a resolved alert is absent.
- Loki, for the receiver's lines: one JSON line per alert per notification, with
  `status` (firing or resolved), `alertname` and the alert's `labels`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verify.logs import json_object, lines_of

from .context import DrillContext, Reading, not_yet, seen

__all__ = [
    "RECEIVER_LOGS",
    "AlertRef",
    "alert_pending",
    "alertmanager_holds",
    "alertmanager_released",
    "firing_alerts",
    "prometheus_alerts",
    "prometheus_firing",
    "prometheus_resolved",
    "receiver_line",
    "receiver_query",
    "rule_hold_seconds",
]

RECEIVER_LOGS = '{compose_service="alert-receiver"}'
"""The webhook receiver's stdout in Loki (compose service `alert-receiver`)."""


@dataclass(frozen=True)
class AlertRef:
    """An alert by name, and the labels that tell apart rules sharing that name
    (`die_type="fair"` for the fair die's burn-rate alerts)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, labels: Any) -> bool:
        if not isinstance(labels, dict) or labels.get("alertname") != self.name:
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        inner = ", ".join(f'{key}="{value}"' for key, value in self.labels.items())
        return f"{self.name}{{{inner}}}"


def prometheus_alerts(ctx: DrillContext) -> list[dict[str, Any]]:
    """Every alert Prometheus holds now (pending or firing)."""
    return [alert for alert in ctx.verify.prometheus.alerts() if isinstance(alert, dict)]


def _states(ctx: DrillContext, ref: AlertRef) -> set[str]:
    return {
        str(alert.get("state"))
        for alert in prometheus_alerts(ctx)
        if ref.matches(alert.get("labels"))
    }


def rule_hold_seconds(ctx: DrillContext, name: str) -> float | None:
    """The `for:` of the alerting rules called `name`, in seconds (None: no such rule)."""
    for group in ctx.verify.prometheus.rule_groups("alert"):
        for rule in group.get("rules", []) if isinstance(group, dict) else []:
            if isinstance(rule, dict) and rule.get("name") == name:
                return float(rule.get("duration") or 0)
    return None


def alert_pending(ctx: DrillContext, ref: AlertRef) -> Reading:
    """Prometheus holds the alert as pending (its condition is true, its `for:` not over),
    or already firing, which is where a rule without `for:` goes at once."""
    states = _states(ctx, ref)
    if "pending" in states:
        return seen(f"{ref} is pending in Prometheus")
    if "firing" in states:
        hold = rule_hold_seconds(ctx, ref.name)
        why = "its rule has no `for:`, so it skips pending" if not hold else "pending was missed"
        return seen(f"{ref} went straight to firing ({why})")
    return not_yet(f"Prometheus does not hold {ref} yet")


def prometheus_firing(ctx: DrillContext, ref: AlertRef) -> Reading:
    if "firing" in _states(ctx, ref):
        return seen(f"{ref} is firing in Prometheus")
    return not_yet(f"{ref} is not firing in Prometheus yet")


def prometheus_resolved(ctx: DrillContext, ref: AlertRef) -> Reading:
    states = _states(ctx, ref)
    if not states:
        return seen(f"Prometheus no longer holds {ref}")
    return not_yet(f"{ref} is still {'/'.join(sorted(states))} in Prometheus")


def _alertmanager_alerts(ctx: DrillContext, ref: AlertRef) -> list[dict[str, Any]]:
    alerts = ctx.alertmanager.alerts(ref.name)
    return [
        alert for alert in alerts if isinstance(alert, dict) and ref.matches(alert.get("labels"))
    ]


def alertmanager_holds(ctx: DrillContext, ref: AlertRef) -> Reading:
    alerts = _alertmanager_alerts(ctx, ref)
    if alerts:
        state = (alerts[0].get("status") or {}).get("state", "?")
        return seen(f"Alertmanager holds {ref} ({state}, since {alerts[0].get('startsAt', '?')})")
    return not_yet(f"Alertmanager has not received {ref} yet")


def alertmanager_released(ctx: DrillContext, ref: AlertRef) -> Reading:
    if not _alertmanager_alerts(ctx, ref):
        return seen(f"Alertmanager holds no unresolved {ref}")
    return not_yet(f"Alertmanager still holds {ref} unresolved")


def receiver_query(ref: AlertRef, status: str) -> str:
    """The LogQL that finds the receiver's lines for `ref` with `status`."""
    return f'{RECEIVER_LOGS} | json | alertname="{ref.name}" | status="{status}"'


def receiver_line(ctx: DrillContext, ref: AlertRef, status: str) -> Reading:
    """The receiver logged a notification of `ref` with `status` since the drill began."""
    query = receiver_query(ref, status)
    lines = lines_of(ctx.verify.loki.streams(query, ctx.started, time.time() + 1, 100))
    for line in lines:
        record = json_object(line)
        if record is not None and ref.matches(
            {**(record.get("labels") or {}), "alertname": record.get("alertname")}
        ):
            summary = record.get("summary") or ""
            return seen(f"the receiver logged {status} {ref}: {summary}".rstrip(": "))
    return not_yet(f"no {status!r} line for {ref} from the receiver in Loki yet")


def firing_alerts(ctx: DrillContext, names: tuple[str, ...]) -> list[AlertRef]:
    """The alerts called one of `names` that Prometheus holds now (pending or firing),
    each with the labels that tell it from its namesakes (`die_type`)."""
    found: dict[str, AlertRef] = {}
    for alert in prometheus_alerts(ctx):
        labels = alert.get("labels") or {}
        if labels.get("alertname") not in names:
            continue
        extra = {"die_type": labels["die_type"]} if "die_type" in labels else {}
        ref = AlertRef(str(labels["alertname"]), extra)
        found[str(ref)] = ref
    return [found[key] for key in sorted(found)]
