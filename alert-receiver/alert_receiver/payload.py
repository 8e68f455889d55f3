"""Alertmanager's webhook payload (version 4) read into one line per alert.

The payload (github.com/prometheus/alertmanager, notify/webhook `Message`) is a group
of alerts with what they share (`groupLabels`, `commonLabels`, ...) and an `alerts`
list; each alert has a `status`, `labels`, `annotations`, `startsAt`, `endsAt`, a
`fingerprint`, and a `generatorURL`: the Prometheus graph of the rule's expression,
the place to start looking. Only what a line needs is read, and checked: a payload that lacks it
is refused as a whole, with a message saying what and where, so a bad notification
never prints half its alerts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["SUPPORTED_VERSION", "PayloadError", "alert_lines", "parse_payload"]

SUPPORTED_VERSION = "4"
"""The webhook payload version Alertmanager has sent since 0.16 and still sends."""
STATUSES = ("firing", "resolved")
JSON = dict[str, Any]


class PayloadError(ValueError):
    """The body is not a webhook payload this receiver can read; the message says why."""


def parse_payload(body: bytes) -> JSON:
    """The JSON object of a webhook request body, checked as far as the lines need."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise PayloadError(f"the body is not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(document, dict):
        raise PayloadError(f"expected a JSON object, got {_kind(document)}")
    version = document.get("version")
    if version != SUPPORTED_VERSION:
        raise PayloadError(
            f"payload version {version!r}: this receiver reads Alertmanager's webhook "
            f"payload version {SUPPORTED_VERSION!r}"
        )
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError(f"'alerts' should be a list of alerts, got {_kind(alerts)}")
    for index, alert in enumerate(alerts):
        _check_alert(alert, f"alerts[{index}]")
    return document


def _check_alert(alert: object, where: str) -> None:
    if not isinstance(alert, dict):
        raise PayloadError(f"{where} should be an object, got {_kind(alert)}")
    status = alert.get("status")
    if status not in STATUSES:
        raise PayloadError(f"{where}.status is {status!r}, expected 'firing' or 'resolved'")
    for field in ("labels", "annotations"):
        values = alert.get(field, {})
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise PayloadError(f"{where}.{field} should map names to strings")
    if not alert.get("labels", {}).get("alertname"):
        raise PayloadError(f"{where}.labels has no alertname")
    for field in ("startsAt", "endsAt", "fingerprint"):
        if not isinstance(alert.get(field), str):
            raise PayloadError(f"{where}.{field} should be a string, got {_kind(alert.get(field))}")


def _kind(value: object) -> str:
    """What a JSON value is, in words: for messages about the wrong one."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true or false"
    kinds = ((dict, "an object"), (list, "a list"), (str, "a string"), (int | float, "a number"))
    return next(name for kind, name in kinds if isinstance(value, kind))


def _source(alert: JSON) -> str | None:
    """The alert's generatorURL; None for one posted by hand (amtool, curl), for which
    Alertmanager sends ""."""
    source = alert.get("generatorURL")
    return source if isinstance(source, str) and source else None


def alert_lines(payload: JSON, received: datetime | None = None) -> list[str]:
    """One JSON line per alert of a payload `parse_payload` accepted."""
    stamp = (received or datetime.now(UTC)).isoformat(timespec="milliseconds")
    lines = []
    for alert in payload["alerts"]:
        labels: dict[str, str] = alert.get("labels", {})
        annotations: dict[str, str] = alert.get("annotations", {})
        record: JSON = {
            "timestamp": stamp.replace("+00:00", "Z"),
            "status": alert["status"],
            "alertname": labels["alertname"],
            "severity": labels.get("severity"),
        }
        if "die_type" in labels:
            record["die_type"] = labels["die_type"]
        record |= {
            "summary": annotations.get("summary"),
            "startsAt": alert["startsAt"],
            "endsAt": alert["endsAt"],
            "fingerprint": alert["fingerprint"],
            "source": _source(alert),
            "labels": labels,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines
