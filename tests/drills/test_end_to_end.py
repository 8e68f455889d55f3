"""Each drill end to end against the native stack: the real service reading a copy of
the shipped flag file, real Prometheus, Alertmanager, Loki and Alloy, the Tempo
stand-in, the real traffic generator.

The pace is shortened (`--rate`, `--round`, `--poll`); the alert windows are the
stack's own, so the alert story (latency, then error spike, then recovery) takes
several minutes, most of it the fast burn's 5 minute window forgetting the errors.
No test looks at a clock: each waits for the drill's own verdict, bounded by the
drill's give-up time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.catalogue import DRILLS
from drills.timing import FAST_BURN, LATENCY_ALERT
from nativestack.stack import NativeStack
from tests.support.drills import run_drill_module, stack_options

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

PACE = ["--rate", "10", "--round", "20", "--poll", "1"]
"""Rounds of 20 s at 10 requests/s: about 100 rolls per die. The native stack's risky die
fails half the time (`NATIVE_FLAGS`), and the chi-square wants 30 values of each die."""


@pytest.fixture
def flags_file(native: NativeStack, native_flags_file: Path) -> Iterator[Path]:
    """The flag file the native stack's service reads, its bytes put back after the test
    whatever a drill did (recovery leaves its flags shipped, on purpose)."""
    original = native_flags_file.read_bytes()
    yield native_flags_file
    native_flags_file.write_bytes(original)


def drill(
    native: NativeStack, flags: Path, name: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    before = flags.read_bytes()
    timeout = 1800
    result = run_drill_module(
        [name, "--flags-file", str(flags), *stack_options(native), *PACE, *extra], timeout=timeout
    )
    print(result.stdout, result.stderr)
    if not DRILLS[name].keeps_flags:
        assert flags.read_bytes() == before, "the flag file did not get its bytes back"
    assert "Traceback" not in result.stderr
    return result


def responded(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The signals the drill printed as responded, in order."""
    return [
        line.split("  ", 2)[2].split(" (")[0]
        for line in result.stdout.splitlines()
        if line.startswith(("  ✓ ", "  + "))
    ]


def test_loaded_die_skews_the_histogram_and_the_chi_square(
    native: NativeStack, flags_file: Path
) -> None:
    result = drill(native, flags_file, "loaded-die")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(responded(result)) == sorted(
        ["Value histogram skewed", "Chi-square test flags the dice", "Rolls logged with the flag"]
    )
    assert "unlikely from a uniform die" in result.stdout
    assert "Flags put back" in result.stdout


def test_a_drill_that_gives_up_names_each_signal_that_never_responded(
    native: NativeStack, flags_file: Path
) -> None:
    """The generator's first verdict comes when its first round ends, after 20 s: a drill
    giving up after 3 s cannot have it."""
    result = drill(native, flags_file, "loaded-die", "--give-up", "3")
    assert result.returncode == 1
    assert "never responded:" in result.stdout
    missing = [line for line in result.stdout.splitlines() if line.startswith(("  ✗ ", "  x "))]
    assert any("Chi-square test flags the dice (traffic-gen)" in line for line in missing)
    assert "Flags put back" in result.stdout


@pytest.mark.timeout(2400)
def test_an_error_spike_then_latency_fire_their_alerts_and_recovery_resolves_them(
    native: NativeStack, flags_file: Path
) -> None:
    """In this order, both alerts are still firing when recovery begins: the fast burn
    forgets the errors over 5 minutes, the latency alert the slow rolls over 1."""
    spike = drill(native, flags_file, "error-spike")
    assert spike.returncode == 0, spike.stdout + spike.stderr
    fast = f'{FAST_BURN}{{die_type="fair"}}'
    order = responded(spike)
    assert order.index(f"{fast} pending") < order.index(f"{fast} firing")
    assert order.index(f"{fast} firing") < order.index(f"{fast} received")
    for signal in ("Error rate up", "Error lines carry the flag", "Error spans carry the flag"):
        assert signal in order
    assert f"{fast} in Alertmanager" in order
    assert f"{fast} is pending in Prometheus" in spike.stdout
    assert "below both burn-rate alerts (14.4 and 6)" in spike.stdout

    latency = drill(native, flags_file, "latency")
    assert latency.returncode == 0, latency.stdout + latency.stderr
    order = responded(latency)
    assert order.index(f"{LATENCY_ALERT} pending") < order.index(f"{LATENCY_ALERT} firing")
    assert order.index(f"{LATENCY_ALERT} firing") < order.index(f"{LATENCY_ALERT} received")
    for signal in (
        "p99 past the objective",
        "Slowed rolls logged with the flag",
        "Spans over 1.5 s carry the flag",
        f"{LATENCY_ALERT} in Alertmanager",
    ):
        assert signal in order
    assert f"{LATENCY_ALERT} is pending in Prometheus" in latency.stdout

    # The slow burn usually fires too after the error spike (a lower threshold, no
    # `for:`) and takes 30 minutes to forget it: not followed.
    recovery = drill(
        native, flags_file, "recovery", "--follow", FAST_BURN, "--follow", LATENCY_ALERT
    )
    assert recovery.returncode == 0, recovery.stdout + recovery.stderr
    assert f"Note: {fast} is firing" in recovery.stdout
    assert f"Note: {LATENCY_ALERT} is firing" in recovery.stdout
    order = responded(recovery)
    assert sorted(order) == sorted(
        [
            "Fair rolls succeed again",
            f"{fast} resolved",
            f"{fast} resolved in Alertmanager",
            f"{fast} resolution received",
            f"{LATENCY_ALERT} resolved",
            f"{LATENCY_ALERT} resolved in Alertmanager",
            f"{LATENCY_ALERT} resolution received",
        ]
    )
    assert "Flags stay at their shipped variants" in recovery.stdout
