"""The recording rules on the service's real metrics, in a real Prometheus.

promtool's unit tests prove the rules' arithmetic on series written by hand. They
can't prove those series look like the ones the service really exports: a renamed
label or metric would leave every rule recording nothing, and every unit test green.
Here the project's prometheus.yml and rules run in the pinned Prometheus (as
tests/support/prometheus.py explains), scraping the real service under traffic.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml

from stackclient import wait_until
from tests.support.prometheus import JOB, RULES_DIR, Prometheus, running_project_prometheus
from tests.support.service import running_service

DICE = ("fair", "risky")
# Rules need two scrapes 5 s apart, then an evaluation: well under this, even on a
# busy machine. Only a broken rule or a missing series should ever reach it.
DEADLINE_SECONDS = 120

pytestmark = pytest.mark.slow


def recorded_series() -> list[str]:
    names = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        names += [r["record"] for g in document["groups"] for r in g["rules"] if "record" in r]
    return sorted(set(names))


def roll_both_dice(url: str, rounds: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(rounds):
            for die in DICE:
                client.get("/roll", params={"die": die})


def has_series(prometheus: Prometheus, name: str) -> bool:
    """`name` has a series, and one per die when it is recorded by die."""
    series = prometheus.query(name, time.time())
    if name.startswith("die_type"):
        return {s["metric"].get("die_type") for s in series} >= set(DICE)
    return bool(series)


def rules_evaluated(prometheus: Prometheus) -> list[dict[str, Any]]:
    """Every rule, once each has been evaluated at least once."""
    rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
    return rules if all(rule["health"] != "unknown" for rule in rules) else []


def test_every_recording_rule_records_the_services_real_series() -> None:
    # Risky rolls fail half the time, so both results show up within a few rolls.
    env = {"DICE_RISKY_FAILURE_RATE": "0.5", "DICE_SEED": "7"}
    with (
        running_service(env) as service,
        running_project_prometheus({JOB: [f"127.0.0.1:{service.port}"]}) as prometheus,
    ):
        missing = set(recorded_series())

        def all_recorded() -> bool | None:
            nonlocal missing
            roll_both_dice(service.url, rounds=5)
            missing = {name for name in missing if not has_series(prometheus, name)}
            return not missing or None

        wait_until(all_recorded, DEADLINE_SECONDS, interval=1)
        assert not missing, f"recording rules still without series after traffic: {missing}"

        rules = rules_evaluated(prometheus)
        assert rules, "some rules were never evaluated"
        broken = {r.get("name"): r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken, broken

        for window in ("5m", "30m", "1h", "6h"):
            series = prometheus.query(f"die_type:dice_rolls_errors:ratio_rate{window}", time.time())
            assert {s["metric"]["job"] for s in series} == {JOB}
            ratios = {s["metric"]["die_type"]: float(s["value"][1]) for s in series}
            assert ratios["fair"] == 0, f"the fair die never fails, yet {window} says {ratios}"
            assert 0 < ratios["risky"] < 1, f"risky rolls both fail and succeed: {ratios}"
