"""Counting what happened, in memory that does not grow with the length of the run.

A generator left running overnight must not slowly eat the machine, so nothing here
keeps one entry per request: outcomes are counters, latencies go into a histogram
with a fixed number of buckets, and rolled values are counted per face. Labels the
service chooses (a failure's reason, a page's asset paths) are counted up to
``MAX_LABELS`` distinct ones, the rest as "other".
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "DIE_FACES",
    "EXPECTED_SUCCESS_RATE",
    "MAX_LABELS",
    "ChiSquare",
    "DieStats",
    "LatencyHistogram",
    "Outcome",
    "PageStats",
    "RunStats",
    "chi_square_uniform",
]

#: The faces each die can show, from the service's contract.
DIE_FACES: dict[str, tuple[int, ...]] = {
    "fair": (1, 2, 3, 4, 5, 6),
    "risky": (2, 3, 4, 5, 6, 7),
}

#: The share of rolls that should succeed with the service's defaults: the risky die fails
#: 1 time in 10 (DICE_RISKY_FAILURE_RATE=0.1, README.md's settings table).
EXPECTED_SUCCESS_RATE: dict[str, float] = {"fair": 1.0, "risky": 0.9}

K = TypeVar("K", bound=Hashable)

#: Most distinct labels the service chooses (reasons, asset paths) counted one by one.
MAX_LABELS = 50


class Outcome(enum.StrEnum):
    """How one request ended, from the generator's point of view."""

    SUCCESS = "success"
    HTTP_ERROR = "http_error"  # the service answered with a non-2xx status
    TIMEOUT = "timeout"  # no complete answer within --timeout
    CONNECTION_ERROR = "connection_error"  # refused, reset, or closed mid-answer
    INVALID_RESPONSE = "invalid_response"  # a 2xx whose body is not {"roll": <int>}


