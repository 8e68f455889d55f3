"""What each flag does to the service's answers, spans and log lines.

The app is the service's own (`create_app`) with a flag file, driven in process
through its ASGI interface and its lifespan; spans go to an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from dice_roller.app import create_app
from dice_roller.settings import Settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.flags import copy_shipped, edit_flags
from tests.support.service import trace_of

Z_999 = 3.291  # two-sided normal quantile for a 0.1% false alarm


async def _roll(
    settings: Settings, provider: TracerProvider, dice: Sequence[str]
) -> list[httpx.Response]:
    app = create_app(settings, provider)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # its end closes the flag watcher
        httpx.AsyncClient(transport=transport, base_url="http://flags") as client,
    ):
        return [await client.get("/roll", params={"die": die}) for die in dice]


def roll(
    tmp_path: Path,
    variants: dict[str, str],
    dice: Sequence[str],
    seed: int = 1,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[httpx.Response], list[ReadableSpan]]:
    """Roll `dice` in order on a fresh app whose flag file selects `variants` (and
    has had `edit` applied)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flags_file = copy_shipped(tmp_path, variants)
    if edit is not None:
        edit_flags(flags_file, edit)
    settings = Settings(max_delay_seconds=0.0, seed=seed, flags_file=flags_file)
    responses = asyncio.run(_roll(settings, provider, dice))
    spans = [span for span in exporter.get_finished_spans() if span.name == "GET /roll"]
    assert len(spans) == len(responses)
    return responses, spans


def test_risky_always_fails_every_risky_roll_and_no_fair_one(tmp_path: Path) -> None:
    responses, _ = roll(tmp_path, {"risky-failure-rate": "always"}, ["risky", "fair"] * 20)
    assert [r.status_code for r in responses] == [500, 200] * 20


def test_risky_never_fails_no_roll(tmp_path: Path) -> None:
    responses, _ = roll(tmp_path, {"risky-failure-rate": "never"}, ["risky"] * 200)
    assert {r.status_code for r in responses} == {200}  # at the spec's 0.1: ~20 failures


def test_fair_always_fails_every_fair_roll_and_says_which_die(tmp_path: Path) -> None:
    responses, _ = roll(tmp_path, {"fair-failure-rate": "always"}, ["fair"] * 10)
    assert {r.status_code for r in responses} == {500}
    assert responses[0].json() == {
        "detail": "The fair die failed: the fair die slipped off the table"
    }


def test_a_loaded_die_shows_its_top_face_about_as_often_as_the_bias_says(tmp_path: Path) -> None:
    rolls = 1200
    responses, _ = roll(tmp_path, {"loaded-die-bias": "loaded"}, ["fair"] * rolls, seed=17)
    sixes = Counter(r.json()["roll"] for r in responses)[6]
    expected = 0.5 + 0.5 / 6
    standard_error = (expected * (1 - expected) / rolls) ** 0.5
    assert abs(sixes / rolls - expected) < Z_999 * standard_error, sixes


def test_extra_latency_holds_the_roll_at_least_that_long(tmp_path: Path) -> None:
    # A lower bound only: a sleep never ends early, however slow the machine.
    started = time.monotonic()
    [response], [span] = roll(tmp_path, {"extra-latency-seconds": "slow"}, ["fair"])
    assert response.status_code == 200
    assert time.monotonic() - started >= 1.5
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= 1.5


def evaluations(span: ReadableSpan) -> dict[str, dict[str, Any]]:
    """The OpenTelemetry hook's event of each flag evaluated for the span's roll."""
    found = {}
    for event in span.events:
        assert event.name == "feature_flag.evaluation"
        attributes = dict(event.attributes or {})
        found[str(attributes["feature_flag.key"])] = attributes
    return found


def test_the_span_gets_one_event_per_evaluation_that_changed_the_roll(tmp_path: Path) -> None:
    variants = {"risky-failure-rate": "always", "extra-latency-share": "some"}
    responses, spans = roll(tmp_path, variants, ["risky", "fair"])
    risky, fair = (evaluations(span) for span in spans)
    assert risky == {
        "risky-failure-rate": {
            "feature_flag.key": "risky-failure-rate",
            "feature_flag.result.variant": "always",
            "feature_flag.result.value": "1.0",
            "feature_flag.result.reason": "static",
            "feature_flag.provider.name": "FlagdProvider",
            # The targeting key of a roll is its trace id: `fractional` rules split requests.
            "feature_flag.context.id": trace_of(responses[0].headers)[0],
        }
    }
    # The fair roll: the risky flag does not apply, the latency share is not evaluated
    # while the extra latency is off, and flags at their default leave no event.
    assert fair == {}


def test_the_latency_share_is_evaluated_only_with_extra_latency(tmp_path: Path) -> None:
    variants = {"extra-latency-seconds": "slow", "extra-latency-share": "some"}
    _, [span] = roll(tmp_path, variants, ["fair"], seed=3)
    assert list(evaluations(span)) == ["extra-latency-seconds", "extra-latency-share"]


def test_flags_as_shipped_put_nothing_on_spans_or_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dice_roller")
    responses, spans = roll(tmp_path, {}, ["risky", "fair"] * 10)
    assert all(span.events == () for span in spans)
    rolls = [r for r in caplog.records if r.getMessage() in ("Roll completed", "Roll failed")]
    assert len(rolls) == len(responses)
    assert not any("feature_flags" in record.__dict__ for record in rolls)


def test_the_roll_line_names_the_flags_away_from_their_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dice_roller")
    variants = {"risky-failure-rate": "always", "loaded-die-bias": "loaded"}
    roll(tmp_path, variants, ["risky", "fair"])
    lines = {
        record.__dict__["die_type"]: record
        for record in caplog.records
        if record.getMessage() in ("Roll completed", "Roll failed")
    }
    assert lines["risky"].getMessage() == "Roll failed"
    assert lines["risky"].__dict__["feature_flags"] == variants
    assert lines["fair"].__dict__["feature_flags"] == {"loaded-die-bias": "loaded"}


def test_a_fractional_rule_splits_rolls_by_their_trace(tmp_path: Path) -> None:
    """flagd's `fractional` hashes the targeting key, a roll's trace id: each roll gets
    one variant, says which on its span, and behaves as that variant says."""

    def split(document: dict[str, Any]) -> None:
        document["flags"]["fair-failure-rate"]["targeting"] = {
            "fractional": [["spec", 50], ["always", 50]]
        }

    responses, spans = roll(tmp_path, {}, ["fair"] * 40, edit=split)
    variants = []
    for response, span in zip(responses, spans, strict=True):
        # The "always" half changed the roll, and says so on its span; "spec" did not.
        event = evaluations(span).get("fair-failure-rate")
        variant = "spec" if event is None else event["feature_flag.result.variant"]
        assert event is None or event["feature_flag.result.reason"] == "targeting_match"
        assert response.status_code == (500 if variant == "always" else 200)
        variants.append(variant)
    assert set(variants) == {"spec", "always"}  # 40 coin flips: all alike once in 2^39
