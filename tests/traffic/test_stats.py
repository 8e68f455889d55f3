"""The fixed-size latency histogram and the chi-square test, checked against exact answers."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from traffic_gen.stats import (
    LatencyHistogram,
    Outcome,
    RunStats,
    _chi_square_survival,
    chi_square_uniform,
)

latencies = st.lists(
    st.floats(min_value=1e-4, max_value=100.0, allow_nan=False), min_size=1, max_size=500
)


def exact_percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@given(latencies, st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
def test_percentiles_are_within_one_bucket_of_exact(values: list[float], fraction: float) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    exact = exact_percentile(values, fraction)
    reported = histogram.percentile(fraction)
    assert reported is not None
    # Never below the true value, and at most one bucket's width above it.
    assert exact * (1 - 1e-9) <= reported <= exact * LatencyHistogram.GROWTH * (1 + 1e-9)
    assert histogram.percentile(1.0) == max(values)
    assert histogram.count == len(values)


def test_memory_stays_flat_however_many_requests() -> None:
    histogram = LatencyHistogram()
    size = histogram.bucket_count
    rng = random.Random(1)
    for _ in range(200_000):
        histogram.record(rng.expovariate(10))
    histogram.record(1e6)  # beyond the last bucket: clamped, not a new bucket
    histogram.record(0.0)
    assert histogram.bucket_count == size < 400
    assert histogram.max_seconds == 1e6
    assert histogram.count == 200_002


def test_merge_adds_counts() -> None:
    one, two, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    one.record(0.5)
    both.record(0.5)
    for _ in range(3):
        two.record(0.01)
        both.record(0.01)
    one.merge(two)
    assert one.count == 4
    assert one.percentile(1.0) == 0.5
    # Three of the four answers took 10 ms: the merged buckets must say so.
    for fraction in (0.25, 0.5, 0.75, 1.0):
        assert one.percentile(fraction) == both.percentile(fraction)
    assert one.percentile(0.5) == pytest.approx(0.01, rel=0.1)
    assert LatencyHistogram().percentile(0.5) is None


def test_chi_square_matches_known_critical_values() -> None:
    faces = (1, 2, 3, 4, 5, 6)
    uniform = chi_square_uniform({face: 100 for face in faces}, faces)
    assert uniform is not None
    assert uniform.statistic == 0
    assert uniform.p_value == 1.0
    # 600 rolls expected 100 per face; 65 ones and 135 sixes give (35² + 35²) / 100 = 24.5.
    skewed = chi_square_uniform({1: 65, 2: 100, 3: 100, 4: 100, 5: 100, 6: 135}, faces)
    assert skewed is not None
    assert math.isclose(skewed.statistic, (35**2 + 35**2) / 100)
    assert skewed.degrees_of_freedom == 5
    assert skewed.p_value < 0.001

    # Published 5 % critical values, through both the odd and the even series.
    assert math.isclose(_chi_square_survival(11.0705, 5), 0.05, rel_tol=1e-4)
    assert math.isclose(_chi_square_survival(9.4877, 4), 0.05, rel_tol=1e-4)
    assert math.isclose(_chi_square_survival(3.8415, 1), 0.05, rel_tol=1e-4)
    assert chi_square_uniform({}, faces) is None


def test_values_a_die_cannot_show_are_left_out_of_the_test() -> None:
    chi = chi_square_uniform({1: 10, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10, 9: 500}, (1, 2, 3, 4, 5, 6))
    assert chi is not None
    assert chi.statistic == 0


def test_run_stats_counts_by_die_and_outcome() -> None:
    stats = RunStats()
    stats.record("fair", Outcome.SUCCESS, latency_seconds=0.1, status_code=200, value=3)
    stats.record("risky", Outcome.HTTP_ERROR, latency_seconds=0.2, status_code=500)
    stats.record("risky", Outcome.TIMEOUT)
    assert stats.finished == 3
    assert stats.successes == 1
    assert stats.count(Outcome.HTTP_ERROR) == 1
    assert stats.dice["risky"].status_codes == {500: 1}
    assert stats.dice["fair"].values == {3: 1}
    assert stats.latency().count == 2  # a timeout has no latency to report