class LatencyHistogram:
    """A log-bucketed latency histogram with a fixed number of buckets.

    Bucket ``i`` holds latencies in ``[MIN * GROWTH**(i-1), MIN * GROWTH**i)``, so each
    bucket is about 4.4 % wider than the previous one and any percentile read from it is
    within that relative error. 100 µs to 1000 s takes under 400 integers, whatever the
    count.
    The exact minimum, maximum and sum are kept on the side.
    """

    MIN_SECONDS = 1e-4
    MAX_SECONDS = 1e3
    GROWTH = 2 ** (1 / 16)

    def __init__(self) -> None:
        self._log_growth = math.log(self.GROWTH)
        size = math.ceil(math.log(self.MAX_SECONDS / self.MIN_SECONDS) / self._log_growth) + 1
        self._buckets = [0] * size
        self.count = 0
        self.total_seconds = 0.0
        self.min_seconds = math.inf
        self.max_seconds = 0.0

    def record(self, seconds: float) -> None:
        """Add one latency. Values outside the range land in the first or last bucket."""
        if seconds <= self.MIN_SECONDS:
            index = 0
        else:
            index = 1 + int(math.log(seconds / self.MIN_SECONDS) / self._log_growth)
            index = min(index, len(self._buckets) - 1)
        self._buckets[index] += 1
        self.count += 1
        self.total_seconds += seconds
        self.min_seconds = min(self.min_seconds, seconds)
        self.max_seconds = max(self.max_seconds, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's contents to this one."""
        for index, count in enumerate(other._buckets):
            self._buckets[index] += count
        self.count += other.count
        self.total_seconds += other.total_seconds
        self.min_seconds = min(self.min_seconds, other.min_seconds)
        self.max_seconds = max(self.max_seconds, other.max_seconds)

    def percentile(self, fraction: float) -> float | None:
        """The latency below which ``fraction`` of the recorded ones fall, or None if empty.

        Reports the upper edge of the bucket holding that rank, clamped to the exact
        extremes, so p100 is the true maximum.
        """
        if self.count == 0:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, count in enumerate(self._buckets):
            seen += count
            if seen >= rank:
                upper_edge = self.MIN_SECONDS * self.GROWTH**index
                return min(max(upper_edge, self.min_seconds), self.max_seconds)
        return self.max_seconds  # pragma: no cover - the loop always reaches `rank`

    @property
    def mean_seconds(self) -> float | None:
        return self.total_seconds / self.count if self.count else None

    @property
    def bucket_count(self) -> int:
        """How many buckets the histogram holds: constant for its whole life."""
        return len(self._buckets)


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's goodness-of-fit test of rolled values against a uniform die."""

    statistic: float
    degrees_of_freedom: int
    p_value: float


def _chi_square_survival(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for a chi-square distribution, in closed form.

    Integer degrees of freedom have an exact finite series (Abramowitz & Stegun 26.4.4
    and 26.4.5), which saves the generator a dependency on SciPy for one number.
    """
    x = max(statistic, 0.0)
    if degrees_of_freedom % 2 == 0:
        term = total = math.exp(-x / 2)
        for r in range(1, degrees_of_freedom // 2):
            term *= x / (2 * r)
            total += term
        return min(total, 1.0)
    chi = math.sqrt(x)
    total = math.erfc(chi / math.sqrt(2))
    term = math.sqrt(2 / math.pi) * math.exp(-x / 2) / chi if chi > 0 else 0.0
    for r in range(1, (degrees_of_freedom - 1) // 2 + 1):
        term *= x / (2 * r - 1)
        total += term
    return min(total, 1.0)


def chi_square_uniform(counts: dict[int, int], faces: tuple[int, ...]) -> ChiSquare | None:
    """Compare the counts of each face with a uniform die; None without any roll.

    Values outside ``faces`` are left out: they are reported on their own, since a
    value the die cannot show is a bug rather than bad luck.
    """
    observed = [counts.get(face, 0) for face in faces]
    total = sum(observed)
    if total == 0:
        return None
    expected = total / len(faces)
    statistic = sum((o - expected) ** 2 / expected for o in observed)
    dof = len(faces) - 1
    return ChiSquare(statistic, dof, _chi_square_survival(statistic, dof))


def _count_label(counter: Counter[K], label: K, other: K) -> None:
    """Count ``label``, or ``other`` once ``MAX_LABELS`` distinct labels are counted."""
    if label not in counter and len(counter) >= MAX_LABELS:
        label = other
    counter[label] += 1


@dataclass
class DieStats:
    """Everything counted for one die.

    ``reasons`` counts the failures whose answer said why, as "503 unreachable": the
    frontend's ``reason``; the dice-roller's errors carry none.
    """

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    status_codes: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    values: Counter[int] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def successes(self) -> int:
        return self.outcomes[Outcome.SUCCESS]


@dataclass
class PageStats:
    """The frontend's page loads, counted apart from the rolls.

    ``outcomes`` and ``status_codes`` are those of ``GET /`` itself; ``latency`` is the
    whole load, the page and then its assets; ``assets`` counts each asset's result by
    path: ("/static/page.css", "200"), ("/static/tracing.js", "404"), or "timeout" and
    "connection_error" in place of a status code.
    """

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    status_codes: Counter[int] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    assets: Counter[tuple[str, str]] = field(default_factory=Counter)
    asset_failures: int = 0

    def record(
        self,
        outcome: Outcome,
        *,
        latency_seconds: float | None = None,
        status_code: int | None = None,
    ) -> None:
        """Count one page load (its assets are counted by ``record_asset``)."""
        self.outcomes[outcome] += 1
        if status_code is not None:
            self.status_codes[status_code] += 1
        if latency_seconds is not None:
            self.latency.record(latency_seconds)

    def record_asset(self, path: str, outcome: Outcome, status_code: int | None) -> None:
        """Count one asset fetched: by path and status code, or how it got no answer."""
        result = str(status_code) if status_code is not None else outcome.value
        _count_label(self.assets, (path, result), ("other", result))
        if outcome is not Outcome.SUCCESS:
            self.asset_failures += 1

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def successes(self) -> int:
        return self.outcomes[Outcome.SUCCESS]


@dataclass
class RunStats:
    """Counters for a whole run, by die; safe to read at any moment for the live view.

    ``started`` counts requests sent; the per-die outcomes count requests finished.
    ``skipped`` counts open-loop requests not sent because too many were in flight.
    Those are rolls: the frontend's page loads are counted apart, in ``pages``.
    """

    dice: dict[str, DieStats] = field(
        default_factory=lambda: {die: DieStats() for die in DIE_FACES}
    )
    started: int = 0
    skipped: int = 0
    pages: PageStats = field(default_factory=PageStats)

    def record(
        self,
        die: str,
        outcome: Outcome,
        *,
        latency_seconds: float | None = None,
        status_code: int | None = None,
        reason: str | None = None,
        value: int | None = None,
    ) -> None:
        """Count one finished request.

        Latency is recorded for every answer the service gave (success or error), not
        for timeouts or connection errors, which would only measure our own limits.
        """
        stats = self.dice[die]
        stats.outcomes[outcome] += 1
        if status_code is not None:
            stats.status_codes[status_code] += 1
        if reason is not None:
            _count_label(stats.reasons, f"{status_code} {reason}", f"{status_code} other")
        if value is not None:
            stats.values[value] += 1
        if latency_seconds is not None:
            stats.latency.record(latency_seconds)

    @property
    def finished(self) -> int:
        return sum(die.total for die in self.dice.values())

    @property
    def successes(self) -> int:
        return sum(die.successes for die in self.dice.values())

    def count(self, outcome: Outcome) -> int:
        return sum(die.outcomes[outcome] for die in self.dice.values())

    def latency(self) -> LatencyHistogram:
        """All dice's latencies together."""
        merged = LatencyHistogram()
        for die in self.dice.values():
            merged.merge(die.latency)
        return merged
