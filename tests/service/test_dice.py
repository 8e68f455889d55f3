"""The dice rules, tested without any server: values, uniformity, failures, delay, faults.

Every distribution check draws from a fixed seed, so its outcome is reproducible, and
compares against a critical value with a 0.1% false-alarm rate: a change of the rules
that skews the dice fails it, a lucky or unlucky run cannot.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from dice_roller.dice import Die, DieFailure, DieType, draw_delay, roll, stage1_dice

# scipy.stats.chi2.ppf(0.999, df) and the two-sided normal quantile for 0.1%.
CHI2_DF4_999 = 18.467
CHI2_DF5_999 = 20.515
Z_999 = 3.291
ROLLS = 60_000
FACES = 6
DICE = stage1_dice(max_delay_seconds=1.0, risky_failure_rate=0.1)


def faces(die: DieType) -> range:
    """What stage 1's dice show: 1-6 fair, 2-7 risky."""
    return range(2, 8) if die is DieType.RISKY else range(1, 7)


def rolls_of(
    die: DieType, seed: int, failure_rate: float = 0.0, loaded_bias: float = 0.0
) -> tuple[Counter[int], int]:
    rng = random.Random(seed)
    values: Counter[int] = Counter()
    failures = 0
    for _ in range(ROLLS):
        try:
            values[roll(DICE[die], rng, failure_rate, loaded_bias)] += 1
        except DieFailure:
            failures += 1
    return values, failures


def chi_square_uniform(values: Counter[int], faces: range) -> float:
    total = sum(values[face] for face in faces)
    expected = total / len(faces)
    return sum((values[face] - expected) ** 2 / expected for face in faces)


def assert_share(observed: int, trials: int, probability: float) -> None:
    """`observed` successes out of `trials` are consistent with `probability`."""
    standard_error = (probability * (1 - probability) / trials) ** 0.5
    assert abs(observed / trials - probability) < Z_999 * standard_error, (
        f"{observed}/{trials} = {observed / trials:.4f}, expected {probability:.4f}"
    )


@pytest.mark.parametrize(
    ("die", "faces"), [(DieType.FAIR, range(1, 7)), (DieType.RISKY, range(2, 8))]
)
def test_each_die_rolls_only_its_faces_uniformly(die: DieType, faces: range) -> None:
    values, _ = rolls_of(die, seed=1234)
    assert set(values) == set(faces) == set(DICE[die].faces)
    assert chi_square_uniform(values, faces) < CHI2_DF5_999


@pytest.mark.parametrize("rate", [0.1, 0.25])
@pytest.mark.parametrize("die", list(DieType))
def test_a_die_fails_at_the_rate_given_and_its_successes_stay_uniform(
    die: DieType, rate: float
) -> None:
    values, failures = rolls_of(die, seed=99, failure_rate=rate)
    assert_share(failures, ROLLS, rate)
    assert chi_square_uniform(values, faces(die)) < CHI2_DF5_999


@pytest.mark.parametrize("die", list(DieType))
def test_a_failure_rate_of_zero_or_one(die: DieType) -> None:
    assert rolls_of(die, seed=1, failure_rate=0.0)[1] == 0
    assert rolls_of(die, seed=1, failure_rate=1.0)[1] == ROLLS


def test_a_failure_names_its_die() -> None:
    with pytest.raises(DieFailure, match="the fair die"):
        roll(DICE[DieType.FAIR], random.Random(0), failure_rate=1.0)


@pytest.mark.parametrize("bias", [0.1, 0.5])
@pytest.mark.parametrize("die", list(DieType))
def test_a_loaded_die_shows_its_top_face_more_and_the_rest_uniformly(
    die: DieType, bias: float
) -> None:
    values, _ = rolls_of(die, seed=5, loaded_bias=bias)
    shown = faces(die)
    top = shown[-1]
    assert top == (7 if die is DieType.RISKY else 6)
    assert_share(values[top], ROLLS, bias + (1 - bias) / FACES)
    assert chi_square_uniform(values, shown[:-1]) < CHI2_DF4_999


def test_a_fully_loaded_die_always_shows_its_top_face() -> None:
    values, _ = rolls_of(DieType.RISKY, seed=2, loaded_bias=1.0)
    assert set(values) == {7}


def test_faults_at_zero_draw_what_a_roll_drew_before_faults_existed() -> None:
    """A seeded run keeps its rolls: a fault at zero draws no number of its own."""
    rng, reference = random.Random(42), random.Random(42)
    for _ in range(1000):
        assert roll(DICE[DieType.FAIR], rng, 0.0, 0.0) == reference.randint(1, FACES)
        assert draw_delay(rng, 1.0, 0.0, 1.0) == reference.uniform(0.0, 1.0)
    assert rng.getstate() == reference.getstate()


def test_same_seed_same_rolls() -> None:
    assert rolls_of(DieType.FAIR, 5, 0.3, 0.2) == rolls_of(DieType.FAIR, 5, 0.3, 0.2)


def test_delay_stays_within_bounds_and_spreads_over_them() -> None:
    rng = random.Random(3)
    delays = [draw_delay(rng, 0.2) for _ in range(10_000)]
    assert all(0.0 <= delay <= 0.2 for delay in delays)
    assert min(delays) < 0.01 and max(delays) > 0.19
    assert abs(sum(delays) / len(delays) - 0.1) < 0.005
    assert draw_delay(rng, 0.0) == 0.0


def test_extra_latency_for_every_roll_shifts_every_delay() -> None:
    rng = random.Random(8)
    delays = [draw_delay(rng, 0.2, extra_seconds=1.5) for _ in range(10_000)]
    assert all(1.5 <= delay <= 1.7 for delay in delays)
    assert abs(sum(delays) / len(delays) - 1.6) < 0.005


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_extra_latency_hits_its_share_of_rolls(share: float) -> None:
    rng = random.Random(13)
    delays = [draw_delay(rng, 1.0, extra_seconds=5.0, extra_share=share) for _ in range(ROLLS)]
    slow = [delay for delay in delays if delay >= 5.0]
    assert_share(len(slow), ROLLS, share)
    assert all(delay <= 1.0 for delay in delays if delay < 5.0)
    assert all(delay <= 6.0 for delay in slow)


def test_a_share_without_extra_latency_changes_nothing() -> None:
    rng, reference = random.Random(4), random.Random(4)
    assert [draw_delay(rng, 1.0, extra_seconds=0.0, extra_share=0.2) for _ in range(100)] == [
        draw_delay(reference, 1.0) for _ in range(100)
    ]


def test_a_die_from_the_die_service_rolls_its_own_faces_and_loads_its_top_one() -> None:
    """Stage 3: the same rules roll any die the die-service describes."""
    d20 = Die(name="d20", faces=tuple(range(1, 21)), failure_rate=0.05, max_delay_seconds=1.4)
    rng = random.Random(8)
    values = Counter(roll(d20, rng, 0.0) for _ in range(ROLLS))
    assert set(values) == set(range(1, 21))
    assert chi_square_uniform(values, range(1, 21)) < 43.820  # chi2.ppf(0.999, 19)
    assert {roll(d20, rng, 0.0, loaded_bias=1.0) for _ in range(100)} == {20}
    with pytest.raises(DieFailure, match="the d20 die"):
        roll(d20, rng, failure_rate=1.0)
