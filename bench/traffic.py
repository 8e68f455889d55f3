"""Part 5, the traffic generator's open-loop accuracy: runs `bench/traffic_gen_accuracy.py`.

That bench belongs with the generator; this part only runs it, shows what it printed,
and judges its shortfall like the other figures.
"""

from __future__ import annotations

import re
import subprocess
import sys

from .report import Report

__all__ = ["run_traffic"]

PART = "traffic"
TARGET_SHORTFALL = 0.02


def run_traffic(report: Report, seconds: float) -> None:
    script = "bench/traffic_gen_accuracy.py"
    report.section(PART, f"traffic-gen open-loop accuracy ({script}, {seconds:g} s)")
    command = [sys.executable, "-m", "bench.traffic_gen_accuracy", "--seconds", f"{seconds:g}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        report.say("  " + line)
    if done.returncode != 0:
        report.say(f"  traffic_gen_accuracy failed ({done.returncode}): {done.stderr.strip()}")
        report.figure(PART, "failed", done.returncode)
        return
    shortfall = re.search(r"shortfall:\s+(-?[\d.]+)%", done.stdout)
    if shortfall is None:
        report.say("  (no shortfall figure found in its output)")
        return
    value = float(shortfall.group(1)) / 100
    report.figure(PART, "shortfall", value)
    report.check(PART, "open-loop shortfall", value, "<", TARGET_SHORTFALL)
