"""Reading Alertmanager's webhook payload: one line per alert, or one clear refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from alert_receiver.limits import MAX_FIELD_CHARS, MAX_LABELS_CHARS, MAX_NESTING
from alert_receiver.payload import PayloadError, alert_lines, parse_payload

from tests.support.alertmanager_payloads import GENERATOR_URL, NOT_ENDED, alert, payload

RECEIVED = datetime(2026, 12, 3, 8, 12, 40, 512000, tzinfo=UTC)


def lines_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps(document).encode()
    return [json.loads(line) for line in alert_lines(parse_payload(body), RECEIVED)]


def test_each_alert_becomes_one_line_with_the_fields_a_reader_needs() -> None:
    fair = alert(die_type="fair", fingerprint="aaaa000000000001")
    risky = alert(
        die_type="risky",
        fingerprint="aaaa000000000002",
        status="resolved",
        ends_at="2026-12-03T08:20:00Z",
    )
    [first, second] = lines_of(payload(fair, risky))
    assert first == {
        "timestamp": "2026-12-03T08:12:40.512Z",
        "status": "firing",
        "alertname": "DiceErrorBudgetFastBurn",
        "severity": "page",
        "die_type": "fair",
        "summary": "The fair die burns its error budget 14.4 times too fast.",
        "startsAt": "2026-12-03T08:11:25.106Z",
        "endsAt": NOT_ENDED,
        "fingerprint": "aaaa000000000001",
        "source": GENERATOR_URL,
        "labels": fair["labels"],
    }
    assert (second["status"], second["die_type"], second["endsAt"]) == (
        "resolved",
        "risky",
        "2026-12-03T08:20:00Z",
    )
    assert second["fingerprint"] == "aaaa000000000002"


def test_an_alert_without_a_source_still_gets_its_line() -> None:
    """Alerts sent by hand (amtool, curl) come with an empty generatorURL: the line says
    null."""
    manual = alert()
    manual["generatorURL"] = ""
    [line] = lines_of(payload(manual))
    assert line["source"] is None and line["alertname"] == "DiceErrorBudgetFastBurn"


def test_an_alert_about_no_die_has_no_die_type() -> None:
    [line] = lines_of(payload(alert(alertname="DiceRollLatencyHigh", die_type=None)))
    assert "die_type" not in line
    assert line["alertname"] == "DiceRollLatencyHigh"


def test_a_line_is_one_line_of_json_whatever_the_labels_hold() -> None:
    tricky = alert()
    tricky["annotations"]["summary"] = 'two\nlines, "quotes" and ünïcode'
    [line] = alert_lines(parse_payload(json.dumps(payload(tricky)).encode()), RECEIVED)
    assert "\n" not in line
    assert json.loads(line)["summary"] == 'two\nlines, "quotes" and ünïcode'


def test_a_notification_without_alerts_prints_nothing() -> None:
    assert lines_of(payload()) == []


def _with(change: Any) -> bytes:
    document = payload(alert())
    change(document)
    return json.dumps(document).encode()


def _set_alert(field: str, value: Any) -> Any:
    return lambda d: d["alerts"][0].__setitem__(field, value)


def _drop_alert(field: str) -> Any:
    return lambda d: d["alerts"][0].pop(field)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is not JSON (Expecting value at character 0)"),
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not UTF-8 text"),
        (b"[]", "expected a JSON object, got a list"),
        (b'"4"', "expected a JSON object, got a string"),
        (_with(lambda d: d.pop("version")), "payload version None: this receiver reads"),
        (_with(lambda d: d.__setitem__("version", "3")), "payload version '3'"),
        (_with(lambda d: d.__setitem__("version", 4)), "payload version 4: this receiver"),
        (
            _with(lambda d: d.__setitem__("version", "x" * 5000)),
            f"payload version '{'x' * (MAX_FIELD_CHARS - 1)}... [3978 more characters]: this",
        ),
        (_with(lambda d: d.pop("alerts")), "'alerts' should be a list of alerts, got nothing"),
        (_with(lambda d: d.__setitem__("alerts", {})), "'alerts' should be a list of alerts"),
        (_with(lambda d: d["alerts"].append(7)), "alerts[1] should be an object, got a number"),
        (_with(_set_alert("status", "pending")), "alerts[0].status is 'pending', expected"),
        (_with(_set_alert("status", ["s"] * 5000)), "alerts[0].status is ['s', 's', 's'"),
        (b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1), "the body nests lists and"),
        (b'{"a": ' * 100_000, f"the body nests lists and objects more than {MAX_NESTING} deep"),
        (b'"\\' * 500_000, "the body is not JSON"),  # strings that never end: read once
        (_with(_drop_alert("status")), "alerts[0].status is None, expected 'firing' or"),
        (_with(_set_alert("labels", ["a"])), "alerts[0].labels should map names to strings"),
        (_with(_set_alert("labels", {"alertname": 1})), "alerts[0].labels should map names"),
        (_with(_set_alert("labels", {"job": "x"})), "alerts[0].labels has no alertname"),
        (_with(_set_alert("annotations", None)), "alerts[0].annotations should map names"),
        (_with(_drop_alert("startsAt")), "alerts[0].startsAt should be a string, got nothing"),
        (_with(_set_alert("endsAt", 0)), "alerts[0].endsAt should be a string, got a number"),
        (_with(_drop_alert("fingerprint")), "alerts[0].fingerprint should be a string"),
    ],
)
def test_a_bad_payload_is_refused_with_what_and_where(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as refused:
        parse_payload(body)
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)
    assert len(str(refused.value)) < 2 * MAX_FIELD_CHARS


def test_brackets_inside_strings_nest_nothing() -> None:
    document = payload(alert())
    document["commonAnnotations"] = {"summary": '[[[{{{ \\" [[[' * 1000}
    assert parse_payload(json.dumps(document).encode()) == document


def test_every_text_a_client_chooses_is_cut_on_its_line() -> None:
    huge = "h" * 100_000
    cut = f"{'h' * MAX_FIELD_CHARS}... [{100_000 - MAX_FIELD_CHARS} more characters]"
    everything = alert()
    everything["labels"] |= {"alertname": huge, "severity": huge, "die_type": huge}
    everything["annotations"]["summary"] = huge
    for field in ("startsAt", "endsAt", "fingerprint", "generatorURL"):
        everything[field] = huge
    [line] = alert_lines(parse_payload(json.dumps(payload(everything)).encode()), RECEIVED)
    record = json.loads(line)
    for field in ("alertname", "severity", "die_type", "summary", "startsAt", "endsAt"):
        assert record[field] == cut, field
    assert record["fingerprint"] == record["source"] == cut
    # alertname and job fit in MAX_LABELS_CHARS; severity would not, nor the rest after it.
    assert record["labels"] == {"alertname": cut, "job": "dice-roller-stage1"}
    assert record["labels_cut"] == len(everything["labels"]) - 2
    assert len(line.encode()) < 16 * 1024, "Docker splits longer lines"


def test_labels_are_kept_in_order_while_they_fit() -> None:
    many = alert()
    many["labels"] = {f"label_{index:04d}": "v" * 10 for index in range(1000)}
    many["labels"]["alertname"] = "Many"
    [record] = lines_of(payload(many))
    kept = record["labels"]
    assert list(kept) == [f"label_{index:04d}" for index in range(len(kept))]
    assert len(json.dumps(kept)) <= MAX_LABELS_CHARS
    assert len(kept) == MAX_LABELS_CHARS // len(json.dumps({"label_0000": "v" * 10}))
    assert record["labels_cut"] == 1001 - len(kept)
    assert record["alertname"] == "Many", "an alert's own fields do not depend on its labels"


def test_labels_count_as_the_line_spells_them() -> None:
    """A thousand one-character labels would take 10 characters each, not 2."""
    tiny = alert()
    tiny["labels"] = {"alertname": "Tiny"} | {chr(0x4E00 + index): "v" for index in range(1000)}
    [line] = alert_lines(parse_payload(json.dumps(payload(tiny)).encode()), RECEIVED)
    record = json.loads(line)
    assert len(json.dumps(record["labels"], ensure_ascii=False)) <= MAX_LABELS_CHARS
    assert record["labels_cut"] == 1001 - len(record["labels"]) > 0


def test_a_line_without_too_many_labels_says_nothing_of_cutting() -> None:
    [record] = lines_of(payload(alert()))
    assert "labels_cut" not in record


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    odd = alert()
    odd["annotations"]["summary"] = "a \udc00 b"
    [line] = alert_lines(parse_payload(json.dumps(payload(odd)).encode()), RECEIVED)
    line.encode("utf-8")  # what stdout will do with it
    assert json.loads(line)["summary"] == "a \N{REPLACEMENT CHARACTER} b"
