"""Alertmanager's webhook payload (version 4) read into one line per alert.

The payload (github.com/prometheus/alertmanager, notify/webhook `Message`) is a group
of alerts with what they share (`groupLabels`, `commonLabels`, ...) and an `alerts`
list; each alert has a `status`, `labels`, `annotations`, `startsAt`, `endsAt`, a
`fingerprint`, and a `generatorURL`: the Prometheus graph of the rule's expression,
the place to start looking. Only what a line needs is read, and checked: a payload that lacks it
is refused as a whole, with a message saying what and where, so a bad notification
never prints half its alerts.

Everything a line or a refusal repeats is the client's choice, so it is cut
(`limits`): a body nested deeper than MAX_NESTING is refused before it is parsed, each
text a line or a message quotes is cut at MAX_FIELD_CHARS, and an alert line repeats
at most MAX_LABELS_CHARS of labels.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from .limits import MAX_FIELD_CHARS, MAX_LABELS_CHARS, MAX_NESTING, cut_text

__all__ = ["SUPPORTED_VERSION", "PayloadError", "alert_lines", "parse_payload"]

SUPPORTED_VERSION = "4"
"""The webhook payload version Alertmanager has sent since 0.16 and still sends."""
STATUSES = ("firing", "resolved")
JSON = dict[str, Any]
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string, escapes included, up to its closing quote or the end of the body: the
brackets inside one nest nothing. (Were the closing quote required, a body of 500,000
`"\\` would make the search try each quote to the end: an hour, not 0.1 s.)"""
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 pair: JSON may spell one (`"\\ud83d"`), UTF-8 cannot encode it."""


class PayloadError(ValueError):
    """The body is not a webhook payload this receiver can read; the message says why."""


def parse_payload(body: bytes) -> JSON:
    """The JSON object of a webhook request body, checked as far as the lines need."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    _check_nesting(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PayloadError(f"the body is not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(document, dict):
        raise PayloadError(f"expected a JSON object, got {_kind(document)}")
    version = document.get("version")
    if version != SUPPORTED_VERSION:
        raise PayloadError(
            f"payload version {_shown(version)}: this receiver reads Alertmanager's webhook "
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
        raise PayloadError(f"{where}.status is {_shown(status)}, expected 'firing' or 'resolved'")
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


def _check_nesting(text: str) -> None:
    """Refuse a body whose lists and objects nest deeper than MAX_NESTING.

    Python's JSON parser recurses once per level, and a body 100,000 levels deep would
    end it with a RecursionError (and the client with no answer). Counting brackets
    outside strings costs one pass, and stops at the first level too many.
    """
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_NESTING:
            raise PayloadError(
                f"the body nests lists and objects more than {MAX_NESTING} deep "
                "(Alertmanager's payload nests 4)"
            )


def _shown(value: object) -> str:
    """A value a client sent, as a message quotes it: its repr(), cut."""
    return cut_text(repr(value), MAX_FIELD_CHARS)


def _text(value: str) -> str:
    """A text a client sent, as a line repeats it: cut, and writable as UTF-8 (a lone
    surrogate becomes U+FFFD, as Go's encoder, Alertmanager's, would have written it)."""
    return _SURROGATE.sub("\N{REPLACEMENT CHARACTER}", cut_text(value, MAX_FIELD_CHARS))


def _text_or_none(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _labels(labels: dict[str, str]) -> tuple[dict[str, str], int]:
    """The labels a line repeats, in the order sent, each cut, while they take
    MAX_LABELS_CHARS of the line at most; and how many were left out."""
    kept: dict[str, str] = {}
    chars = 0
    for name, value in labels.items():
        shown_name, shown_value = _text(name), _text(value)
        # As the line spells it: quotes, escapes and separators count too.
        chars += len(json.dumps({shown_name: shown_value}, ensure_ascii=False))
        if chars > MAX_LABELS_CHARS:
            break
        kept[shown_name] = shown_value
    return kept, len(labels) - len(kept)


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
    return _text(source) if isinstance(source, str) and source else None


def alert_lines(payload: JSON, received: datetime | None = None) -> list[str]:
    """One JSON line per alert of a payload `parse_payload` accepted, every text in it
    cut (`limits`); `labels_cut`, when there, says how many labels were left out."""
    stamp = (received or datetime.now(UTC)).isoformat(timespec="milliseconds")
    lines = []
    for alert in payload["alerts"]:
        labels: dict[str, str] = alert.get("labels", {})
        annotations: dict[str, str] = alert.get("annotations", {})
        record: JSON = {
            "timestamp": stamp.replace("+00:00", "Z"),
            "status": alert["status"],
            "alertname": _text(labels["alertname"]),
            "severity": _text_or_none(labels.get("severity")),
        }
        if "die_type" in labels:
            record["die_type"] = _text(labels["die_type"])
        shown_labels, labels_cut = _labels(labels)
        record |= {
            "summary": _text_or_none(annotations.get("summary")),
            "startsAt": _text(alert["startsAt"]),
            "endsAt": _text(alert["endsAt"]),
            "fingerprint": _text(alert["fingerprint"]),
            "source": _source(alert),
            "labels": shown_labels,
        }
        if labels_cut:
            record["labels_cut"] = labels_cut
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines
