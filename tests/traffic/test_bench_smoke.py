"""The accuracy benchmark runs end to end (its figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.paths import ROOT


def test_benchmark_runs_and_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.traffic_gen_accuracy", "--seconds", "2", "--rate", "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "target rate:      50 requests/s for 2 s" in out
    # The schedule holds exactly rate x seconds requests, answered or not.
    assert re.search(r"^achieved rate: +[\d.]+ requests/s \(sent 100\)$", out, re.MULTILINE)
    assert re.search(r"^shortfall: +-?[\d.]+% ", out, re.MULTILINE)
    assert re.search(r"^generator CPU: +[\d.]+ s while sending", out, re.MULTILINE)
    assert re.search(r"^service CPU: +[\d.]+ s", out, re.MULTILINE)
