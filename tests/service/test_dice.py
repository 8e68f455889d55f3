"""The dice rules, tested without any server: values, uniformity, failure rate, delay."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from dice_roller.dice import DieType, RiskyDieFailure, draw_delay, roll

# Critical values for a false-alarm rate of 0.1% (scipy.stats.chi2.ppf(0.999, 5) and the
# two-sided normal quantile): with a fixed seed the outcome is reproducible, and a change
# of the rules that skews the dice fails these checks.
CHI2_DF5_999 = 20.515
Z_999 = 3.291
ROLLS = 60_000


def rolls_of(die: DieType, seed: int, failure_rate: float) -> tuple[Counter[int], int]:
    rng = random.Random(seed)
    values: Counter[int] = Counter()
    failures = 0
    for _ in range(ROLLS):
        try:
            values[roll(die, rng, failure_rate)] += 1
        except RiskyDieFailure:
            failures += 1
    return values, failures


def chi_square_uniform(values: Counter[int], faces: range) -> float:
    total = sum(values.values())
    expected = total / len(faces)
    return sum((values[face] - expected) ** 2 / expected for face in faces)


@pytest.mark.parametrize(
    ("die", "faces"), [(DieType.FAIR, range(1, 7)), (DieType.RISKY, range(2, 8))]
)
def test_each_die_rolls_only_its_faces_uniformly(die: DieType, faces: range) -> None:
    values, _ = rolls_of(die, seed=1234, failure_rate=0.1)
    assert set(values) == set(faces) == set(die.possible_values)
    assert chi_square_uniform(values, faces) < CHI2_DF5_999


def test_fair_die_never_fails_whatever_the_rate() -> None:
    _, failures = rolls_of(DieType.FAIR, seed=7, failure_rate=1.0)
    assert failures == 0


@pytest.mark.parametrize("rate", [0.1, 0.25])
def test_risky_die_fails_at_the_configured_rate(rate: float) -> None:
    _, failures = rolls_of(DieType.RISKY, seed=99, failure_rate=rate)
    standard_error = (rate * (1 - rate) / ROLLS) ** 0.5
    assert abs(failures / ROLLS - rate) < Z_999 * standard_error


def test_risky_die_with_rate_zero_or_one() -> None:
    assert rolls_of(DieType.RISKY, seed=1, failure_rate=0.0)[1] == 0
    assert rolls_of(DieType.RISKY, seed=1, failure_rate=1.0)[1] == ROLLS


def test_same_seed_same_rolls() -> None:
    assert rolls_of(DieType.RISKY, 5, 0.1) == rolls_of(DieType.RISKY, 5, 0.1)


def test_delay_stays_within_bounds_and_spreads_over_them() -> None:
    rng = random.Random(3)
    delays = [draw_delay(rng, 0.2) for _ in range(10_000)]
    assert all(0.0 <= delay <= 0.2 for delay in delays)
    assert min(delays) < 0.01 and max(delays) > 0.19
    assert abs(sum(delays) / len(delays) - 0.1) < 0.005
    assert draw_delay(rng, 0.0) == 0.0
