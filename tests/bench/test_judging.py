"""The bench's verdicts: a figure is judged against its target, and the knee is found.

The timed figures themselves are never asserted (they belong to the machine); what is
asserted is that a given figure gets the verdict its target says.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import concurrency
from bench.concurrency import MEAN_DELAY_SECONDS, ConcurrencyPlan
from bench.report import Report
from bench.servers import Server
from bench.wrk import WrkResult


@pytest.mark.parametrize(
    ("value", "op", "threshold", "verdict"),
    [
        (0.60, ">=", 0.60, "PASS"),
        (0.59, ">=", 0.60, "MISS"),
        (50.0, "<=", 50.0, "PASS"),
        (50.1, "<=", 50.0, "MISS"),
        (0.019, "<", 0.02, "PASS"),
        (0.02, "<", 0.02, "MISS"),
    ],
)
def test_a_figure_gets_the_verdict_of_its_target(
    value: float, op: str, threshold: float, verdict: str
) -> None:
    report = Report(quick=False)
    check = report.check("part", "figure", value, op, threshold)
    assert check.verdict == verdict
    assert check.target == f"{op} {threshold:g}"
    assert report.checks == [check]


def test_a_quick_run_judges_nothing() -> None:
    assert (
        Report(quick=True).check("part", "figure", 0.0, ">=", 1.0).verdict.startswith("not judged")
    )


def wrk_at(fraction_by_clients: dict[int, float]) -> Any:
    """A stand-in for `run_wrk` reaching the given share of the ideal rate per level."""

    def run_wrk(url: str, connections: int, seconds: float) -> WrkResult:
        rate = fraction_by_clients[connections] * connections / MEAN_DELAY_SECONDS
        latency = {50: 0.5, 75: 0.75, 90: 0.9, 99: 0.99}
        return WrkResult(int(rate * seconds), seconds, rate, latency, errors=0)

    return run_wrk


@pytest.mark.parametrize(
    ("fractions", "held", "fell"),
    [
        ({200: 0.98, 400: 0.95, 500: 0.91, 600: 0.85, 800: 0.5}, 500, 600),
        ({200: 0.98, 400: 0.97}, 400, None),
        ({200: 0.80, 400: 0.97}, 0, 200),
    ],
)
def test_the_knee_is_the_last_level_at_90_percent_of_ideal(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fractions: dict[int, float],
    held: int,
    fell: int | None,
) -> None:
    monkeypatch.setattr(concurrency, "run_wrk", wrk_at(fractions))
    plan = ConcurrencyPlan(seconds=1, levels=tuple(fractions), pause_seconds=0)
    report = Report(quick=False)
    with subprocess.Popen(["sleep", "30"]) as stand_in:  # a real process to sample RSS from
        try:
            concurrency._run_levels(report, plan, Server("full", 1, stand_in, tmp_path / "log"))
        finally:
            stand_in.kill()

    assert report.figures["concurrency"]["knee"] == {"held": held, "fell": fell}
    verdicts = {check.name: check.verdict for check in report.checks}
    assert verdicts["clients held at 90% of ideal (knee)"] == ("PASS" if held >= 500 else "MISS")
    first = next(iter(fractions))
    assert verdicts[f"rate/ideal at {first} clients"] == (
        "PASS" if fractions[first] >= 0.95 else "MISS"
    )
    ran = {name for name in report.figures["concurrency"] if name.startswith("clients_")}
    assert ran == {f"clients_{c}" for c in fractions if fell is None or c <= fell}
