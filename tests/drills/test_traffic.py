"""The drills' traffic: the real generator in rounds against the real service, and the
generator's own chi-square verdict read the way its summary prints it."""

from __future__ import annotations

import sys

import pytest
from traffic_gen.cli import parse_settings
from traffic_gen.config import Settings as TrafficSettings
from traffic_gen.config import Target
from traffic_gen.load import RunTiming
from traffic_gen.report import render_text, summarize
from traffic_gen.stats import DIE_FACES, Outcome, RunStats

from drills.context import DrillContext
from drills.probes import generator_flags_skew
from drills.settings import DrillSettings
from drills.traffic import Round, Traffic
from stackclient import Api, wait_until
from tests.support.drills import live_generators
from tests.support.service import RunningService
from verify.context import TRAFFIC_SCRIPT


def _rolls(service: RunningService) -> int:
    return sum('"route": "/roll"' in line for line in service.log_lines())


@pytest.mark.slow
def test_rounds_follow_each_other_and_stop_leaves_no_generator(
    dice_service: RunningService,
) -> None:
    traffic = Traffic(TRAFFIC_SCRIPT, dice_service.url, rate=20, round_seconds=2)
    traffic.start()
    try:
        wait_until(lambda: len(traffic.finished_rounds()) >= 2 or None, 60)
    finally:
        traffic.stop()
    rounds = traffic.finished_rounds()
    assert len(rounds) >= 2, rounds
    for finished in rounds:
        assert finished.exit_code == 0, finished.last_words
        assert finished.summary is not None and finished.summary["completed"] is True
        dice = finished.summary["dice"]
        assert dice["fair"]["requests"] > 0 and dice["risky"]["requests"] > 0
    assert live_generators(dice_service.url) == []


@pytest.mark.slow
def test_stopping_mid_round_ends_the_generator_at_once(dice_service: RunningService) -> None:
    traffic = Traffic(TRAFFIC_SCRIPT, dice_service.url, rate=5, round_seconds=600)
    rolls_before = _rolls(dice_service)
    traffic.start()
    wait_until(lambda: _rolls(dice_service) >= rolls_before + 3 or None, 30, interval=0.1)
    assert live_generators(dice_service.url), "the generator is not sending"
    traffic.stop()
    assert live_generators(dice_service.url) == []
    assert traffic.finished_rounds() == [], "a round cut short is not a verdict"
    # Stopped as Ctrl-C stops it (exit code 130, its summary printed), not killed.
    assert traffic.cut_short is not None
    assert traffic.cut_short.exit_code == 130, traffic.cut_short.last_words
    assert traffic.cut_short.summary is not None
    assert traffic.cut_short.summary["completed"] is False


def _summary(values: dict[str, dict[int, int]]) -> dict[str, object]:
    stats = RunStats()
    for die, counts in values.items():
        for value, count in counts.items():
            for _ in range(count):
                stats.record(
                    die, Outcome.SUCCESS, latency_seconds=0.1, status_code=200, value=value
                )
    timing = RunTiming(started_at=0.0, sending_stopped_at=10.0, finished_at=10.0)
    return summarize(TrafficSettings(), stats, timing, "dice-roller 0.1.0")


def _probe(*summaries: dict[str, object]) -> tuple[bool, str]:
    traffic = Traffic(TRAFFIC_SCRIPT, "http://127.0.0.1:9", rate=1, round_seconds=2)
    traffic.rounds.extend(Round(0, summary, "") for summary in summaries)
    api = Api(timeout=1)
    try:
        ctx = DrillContext(DrillSettings(), api, traffic=traffic)
        reading = generator_flags_skew(ctx)
    finally:
        api.close()
    return reading.responded, reading.detail


UNIFORM = {die: dict.fromkeys(faces, 20) for die, faces in DIE_FACES.items()}
LOADED = {die: {**dict.fromkeys(faces, 5), faces[-1]: 45} for die, faces in DIE_FACES.items()}


def test_the_probe_says_skewed_exactly_when_the_generator_s_summary_does() -> None:
    for values, skewed in ((UNIFORM, False), (LOADED, True)):
        summary = _summary(values)
        text = render_text(summary)
        assert text.count("unlikely from a uniform die") == (2 if skewed else 0), text
        responded, detail = _probe(summary)
        assert responded is skewed, detail


def test_each_die_may_be_flagged_in_a_different_round() -> None:
    only_fair = _summary({"fair": LOADED["fair"], "risky": UNIFORM["risky"]})
    only_risky = _summary({"fair": UNIFORM["fair"], "risky": LOADED["risky"]})
    assert not _probe(only_fair)[0]
    responded, detail = _probe(only_fair, only_risky)
    assert responded, detail
    assert detail.startswith("fair: chi²") and "risky: chi²" in detail


def test_too_few_rolls_are_not_a_verdict() -> None:
    few = _summary({die: {faces[-1]: 12} for die, faces in DIE_FACES.items()})
    assert "too few rolls to judge" in render_text(few)
    responded, detail = _probe(few)
    assert not responded
    assert detail == "fair: too few rolls to judge, risky: too few rolls to judge"


def test_a_round_without_a_summary_is_reported_with_the_generator_s_words() -> None:
    responded, detail = _probe()
    assert (responded, detail) == (False, "its first round has not ended yet")
    traffic = Traffic(TRAFFIC_SCRIPT, "http://127.0.0.1:9", rate=1, round_seconds=2)
    traffic.rounds.append(Round(1, None, "Cannot reach the dice-roller service"))
    api = Api(timeout=1)
    try:
        reading = generator_flags_skew(DrillContext(DrillSettings(), api, traffic=traffic))
    finally:
        api.close()
    assert not reading.responded
    assert (
        reading.detail == "traffic-gen ended with exit code 1: Cannot reach the dice-roller service"
    )


def test_traffic_through_the_frontend_is_visitors_the_generator_accepts() -> None:
    """Visitors wait for each answer, so the pace is their number and their pause."""
    traffic = Traffic(TRAFFIC_SCRIPT, "http://frontend:8000", 4, 30, target="frontend")
    command = traffic.command()
    assert command[:2] == [sys.executable, str(TRAFFIC_SCRIPT)]
    settings = parse_settings(command[2:])
    assert settings.target is Target.FRONTEND and settings.url == "http://frontend:8000"
    assert settings.rate is None and settings.users == 2
    assert (settings.think.low, settings.think.high) == (0.5, 0.5)
    assert settings.duration == 30 and settings.json and settings.quiet
    assert "through the frontend's page" in traffic.describe()
    assert "--target frontend" in traffic.describe()
    dice_roller = Traffic(TRAFFIC_SCRIPT, "http://dice-roller:8000", 4, 30).command()
    assert parse_settings(dice_roller[2:]).rate == 4
