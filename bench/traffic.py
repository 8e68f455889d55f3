"""Part 5, the traffic generator's open-loop accuracy (`bench/traffic_gen_accuracy.py`).

That bench belongs with the generator and runs on its own too; this part runs it at
500 requests/s, shows its figures, and judges its shortfall like the other figures.
"""

from __future__ import annotations

from pathlib import Path

from .report import Report
from .traffic_gen_accuracy import measure_accuracy

__all__ = ["run_traffic"]

PART = "traffic"
RATE = 500.0
TARGET_SHORTFALL = 0.02


def run_traffic(report: Report, seconds: float, output_dir: Path) -> None:
    report.section(
        PART,
        f"traffic-gen open-loop accuracy (bench/traffic_gen_accuracy.py, {seconds:g} s)",
    )
    try:
        accuracy = measure_accuracy(RATE, seconds, output_dir)
    except RuntimeError as error:
        report.say(f"  traffic_gen_accuracy failed: {error}")
        report.figure(PART, "failed", str(error))
        return
    for line in accuracy.lines:
        report.say("  " + line)
    report.figure(PART, "shortfall", accuracy.shortfall)
    report.check(PART, "open-loop shortfall", accuracy.shortfall, "<", TARGET_SHORTFALL)
