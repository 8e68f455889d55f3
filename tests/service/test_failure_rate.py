"""`DICE_RISKY_FAILURE_RATE` decides how often the running service's risky die fails.

Seeded, the service rolls the same dice every time, so each count below is the same
on every run: the bounds are those of the configured rate at a 0.1% false-alarm level
(as in test_dice.py), chosen so that the default rate (0.1) falls outside them. A
route that ignored the setting and used the default would fail here on every run,
not nine runs in ten.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.service import running_service

ROLLS = 300
SEED = "20260"
Z_999 = 3.291
DEFAULT_RATE = 0.1


def risky_failures(rate: float) -> int:
    """How many of ROLLS risky rolls the seeded service fails at `rate`."""
    env = {"DICE_RISKY_FAILURE_RATE": str(rate), "DICE_SEED": SEED, "DICE_MAX_DELAY_SECONDS": "0"}
    with running_service(env) as service, httpx.Client(base_url=service.url) as client:
        statuses = [client.get("/roll", params={"die": "risky"}).status_code for _ in range(ROLLS)]
    assert set(statuses) <= {200, 500}, set(statuses)
    return statuses.count(500)


def bounds(rate: float) -> tuple[float, float]:
    margin = Z_999 * (rate * (1 - rate) * ROLLS) ** 0.5
    return rate * ROLLS - margin, rate * ROLLS + margin


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, ROLLS)])
def test_rate_0_never_fails_and_rate_1_always_fails(rate: float, expected: int) -> None:
    assert risky_failures(rate) == expected


def test_a_rate_in_between_is_honoured() -> None:
    rate = 0.3
    low, high = bounds(rate)
    assert bounds(DEFAULT_RATE)[1] < low  # the default's counts cannot pass for this rate
    failures = risky_failures(rate)
    assert low <= failures <= high, f"{failures} of {ROLLS} failed at rate {rate}"
