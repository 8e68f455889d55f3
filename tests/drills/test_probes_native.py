"""The Loki, Tempo, Alertmanager and receiver probes against the native stack: the real
service reading its flag file, real Loki fed by real Alloy, real Alertmanager notifying
the real alert-receiver (and the Tempo stand-in, which serves traces by id as Tempo does).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from drills.alert_probes import (
    AlertRef,
    alertmanager_holds,
    alertmanager_released,
    receiver_line,
)
from drills.catalogue import ERROR_LINES
from drills.context import DrillContext, Reading
from drills.flagfile import switched_flags
from drills.probes import Span, flagged_lines, flagged_spans
from nativestack.stack import NativeStack
from stackclient import Api, wait_until
from tests.support.drills import stack_settings
from tests.support.live_stack import roll
from tests.support.native import NATIVE_FLAGS
from verify.logs import json_object
from verify.otlp_json import ERROR_STATUSES

pytestmark = [pytest.mark.nativestack]

WAIT = 90.0


@pytest.fixture
def ctx(native: NativeStack) -> Iterator[DrillContext]:
    api = Api(timeout=10)
    try:
        yield DrillContext(stack_settings(native), api)
    finally:
        api.close()


def until_responded(probe: Callable[[], Reading], what: str) -> Reading:
    """Ask `probe` until its signal responds, as the runner does; fail after `WAIT`."""
    readings: list[Reading] = []

    def responded() -> Reading | None:
        readings.append(probe())
        return readings[-1] if readings[-1].responded else None

    wait_until(responded, WAIT, interval=1)
    assert readings[-1].responded, f"{what}: {readings[-1].detail}"
    return readings[-1]


def _flag_changes(native: NativeStack) -> list[dict[str, str]]:
    """The flags away from their default in each "Feature flags changed" line the
    service printed so far, oldest first."""
    records = [json_object(line) for line in native.service_lines()]
    return [
        record.get("feature_flags") or {}
        for record in records
        if record is not None and record.get("message") == "Feature flags changed"
    ]


def until_applied(native: NativeStack, away: Mapping[str, str], since: int) -> None:
    """Wait until a "Feature flags changed" line after the first `since` ones says the
    service rolls with the flags `away` from their defaults, and no others.

    A fixed sleep raced the service's file watcher (a poll every 0.5 s) on a busy
    machine, both after a switch and after the restore the next test relies on.
    """
    until_responded(
        lambda: Reading(
            dict(away) in _flag_changes(native)[since:],
            f"no 'Feature flags changed' line with exactly {dict(away)} yet",
        ),
        "the service applying the flag file",
    )


def test_flagged_error_lines_lead_to_error_spans_carrying_the_flag(
    native: NativeStack, native_flags_file: Path, ctx: DrillContext
) -> None:
    switched = {**NATIVE_FLAGS, "fair-failure-rate": "half"}
    with switched_flags(native_flags_file, {"fair-failure-rate": "half"}):
        until_applied(native, switched, since=len(_flag_changes(native)))
        ctx.started = time.time()
        rolls = roll(native.service_url, ["fair", "risky"] * 20)
        assert {r.status for r in rolls if r.die == "fair"} == {200, 500}
        restored_from = len(_flag_changes(native))
    until_applied(native, NATIVE_FLAGS, since=restored_from)  # as the next tests expect
    lines = until_responded(
        lambda: flagged_lines(ctx, "errors", ERROR_LINES), "flagged error lines in Loki"
    )
    assert "fair:" in lines.detail and "risky:" in lines.detail
    failed_ids = {r.trace_id for r in rolls if r.status == 500}
    assert set(ctx.found["errors"]["fair"]) <= failed_ids

    def failed(span: Span) -> bool:
        return span["status"] in ERROR_STATUSES

    flags = {"fair": "fair-failure-rate", "risky": "risky-failure-rate"}
    spans = until_responded(
        lambda: flagged_spans(ctx, "errors", flags, failed, "failed span"), "flagged spans"
    )
    assert "fair-failure-rate=half" in spans.detail
    assert "risky-failure-rate=half" in spans.detail


def test_lines_before_the_drill_or_without_the_flag_do_not_count(
    native: NativeStack, ctx: DrillContext
) -> None:
    roll(native.service_url, ["fair"] * 10)
    reading = flagged_lines(ctx, "errors", {"fair": ERROR_LINES["fair"]})
    assert not reading.responded
    assert reading.detail == "fair: no line yet"


def _post_alert(native: NativeStack, labels: dict[str, str], ended: bool) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": labels,
        "annotations": {"summary": "A drill probe's test alert."},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
    }
    if ended:
        alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    response = httpx.post(f"{native.alertmanager_url}/api/v2/alerts", json=[alert], timeout=10)
    assert response.status_code == 200, response.text


def test_an_alert_s_journey_through_alertmanager_and_the_receiver(
    native: NativeStack, ctx: DrillContext
) -> None:
    run = uuid.uuid4().hex[:12]
    ref = AlertRef("DrillProbeTestAlert", {"run": run})
    other = AlertRef("DrillProbeTestAlert", {"run": "another"})
    assert not alertmanager_holds(ctx, ref).responded
    assert not receiver_line(ctx, ref, "firing").responded

    _post_alert(native, {"alertname": ref.name, "run": run}, ended=False)
    held = until_responded(lambda: alertmanager_holds(ctx, ref), "Alertmanager holds it")
    assert "active" in held.detail
    assert not alertmanager_holds(ctx, other).responded
    assert not alertmanager_released(ctx, ref).responded
    received = until_responded(lambda: receiver_line(ctx, ref, "firing"), "received firing")
    assert received.detail.endswith("A drill probe's test alert.")
    assert not receiver_line(ctx, ref, "resolved").responded

    _post_alert(native, {"alertname": ref.name, "run": run}, ended=True)
    until_responded(lambda: alertmanager_released(ctx, ref), "Alertmanager released it")
    until_responded(lambda: receiver_line(ctx, ref, "resolved"), "received resolved")
